"""``make bench``: every benchmark of issues 7 and 12, then the targets in one table.

    .venv/bin/python -m bench                      # everything (10,000-run leak check)
    .venv/bin/python -m bench --quick              # fewer rounds, 500-run leak check
    .venv/bin/python -m bench --only latency,seccomp
    .venv/bin/python -m bench --only floor         # the kernel's own cost, step by step
    .venv/bin/python -m bench --breakdown          # only: where one run's time goes
    .venv/bin/python -m bench --leak-runs 2000 --json results.json

Sections: latency, throughput, seccomp, accounting, leaks, floor, breakdown.
The leak check and the breakdown run in processes of their own (a clean
supervisor; patches that must not touch the other figures). Needs root, a
cgroup hierarchy the sandbox can use, gcc and bubblewrap (scripts/setup.sh).
Peers (isolate, nsjail, runc, crun) are timed when found on PATH or under
``$SANDBOX_BENCH_PEERS`` (see bench/peers.py); a peer that cannot run here
is reported with the reason and the rest goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench import accounting, floor, latency, seccomp_overhead, throughput
from bench import leaks as leaks_mod
from bench.common import ROOT, VENV_PY, Target, build_c, header, machine, table, targets_table

SECTIONS = ("latency", "throughput", "seccomp", "accounting", "leaks", "floor", "breakdown")


def _sub(module: str, *args: str) -> int:
    """Run a bench module in its own process, its output streamed to ours."""
    sys.stdout.flush()
    return subprocess.run([str(VENV_PY), "-m", module, *args], cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.split("\n")[0], epilog=__doc__
    )
    ap.add_argument("--only", help="comma-separated sections: " + ", ".join(SECTIONS))
    ap.add_argument("--breakdown", action="store_true", help="only the breakdown (and the CLI's)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and runs (a smoke test)")
    ap.add_argument("--rounds", type=int, help="rounds of interleaved batches (default 10)")
    ap.add_argument("--leak-runs", type=int, help="runs of the leak check (default 10000)")
    ap.add_argument("--json", help="write the figures and targets to this file")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (cgroup leaves, id slots, overlay mounts)", file=sys.stderr)
        return 2
    only = set(SECTIONS)
    if args.breakdown:
        only = {"breakdown"}
    elif args.only:
        only = {s.strip() for s in args.only.split(",")}
        if only - set(SECTIONS):
            ap.error(f"unknown sections: {', '.join(sorted(only - set(SECTIONS)))}")
    rounds = args.rounds or (3 if args.quick else 10)
    leak_runs = args.leak_runs or (500 if args.quick else 10000)

    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    exe = build_c()
    targets: list[Target] = []
    results: dict[str, object] = {"machine": info}
    failed: list[str] = []
    t0 = time.monotonic()
    if "latency" in only:
        latency.run(exe, rounds, targets, results)
    if "throughput" in only:
        throughput.run(exe, max(3, rounds // 2), 1.0 if args.quick else 3.0, targets, results)
    if "seccomp" in only:
        # A process's own speed varies by a few percent (placement, caches), so a
        # 3% bound needs many short processes: 80 of 500,000 calls each, not 20 of
        # 2,000,000 (whose medians swung +-5% from run to run).
        seccomp_overhead.run(exe, max(12, rounds * 8), 500_000, 1, targets, results)
    if "accounting" in only:
        accounting.run(exe, 3 if args.quick else 10, targets, results)
    if "leaks" in only:
        out = ROOT / "bench" / "build" / "leaks.json"
        out.unlink(missing_ok=True)
        if _sub("bench.leaks", "--runs", str(leak_runs), "--json", str(out)) != 0:
            failed.append("leaks")
    if "leaks" in only and out.exists():
        leaks = json.loads(out.read_text())
        results["leaks"] = leaks
        before, after = leaks["before"], leaks["after"]
        server = leaks["server_fresh_kib"]
        growth = {k: after[k] - before[k] for k in before}
        half = leaks["second_half_kib"]
        targets += [
            Target(
                "fork server resident size",
                "reported",
                f"RSS {server['rss'] / 1024:.1f} MiB, USS {server['uss'] / 1024:.1f} MiB",
                None,
                f"after {leak_runs} runs: RSS {after['fork server RSS KiB'] / 1024:.1f} MiB",
            ),
            Target(
                f"growth over {leak_runs} runs",
                "none",
                f"RSS over the second half: supervisor {half['supervisor RSS KiB']:+d} KiB, "
                f"fork server {half['fork server RSS KiB']:+d} KiB; "
                + (
                    ", ".join(
                        f"{k} {v:+d}"
                        for k, v in growth.items()
                        if v > 0 and k in leaks_mod.EXACT + leaks_mod.HOST_WIDE
                    )
                    or "fds, threads, zombies, mounts, cgroups, netns, temp dirs: +0"
                ),
                "leaks" not in failed,
                ("left of our runs: " + json.dumps(leaks["leftovers"]))
                if leaks["leftovers"]
                else "nothing named after our runs left"
                + (f"; {sum(leaks['failures'].values())} runs failed" if leaks["failures"] else ""),
            ),
        ]
    if "floor" in only:
        floor.run(exe, 10 if args.quick else 40, rounds if args.quick else 5, targets, results)
    runs = "10" if args.quick else "30"
    if "breakdown" in only and _sub("bench.breakdown", "--runs", runs, "--cli", "3") != 0:
        failed.append("breakdown")

    header(f"targets (issues 7 and 12), {time.monotonic() - t0:.0f} s of benchmarks")
    print(f"machine: {info['cores']} cores, kernel {info['kernel']}, load at start {info['load']}")
    if targets:
        print(targets_table(targets))
    if failed:
        print(table(("section that failed",), [(f,) for f in failed]))
    results["targets"] = [t.__dict__ for t in targets]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

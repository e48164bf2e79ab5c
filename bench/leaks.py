"""Memory and leaks: the fork server's size, and no growth over many runs.

Run as its own process, so the supervisor's memory is the library's alone:

    .venv/bin/python -m bench.leaks [--runs 10000] [--json FILE]

One ``Sandbox("strict")``, 50 warm-up runs, then the counters of
``bench.resources`` (the noise: the same counters again after an idle
second, with no run in between), then N runs of /bin/true (a few with
stdin, files in and out, a failing program, a wall-time kill), then the
counters again. The supervisor's RSS and the fork server's are sampled at
each tenth, with the run latency of that tenth, so a slow leak shows as a
slope; memory is judged on the second half of the runs, after the
allocator's arenas and caches have filled. Exact check on top of the
counts: nothing named after one of our runs is left (cgroup leaves, run
files), checked a tenth at a time so the harness holds no per-run state.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
from typing import Any

from bench.common import header, loadavg, server_pid, table
from bench.resources import leftovers, rollup_kib, snapshot, status_kib

# Counters that must not grow at all (host-wide ones may move with other users' work).
EXACT = (
    "supervisor fds",
    "supervisor threads",
    "fork server fds",
    "zombies (children of either)",
)
HOST_WIDE = (
    "mounts (this mount ns)",
    "sbx-* cgroup dirs (host)",
    "network namespaces (host)",
    "/run/sandbox/runs entries",
    "/var/lib/sandbox/temp entries",
    "/tmp entries (host)",
)
# Memory is judged on the second half of the runs (allocator arenas and caches
# fill during the first thousands): 1 MiB over 5,000 runs is 200 bytes a run.
MEMORY_SLACK_KIB = 1024


def _one(sb: Any, i: int, run_ids: list[str]) -> float:
    """Run number i (a varied mix: every path that releases something)."""
    kind = i % 50
    t0 = time.monotonic()
    if kind == 10:
        r = sb.run(["/bin/sh", "-c", "cat; exit 3"], stdin=b"x" * 1000)
        ok = r.exit_code == 3
    elif kind == 20:
        r = sb.run(
            ["/bin/sh", "-c", "cp in.txt out.txt"],
            files={"in.txt": b"data"},
            collect=["out.txt"],
        )
        ok = r.files.get("out.txt") == b"data"
    elif kind == 30:
        r = sb.run(["/bin/sleep", "5"], limits={"wall_time": 0.05})
        ok = r.verdict.value == "WALL_TIME_LIMIT"
    else:
        r = sb.run(["/bin/true"])
        ok = r.verdict.value == "OK"
    if not ok:
        raise RuntimeError(f"run {i}: {r.verdict} exit {r.exit_code} {r.message}")
    run_ids.append(r.run_id)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)
    from sandbox import Sandbox
    from sandbox.errors import SandboxError

    failures: dict[str, int] = {}
    header(f"memory and leaks: {args.runs} runs through one Sandbox('strict')")
    sb = Sandbox("strict")
    run_ids: list[str] = []
    samples: list[tuple[int, int, int, float]] = []  # (runs, sup RSS, server RSS, median ms)
    try:
        for i in range(50):
            _one(sb, i, [])
        server = server_pid(sb)  # 0 with a launcher that has no fork server
        fresh = rollup_kib(server)
        gc.collect()
        before = snapshot(server)
        time.sleep(1.0)
        gc.collect()
        idle = snapshot(server)
        tenth = max(1, args.runs // 10)
        lat: list[float] = []
        left: dict[str, list[str]] = {}
        pending: list[str] = []  # run ids of the tenth before: checked once they settled
        t_start = time.monotonic()
        for i in range(args.runs):
            try:
                lat.append(_one(sb, i, run_ids))
            except SandboxError as e:  # counted and shown; the check goes on
                why = f"{type(e).__name__}: {e}"
                failures[why] = failures.get(why, 0) + 1
            if (i + 1) % tenth == 0:
                # The harness keeps no per-run state between tenths (a list of 10,000
                # run ids would itself be a leak of 80 bytes a run).
                for k, v in leftovers(pending).items():
                    left.setdefault(k, []).extend(v)
                pending, run_ids = run_ids, []
                samples.append(
                    (
                        i + 1,
                        status_kib("self", "VmRSS"),
                        rollup_kib(server)["rss"],
                        statistics.median(lat) * 1e3 if lat else float("nan"),
                    )
                )
                lat = []
                print(f"  {i + 1} runs, load {loadavg()}", file=sys.stderr, flush=True)
        elapsed = time.monotonic() - t_start
        time.sleep(0.5)  # the last release reaches the server
        for k, v in leftovers(pending + run_ids).items():
            left.setdefault(k, []).extend(v)
        pending = run_ids = []
        gc.collect()
        after = snapshot(server)
        if server_pid(sb) != server:
            print("fork server was restarted during the runs (it died)!")
    finally:
        sb.close()

    print(
        f"{args.runs} runs in {elapsed:.0f} s ({args.runs / elapsed:.0f} runs/s, one thread); "
        f"fork server right after warm-up: RSS {fresh['rss']} KiB, PSS {fresh['pss']} KiB, "
        f"USS {fresh['uss']} KiB"
    )
    half = samples[len(samples) // 2 - 1] if len(samples) >= 2 else samples[0]
    last = samples[-1]
    second_half = {
        "supervisor RSS KiB": last[1] - half[1],
        "fork server RSS KiB": last[2] - half[2],
    }
    rows, growth = [], {}
    for key in before:
        d = after[key] - before[key]
        noise = idle[key] - before[key]
        growth[key] = d
        if key in EXACT:
            verdict = "ok" if d <= 0 else "GROWS"
        elif key in second_half:
            g = second_half[key]
            ok = "ok" if g <= MEMORY_SLACK_KIB else "GROWS"
            verdict = f"{ok}: {g:+d} KiB over runs {half[0]}-{last[0]}"
        elif key.endswith("KiB"):
            verdict = "(judged on RSS)"
        elif key == "/run/sandbox/slots entries":
            verdict = "bounded: one lock file per slot uid, at most the range (1000)"
        elif key in HOST_WIDE:
            verdict = "ok" if d <= 0 else "grew (host-wide: see the exact check)"
        else:
            verdict = "ok" if d <= 0 else "grew"
        rows.append((key, before[key], after[key], f"{d:+d}", f"{noise:+d}", verdict))
    print(table(("counter", "before", "after", "growth", "idle noise", ""), rows))
    print(
        "exact check, resources named after our runs still present: "
        + (json.dumps(left) if left else "none")
    )
    for msg, n in failures.items():
        print(f"FAILED RUNS: {n} x {msg}")
    print("\nper tenth of the runs (RSS KiB, median latency of that tenth):")
    print(
        table(
            ("runs", "supervisor RSS", "fork server RSS", "median ms"),
            [(n, s, f, m) for n, s, f, m in samples],
        )
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "runs": args.runs,
                    "server_fresh_kib": fresh,
                    "before": before,
                    "after": after,
                    "idle": idle,
                    "leftovers": left,
                    "samples": samples,
                    "second_half_kib": second_half,
                    "failures": failures,
                },
                f,
            )
    bad = [k for k in EXACT if growth[k] > 0] + [
        k for k, g in second_half.items() if g > MEMORY_SLACK_KIB
    ]
    return 1 if bad or left else 0


if __name__ == "__main__":
    sys.exit(main())

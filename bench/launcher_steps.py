"""Where the native launcher's time goes: per-step medians from its trace (issue 12 part 3).

Runs ``Sandbox(profile).run(["/bin/true"])`` N times with the native
launcher's ``--trace`` on (``SANDBOX_LAUNCHER_TRACE``) and prints, for each
mark, the median time to the next mark of the same run: every step of the
outer, init and payload, the forks between them, the server's id-map write,
exec to exit, and the status report. Clocks inside the run's time namespace
are shifted by whole seconds (the offsets the launcher writes); marks are
re-based on the server's clock per run.

    .venv/bin/python -m bench.launcher_steps [--runs 200] [--netns-pool 0|2]
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import tempfile
import time
from collections import defaultdict


def parse(path: str) -> list[list[tuple[str, int]]]:
    """Runs, each a time-ordered list of (mark, ns)."""
    runs: list[list[tuple[str, int]]] = []
    cur: list[tuple[str, int]] = []
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines:
        pid, name, t = line.split()
        if name == "spawn_request":
            if cur:
                runs.append(cur)
            cur = []
        if name in ("spawn_request", "server_maps", "server_reaped"):
            role = "server"
        else:
            role = {"1": "init", "2": "payload"}.get(pid, "outer")
        cur.append((f"{role}.{name}", int(t)))
    if cur:
        runs.append(cur)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--profile", default="strict")
    ap.add_argument("--netns-pool", default="2")
    args = ap.parse_args()
    trace = tempfile.mktemp(prefix="sbx-trace-")
    os.environ["SANDBOX_LAUNCHER_TRACE"] = trace
    os.environ["SANDBOX_NETNS_POOL"] = args.netns_pool
    logging.disable(logging.WARNING)
    from sandbox import Sandbox

    with Sandbox(args.profile, launcher="native") as sb:
        for _ in range(10):
            sb.run(["/bin/true"])
        os.truncate(trace, 0)
        walls = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            sb.run(["/bin/true"])
            walls.append((time.monotonic() - t0) * 1e3)
    steps: dict[str, list[float]] = defaultdict(list)
    order: list[str] = []
    for run in parse(trace):
        # Inside the time namespace the clock runs whole seconds behind: re-base
        # each mark on the previous one modulo a second.
        base = run[0][1]
        fixed = [run[0]]
        for name, t in run[1:]:
            prev = fixed[-1][1]
            while t < prev - 5 * 10**8:
                t += 10**9 * ((prev - t) // 10**9 + (1 if (prev - t) % 10**9 > 5 * 10**8 else 0))
            fixed.append((name, t))
        for (name, t), (_nxt, t2) in itertools.pairwise(fixed):
            key = name
            if key not in order:
                order.append(key)
            steps[key].append((t2 - t) / 1e6)
        steps["TOTAL spawn_request -> server_reaped"].append((fixed[-1][1] - base) / 1e6)
        done = next((t for n, t in fixed if n == "init.status_written"), None)
        if done is not None:
            steps["LAUNCHER spawn_request -> status_written"].append((done - base) / 1e6)
    os.unlink(trace)
    print(f"{'mark (time to the next mark)':40s} {'median ms':>9s} {'p90 ms':>8s}")
    keys = [
        *order,
        "TOTAL spawn_request -> server_reaped",
        "LAUNCHER spawn_request -> status_written",
    ]
    steps["LIBRARY Sandbox.run() wall"] = walls
    for key in [*keys, "LIBRARY Sandbox.run() wall"]:
        v = sorted(steps[key])
        print(f"{key:40s} {statistics.median(v):9.3f} {v[int(0.9 * (len(v) - 1))]:8.3f}")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main()

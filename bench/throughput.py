"""Throughput: runs per second of /bin/true on 2 workers, beside the bare figure.

The library's two workers are two threads sharing one ``Sandbox`` (one fork
server, several runs in flight); the bare and bwrap figures come from the C
harness with two worker processes. Each subject runs for a fixed time per
round; rounds are interleaved and the bare figure is taken twice (noise).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Series, Target, header, interleave, noise_line, ratio, table
from bench.latency import BWRAP_USR

WORKERS = 2


def _c_rate(exe: Path, argv: list[str], secs: float) -> list[float]:
    p = subprocess.run(
        [str(exe), "-q", "-j", str(WORKERS), "-t", str(secs), "--", *argv],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")
    _, runs, _, elapsed = p.stdout.split()
    return [int(runs) / float(elapsed)]


def _lib_rate(sb: Any, secs: float) -> list[float]:
    counts = [0] * WORKERS
    errors: list[str] = []
    end = time.monotonic() + secs

    def worker(i: int) -> None:
        while time.monotonic() < end:
            r = sb.run(["/bin/true"])
            if r.verdict.value != "OK":
                errors.append(f"{r.verdict} {r.message}")
                return
            counts[i] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"library run: {errors[0]}")
    return [sum(counts) / (time.monotonic() - t0)]


def run(
    exe: dict[str, Path],
    rounds: int,
    secs: float,
    targets: list[Target],
    results: dict[str, Any],
) -> None:
    from sandbox import Sandbox

    header(f"throughput: runs/s of /bin/true on {WORKERS} workers ({secs:g} s per round)")
    fe = exe["forkexec"]
    bare = Series(f"bare C fork+exec+wait, {WORKERS} processes")
    bare2 = Series(f"bare C fork+exec+wait, {WORKERS} processes (again: noise)")
    bw = Series(f"bwrap --unshare-all ... /usr/bin/true, {WORKERS} processes")
    lib = Series(f"library: {WORKERS} threads sharing one Sandbox('strict')")
    logging.disable(logging.WARNING)
    sb = Sandbox("strict")
    try:
        for _ in range(3):
            sb.run(["/bin/true"])
        interleave(
            [
                (bare, lambda: _c_rate(fe, ["/bin/true"], secs)),
                (lib, lambda: _lib_rate(sb, secs)),
                (bw, lambda: _c_rate(fe, BWRAP_USR, secs)),
                (bare2, lambda: _c_rate(fe, ["/bin/true"], secs)),
            ],
            rounds,
        )
    finally:
        sb.close()
        logging.disable(logging.NOTSET)
    rows = [
        (s.name, s.median, f"{s.pct(0):.0f}-{s.pct(100):.0f}", ratio(s.median, bare.median))
        for s in (bare, bare2, bw, lib)
    ]
    print(table(("subject", "median runs/s", "min-max", "x bare"), rows))
    print(noise_line(bare, bare2))
    results["throughput"] = {s.name: s.median for s in (bare, bare2, bw, lib)}
    targets.append(
        Target(
            f"throughput, {WORKERS} workers",
            "reported beside bare",
            f"{lib.median:.0f} runs/s (bare {bare.median:.0f}, bwrap {bw.median:.0f})",
            None,
            f"{ratio(lib.median, bw.median):.2f}x bwrap's",
        )
    )

"""Throughput: runs per second of /bin/true on 2 workers, beside bare and bwrap.

The library's two workers are two threads sharing one ``Sandbox`` (one fork
server, several runs in flight), once per launcher the library offers; the
bare and bwrap figures come from the C harness with two worker processes.
Each subject runs for a fixed time per round; rounds are interleaved and the
bare figure is taken twice (noise). Target (issue 12): the library's runs
per second >= bwrap's.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Guarded,
    Series,
    Target,
    header,
    interleave,
    launcher_label,
    library_launchers,
    noise_line,
    open_sandbox,
    ratio,
    table,
)
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
    header(f"throughput: runs/s of /bin/true on {WORKERS} workers ({secs:g} s per round)")
    fe = exe["forkexec"]
    bare = Series(f"bare C fork+exec+wait, {WORKERS} processes")
    bare2 = Series(f"bare C fork+exec+wait, {WORKERS} processes (again: noise)")
    bw = Series(f"bwrap --unshare-all ... /usr/bin/true, {WORKERS} processes")
    logging.disable(logging.WARNING)
    libs: list[tuple[str | None, Any, Series]] = []
    notes: list[str] = []
    try:
        for launcher in library_launchers():
            label = launcher_label(launcher)
            try:
                sb = open_sandbox(launcher)
                for _ in range(3):
                    sb.run(["/bin/true"])
            except Exception as e:  # reported; the other launcher goes on
                notes.append(f"library, launcher {label}: cannot run ({e})")
                continue
            libs.append(
                (
                    launcher,
                    sb,
                    Series(f"library: {WORKERS} threads, one Sandbox('strict') [{label}]"),
                )
            )
        guards = [
            Guarded(bare, lambda: _c_rate(fe, ["/bin/true"], secs)),
            *[Guarded(s, functools.partial(_lib_rate, sb, secs)) for _, sb, s in libs],
            Guarded(bw, lambda: _c_rate(fe, BWRAP_USR, secs)),
            Guarded(bare2, lambda: _c_rate(fe, ["/bin/true"], secs)),
        ]
        interleave([(g.series, g) for g in guards], rounds)
        for g in guards:
            if g.failed:
                notes.append(f"{g.series.name}: failed during the rounds: {g.failed}")
                g.series.samples.clear()
    finally:
        for _, sb, _ in libs:
            sb.close()
        logging.disable(logging.NOTSET)
    series = [bare, bare2, bw, *(s for _, _, s in libs)]
    rows = [
        (
            s.name,
            s.median,
            f"{s.pct(0):.0f}-{s.pct(100):.0f}",
            ratio(s.median, bare.median),
            ratio(s.median, bw.median),
        )
        for s in series
    ]
    print(table(("subject", "median runs/s", "min-max", "x bare", "x bwrap"), rows))
    for line in notes:
        print(line)
    print(noise_line(bare, bare2))
    results["throughput"] = {s.name: s.median for s in series}
    for launcher, _, lib in libs:
        targets.append(
            Target(
                f"throughput, {WORKERS} workers [{launcher_label(launcher)}]",
                ">= bwrap's runs/s",
                f"{lib.median:.0f} runs/s vs bwrap {bw.median:.0f} "
                f"({ratio(lib.median, bw.median):.2f}x)",
                lib.median >= bw.median if lib.samples and bw.samples else False,
                f"bare {bare.median:.0f} runs/s; min-max library "
                f"{lib.pct(0):.0f}-{lib.pct(100):.0f}, "
                f"bwrap {bw.pct(0):.0f}-{bw.pct(100):.0f}",
            )
        )

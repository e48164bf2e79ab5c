"""``podman run --rm IMAGE true`` through sandbox-runtime vs runc, in the same run.

    .venv/bin/python -m bench.oci_podman [--runs 10] [--json out.json] [--also NAME=PATH]

Interleaves the two runtimes (a private podman storage root, a busybox image
imported from busybox-static, ``--network none``; both get the same flags),
reports median/p90 wall time per ``podman run`` and their ratio, then where
sandbox-runtime's time goes: each runtime command podman calls (create,
start, delete) timed by a wrapper. ``--also NAME=PATH`` adds another runtime
to the same interleaved rounds (e.g. another checkout's sandbox-runtime, for
a before/after measured under the same load). Target (issue 14): faster than
runc. Needs root, podman and runc (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / ".venv" / "bin" / "sandbox-runtime"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/sbx-bench:busybox"
WRAPPER = """#!/bin/sh
s=$(date +%s%N)
"{rt}" "$@"; rc=$?
echo "$s $(date +%s%N) $rc $*" >> "{log}"
exit $rc
"""


def _rootfs_tar(base: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from ocikit import make_rootfs

    root = make_rootfs(base / "rootfs")
    tar = base / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    return tar


def _podman(base: Path, runtime: str, *args: str) -> list[str]:
    return [
        "podman",
        "--root",
        str(base / "storage"),
        "--runroot",
        str(base / "run"),
        "--storage-driver",
        "overlay",
        "--cgroup-manager",
        "cgroupfs",
        "--runtime",
        runtime,
        *args,
    ]


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[-8:])}: rc={p.returncode}: {p.stderr.strip()}")
    return dt


def _stats(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {
        "median_ms": statistics.median(s) * 1e3,
        "p90_ms": s[min(len(s) - 1, int(len(s) * 0.9))] * 1e3,
        "min_ms": s[0] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.oci_podman", description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another runtime in the same rounds (e.g. a baseline checkout's sandbox-runtime)",
    )
    args = ap.parse_args(argv)
    extra = dict(a.split("=", 1) for a in args.also)
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            print(f"bench: {tool} is not installed (scripts/setup.sh)", file=sys.stderr)
            return 2
    base = Path(tempfile.mkdtemp(prefix="sbx-bench-podman-"))
    try:
        tar = _rootfs_tar(base)
        subprocess.run(
            _podman(base, "runc", "import", str(tar), IMAGE), check=True, capture_output=True
        )
        log = base / "calls.log"
        wrapper = base / "sandbox-runtime-timed"
        wrapper.write_text(WRAPPER.format(rt=RUNTIME, log=log))
        wrapper.chmod(0o755)
        subjects = {"runc": "runc", "sandbox-runtime": str(RUNTIME), **extra}
        times: dict[str, list[float]] = {k: [] for k in subjects}
        run = ["run", "--rm", "--network", "none", *ULIMITS, IMAGE, "true"]
        load0 = os.getloadavg()
        for rt in subjects.values():  # warm-up: image layers, caches, page cache
            _time(_podman(base, rt, *run))
        for _ in range(args.runs):
            for name, rt in subjects.items():
                times[name].append(_time(_podman(base, rt, *run)))
        for _ in range(max(3, args.runs // 2)):
            _time(_podman(base, str(wrapper), *run))
        calls: dict[str, list[float]] = {}
        for line in log.read_text().splitlines():
            start, end, _rc, cmd, *_ = line.split()
            calls.setdefault(cmd, []).append((int(end) - int(start)) / 1e9)
        out = {k: _stats(v) for k, v in times.items()}
        ratio = out["sandbox-runtime"]["median_ms"] / out["runc"]["median_ms"]
        load = os.getloadavg()
        print(
            f"podman run --rm IMAGE true, {args.runs} interleaved rounds, load "
            f"{load0[0]:.1f} at start, {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at end"
        )
        print(f"{'runtime':<18}{'median ms':>12}{'p90 ms':>10}{'min ms':>10}{'x runc':>8}")
        for k, v in out.items():
            x = v["median_ms"] / out["runc"]["median_ms"]
            print(
                f"{k:<18}{v['median_ms']:>12.0f}{v['p90_ms']:>10.0f}{v['min_ms']:>10.0f}{x:>8.2f}"
            )
        verdict = "met" if ratio < 1 else "NOT met"
        print(f"ratio sandbox-runtime / runc: {ratio:.2f}x  (target < 1.0: {verdict})")
        print("sandbox-runtime commands as podman called them (median ms):")
        for cmd, xs in calls.items():
            print(f"  {cmd:<10}{statistics.median(xs) * 1e3:>8.0f}  (n={len(xs)})")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "podman_run": out,
                        "ratio": ratio,
                        "calls_ms": {k: statistics.median(v) * 1e3 for k, v in calls.items()},
                        "load": [load0[0], *load],
                    },
                    indent=2,
                )
            )
        return 0
    finally:
        subprocess.run(_podman(base, "runc", "rm", "-a", "-f"), capture_output=True)
        subprocess.run(_podman(base, "runc", "rmi", "-a", "-f"), capture_output=True)
        subprocess.run(["umount", "-R", str(base / "storage" / "overlay")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

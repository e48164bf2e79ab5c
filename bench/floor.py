"""The floor: what the kernel itself charges for one fully isolated run, timed without us.

Runs ``bench/c/floor.c`` (a resident C launcher doing what strict does, step
by step) and prints, per step, its cost against the same run without it
(paired runs, alternating, in the same rounds), the sum of the steps strict
needs (= the floor of "all layers"), and "all layers" measured whole: with a
resident launcher; with the network namespace made ahead of the run; with
the network namespace and the cgroup leaf made ahead (off the critical
path, each serving one run); and with a launcher process per run. The
seccomp rows use strict's own filter (``sandbox seccomp export --format bpf
strict``) beside a synthetic linear filter and a binary tree over the same
syscalls.

    .venv/bin/python -m bench --only floor
    bench/build/floor -l            # the rows; bench/build/floor -n 50 -r 5 for the raw figures
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import strictfilter
from bench.common import Target, header, table


@dataclass
class Row:
    """One row of the harness's output (nanoseconds)."""

    name: str
    n: int
    var_med: int
    var_p10: int
    var_p90: int
    var_p99: int
    base_med: int
    base_p10: int
    diff_med: int
    diff_p90: int
    in_floor: bool
    what: str


def parse(text: str) -> tuple[list[Row], list[str], list[str]]:
    """(rows, info lines, failed rows) of the harness's tab-separated output."""
    rows, info, failed = [], [], []
    for line in text.splitlines():
        f = line.split("\t")
        if f[0] == "info" and len(f) >= 3:
            info.append(f"{f[1]}: {f[2]}")
        elif f[0] == "row" and len(f) == 3:
            failed.append(f"{f[1]}: {f[2]}")
        elif f[0] == "row" and len(f) == 13:
            n, vm, v10, v90, v99, bm, b10, dm, d90 = (int(x) for x in f[2:11])
            rows.append(Row(f[1], n, vm, v10, v90, v99, bm, b10, dm, d90, f[11] == "1", f[12]))
    return rows, info, failed


def _ms(ns: int) -> float:
    return ns / 1e6


# Row name -> words for the table.
LABELS = {
    "bare": "bare fork+exec+wait",
    "clone3": "clone3 + errpipe + exec + wait (the base)",
    "ns:user": "user namespace alone",
    "ns:pid": "pid namespace alone",
    "ns:mount": "mount namespace alone (copy of ~20 mounts)",
    "ns:net": "net namespace alone",
    "ns:ipc": "ipc namespace alone",
    "ns:uts": "uts namespace alone",
    "ns:cgroup": "cgroup namespace alone",
    "ns:time": "time namespace alone",
    "ns:all8+maps": "all 8 namespaces + id maps from the parent",
    "idmaps": "uid/gid maps written by the launcher",
    "net+lo": "net namespace + lo up",
    "lo-up": "lo up (in a new net namespace)",
    "mount-slave": "mount / rslave",
    "tmpfs": "a tmpfs (fsopen/fsmount, moved in)",
    "overlay": "overlay root: tmpfs upper + overlay, detached, moved in",
    "usr-bind": "/usr read-only (open_tree clone + mount_setattr)",
    "dev": "/dev tmpfs, 6 nodes, 4 links",
    "proc": "proc, subset=pid",
    "root-ro": "/box, /tmp binds + root remounted read-only",
    "pivot": "pivot_root + old root detached",
    "hostname": "sethostname",
    "caps": "bounding set, ids, capset 0, ambient",
    "nnp": "no_new_privs",
    "seccomp:linear": "seccomp attach, linear filter",
    "seccomp:tree": "seccomp attach, binary-tree filter",
    "seccomp:strict": "seccomp attach, strict's own BPF",
    "seccomp:strict+listener": "strict's BPF + listener sent to the launcher, ack",
    "landlock": "Landlock ruleset (ABI's rights, 6 rules), restrict",
    "cgroup-leaf": "cgroup leaf: mkdir, limits, join (tasks), rmdir",
    "init+payload": "an extra fork: init + payload",
    "all": "ALL LAYERS, resident launcher",
    "all:netpre": "ALL LAYERS, net namespace made ahead of the run",
    "all:outer": "ALL LAYERS, a launcher process per run",
    "all:ahead": "ALL LAYERS, net namespace and cgroup leaf made ahead",
    "bwrap": "bwrap --unshare-all, ro /usr (not us: the yardstick)",
    "all/bwrap": "ALL LAYERS vs bwrap, run by run",
    "all:ahead/bwrap": "ALL LAYERS, net ns + leaf ahead, vs bwrap, run by run",
}


def run(
    exe: dict[str, Path],
    runs: int,
    rounds: int,
    targets: list[Target],
    results: dict[str, Any],
    only: str | None = None,
) -> None:
    """Run the harness, print the step table and the floor, record them."""
    header(
        f"floor: the kernel's cost of each step of a strict run ({runs} pairs x {rounds} rounds)"
    )
    tmp = Path(tempfile.mkdtemp(prefix="sbxbench-floor-"))
    try:
        argv = [str(exe["floor"]), "-n", str(runs), "-r", str(rounds)]
        if shutil.which("bwrap"):
            argv += ["-W", str(shutil.which("bwrap"))]
        strict = strictfilter.export(tmp)
        if isinstance(strict, str):
            print(f"strict's filter not exported ({strict}): synthetic filters only")
        else:
            argv += ["-S", str(strict.numbers), "-B", str(strict.bpf)]
        if only:
            argv += ["-o", only]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows, info, failed = parse(p.stdout)
    if p.returncode != 0 and not rows:
        print(f"floor harness failed (exit {p.returncode}): {p.stderr.strip()}")
        targets.append(Target("floor (kernel only)", "reported", "harness failed", None))
        return
    by = {r.name: r for r in rows}
    bare = by.get("bare")
    out = []
    for r in rows:
        absolute = r.base_med == 0
        out.append(
            (
                LABELS.get(r.name, r.name),
                "" if absolute else r.what,
                _ms(r.diff_med) if not absolute else _ms(r.var_med),
                _ms(r.diff_p90) if not absolute else _ms(r.var_p90),
                _ms(r.var_med),
                _ms(r.var_p10),
                _ms(r.var_p90),
                (r.var_med / bare.var_med) if bare else float("nan"),
                "yes" if r.in_floor else "",
            )
        )
    print(
        table(
            (
                "step",
                "against",
                "step ms",
                "step p90",
                "run ms",
                "run p10",
                "run p90",
                "run x bare",
                "in floor",
            ),
            out,
        )
    )
    for line in info:
        print(line)
    for line in failed:
        print(f"row {line}")
    # The floor: the base run plus every step strict needs, each in its own context.
    parts = [r for r in rows if r.in_floor]
    if "seccomp:strict+listener" not in by and "seccomp:tree" in by:
        parts.append(by["seccomp:tree"])  # strict's bytes unavailable: the tree stands in
    floor_ns = sum(r.var_med if r.base_med == 0 else r.diff_med for r in parts)
    whole = {k: by[k] for k in ("all", "all:netpre", "all:ahead", "all:outer") if k in by}
    print(
        f"floor = base + the {len(parts) - 1} steps strict needs: {_ms(floor_ns):.2f} ms"
        + (f" ({floor_ns / bare.var_med:.1f}x bare {_ms(bare.var_med):.2f} ms)" if bare else "")
    )
    for k, r in whole.items():
        print(
            f"{LABELS[k]}: {_ms(r.var_med):.2f} ms median, p10 {_ms(r.var_p10):.2f}, "
            f"p90 {_ms(r.var_p90):.2f}, "
            f"p99 {_ms(r.var_p99):.2f}"
            + (f", {r.var_med / bare.var_med:.1f}x bare" if bare else "")
        )
    for pair in ("all/bwrap", "all:ahead/bwrap"):
        if pair in by:
            r = by[pair]
            print(
                f"{LABELS[pair]}: {r.var_med / r.base_med:.2f}x (medians {_ms(r.var_med):.2f} vs "
                f"{_ms(r.base_med):.2f} ms); p10 {r.var_p10 / r.base_p10:.2f}x "
                f"({_ms(r.var_p10):.2f} vs {_ms(r.base_p10):.2f} ms)"
            )
    results["floor"] = {
        "rows": [r.__dict__ for r in rows],
        "failed": failed,
        "info": info,
        "floor_sum_ms": _ms(floor_ns),
    }
    all_r = whole.get("all")
    vs = by.get("all/bwrap"), by.get("all:ahead/bwrap")
    targets.append(
        Target(
            "floor: all layers, kernel only (C, resident)",
            "reported",
            f"{_ms(all_r.var_med):.2f} ms, p10 {_ms(all_r.var_p10):.2f}, p90 "
            f"{_ms(all_r.var_p90):.2f} (sum of steps "
            f"{_ms(floor_ns):.2f})"
            if all_r
            else f"sum of steps {_ms(floor_ns):.2f} ms",
            None,
            (
                f"{all_r.var_med / bare.var_med:.1f}x bare fork+exec in the same rounds"
                if all_r and bare
                else ""
            )
            + "".join(
                f"; {'ahead' if 'ahead' in r.name else 'all'} vs bwrap run by run "
                f"{r.var_med / r.base_med:.2f}x"
                for r in vs
                if r
            )
            + (
                f"; net ns and leaf made ahead: {_ms(whole['all:ahead'].var_med):.2f} ms"
                if "all:ahead" in whole
                else ""
            ),
            undecided="reported",
        )
    )

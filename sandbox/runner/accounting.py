"""Accounting: the run's figures from its cgroup leaf and from wait4 (supervisor side).

CPU and memory come from the leaf (every task of the run; the launcher's own
pages are not billed, since the payload joins its leaf just before execve).
Without a leaf, CPU and context switches are wait4's and there is no memory
figure: wait4's ``ru_maxrss`` carries the launcher's pre-exec high-water
mark across execve, so it is not the payload's and is not reported.
"""

from __future__ import annotations

from dataclasses import replace

from sandbox.cgroups import Leaf
from sandbox.launcher.protocol import PayloadStatus
from sandbox.runner.result import Usage

# The controllers whose figures the record takes (cpu time and its split, the
# memory peak and OOM kills, the bytes read and written).
RECORD_CONTROLLERS = frozenset({"cpuacct", "memory", "io"})


def base_usage(st: PayloadStatus | None, wall: float | None) -> Usage:
    """Figures from wait4 alone (no cgroup)."""
    if st is None:
        return Usage(wall_time=wall)
    return Usage(
        cpu_time=st.utime + st.stime,
        cpu_user=st.utime,
        cpu_system=st.stime,
        wall_time=wall,
        csw_voluntary=st.nvcsw,
        csw_forced=st.nivcsw,
        rchar=st.rchar if st.rchar >= 0 else None,
        wchar=st.wchar if st.wchar >= 0 else None,
    )


def usage(leaf: Leaf | None, st: PayloadStatus | None, wall: float | None) -> Usage:
    """The run's figures: CPU and memory from the leaf (all its tasks), the rest from wait4."""
    base = base_usage(st, wall)
    if leaf is None:
        return base
    s = leaf.stats(RECORD_CONTROLLERS)
    ns = 1e-9
    cpu = s.cpu_usage_ns * ns if s.cpu_usage_ns is not None else base.cpu_time
    return replace(
        base,
        cpu_time=cpu,
        cpu_user=s.cpu_user_ns * ns if s.cpu_user_ns is not None else base.cpu_user,
        cpu_system=s.cpu_system_ns * ns if s.cpu_system_ns is not None else base.cpu_system,
        memory_peak=s.memory_peak,
        oom_killed=bool(s.oom_killed),
        io_read_bytes=s.io_read_bytes,
        io_write_bytes=s.io_write_bytes,
    )

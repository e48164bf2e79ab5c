"""Per-run cgroup leaves on cgroup v1, v2 and hybrid hosts, behind one small API.

Supervisor side (the payload only calls :func:`join_with_fds`). Typical use::

    layout = detect()                               # once per process
    with create(layout, run_id, CgroupLimits(memory=64 << 20, pids=32),
                required={"memory", "pids"}) as leaf:
        fds = leaf.open_join_fds()                 # handed to the payload, which
        ...                                         # calls join_with_fds() before execve
        while running: leaf.cpu_usage_ns()          # TIME_LIMIT polling
        leaf.kill(); stats = leaf.stats()           # figures for the record
    # leaving the block removes the leaf (kill, wait, rmdir)

``leaf.report`` holds one :class:`ControllerReport` (full / partial / off and
why) per controller for the run record. :func:`sweep` removes leaves that
dead runs left behind. Controllers are chosen per hierarchy by detection, so a
hybrid host (v1 controllers, hugetlb on the unified hierarchy) works as is.
"""

from sandbox.cgroups.detect import ENV_PARENT, CgroupLayout, Hierarchy, detect
from sandbox.cgroups.join import join_with_fds
from sandbox.cgroups.leaf import DEFAULT_PREFIX, Leaf, create, sweep
from sandbox.cgroups.model import (
    DEFAULT_DEVICES,
    DEVICES_TTY,
    CgroupLimits,
    CgroupStats,
    ControllerReport,
    DeviceRule,
    IoLimit,
    State,
)

__all__ = [
    "DEFAULT_DEVICES",
    "DEFAULT_PREFIX",
    "DEVICES_TTY",
    "ENV_PARENT",
    "CgroupLayout",
    "CgroupLimits",
    "CgroupStats",
    "ControllerReport",
    "DeviceRule",
    "Hierarchy",
    "IoLimit",
    "Leaf",
    "State",
    "create",
    "detect",
    "join_with_fds",
    "sweep",
]

"""Cgroup leaves on this host's real cgroups (v1/hybrid here; v2 on most machines).

Needs root (or a delegated parent in SANDBOX_CGROUP_PARENT). The controller
tests are shared with the guest suite (tests/cgroup_behaviour.py); the ones
here are about the host's own layout.
"""

from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cgkit import make_leaf, no_stray_cgroups, spawn  # noqa: F401
from cgroup_behaviour import *  # noqa: F403
from cgroup_behaviour import _devices_refuse

from sandbox.cgroups import CgroupLimits, State, create, detect
from sandbox.cgroups.kernel import CgroupIO
from sandbox.errors import SetupError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup") or "KVM_RUN" in os.environ,
    reason="needs root on the host (the guest runs tests/guest)",
)


@pytest.fixture
def layout():
    lay = detect()
    if lay.mode == "none":
        pytest.skip("no cgroup hierarchy mounted")
    return lay


def test_hybrid_placement_matches_proc_cgroups(layout):
    if layout.mode != "hybrid":
        pytest.skip("hybrid hosts only")
    # /proc/cgroups lists hierarchy 0 both for "on cgroup2" and "not mounted":
    # only the unified hierarchy's cgroup.controllers tells them apart.
    unified = next(h for h in layout.hierarchies if h.version == 2)
    with open(os.path.join(unified.mount, "cgroup.controllers")) as f:
        on_v2 = set(f.read().split())
    for ctrl in on_v2 & {"hugetlb", "memory", "pids", "io", "cpu", "cpuset"}:
        assert layout.placement[ctrl].version == 2
    for h in layout.hierarchies:
        if h.version == 1:
            assert all(layout.placement.get(c) == h for c in h.controllers if c in layout.placement)


def test_devices_through_bpf_on_the_unified_hierarchy(make_leaf, layout, tmp_path):  # noqa: F811
    """On a hybrid host without a v1 devices hierarchy, the eBPF program on the
    unified hierarchy does the refusing (simulated by hiding the v1 mount)."""
    if layout.mode != "hybrid":
        pytest.skip("hybrid hosts only")
    with open("/proc/self/mountinfo") as f:
        mountinfo = "".join(
            ln for ln in f if not (" - cgroup " in ln and "devices" in ln.split()[-1].split(","))
        )
    lay = detect(mountinfo=mountinfo)
    assert lay.placement["devices"].version == 2
    leaf = _devices_refuse(make_leaf, tmp_path, lay=lay)
    assert leaf.placement["devices"].path.startswith(lay.placement["devices"].mount)


def test_unwritable_parent_is_refused_with_the_fix(layout):
    class NoWrite(CgroupIO):
        def writable(self, path: str) -> bool:
            return False

    lay = detect(io=NoWrite())
    with pytest.raises(SetupError) as exc:
        create(lay, "nope", CgroupLimits(), {"memory"})
    assert "SANDBOX_CGROUP_PARENT" in str(exc.value)


def test_create_remove_cost(layout):
    """Not a benchmark: a sanity bound, and the figures for the record (-s)."""
    t0 = time.perf_counter()
    n = 20
    for i in range(n):
        create(
            layout, f"{os.getpid()}-cost{i}", CgroupLimits(memory=1 << 26, pids=64), prefix="sbxt"
        ).remove()
    per_leaf = (time.perf_counter() - t0) / n
    leaf = create(layout, f"{os.getpid()}-poll", CgroupLimits(), prefix="sbxt")
    try:
        spawn(leaf, "spin", "0.01").wait()
        leaf.cpu_usage_ns()
        t0 = time.perf_counter()
        for _ in range(1000):
            leaf.cpu_usage_ns()
        per_poll = (time.perf_counter() - t0) / 1000
    finally:
        leaf.remove()
    print(f"\ncreate+remove {per_leaf * 1e3:.2f} ms/leaf, cpu_usage_ns {per_poll * 1e6:.1f} us")
    assert per_leaf < 0.5 and per_poll < 0.001
    assert {r.state for r in leaf.report if r.controller == "memory"} == {State.FULL}

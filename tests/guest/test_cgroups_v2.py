"""cgroup v2 in the kvm-run guest (Debian 6.1, every controller in the root's
subtree_control): the shared controller tests, plus the no-internal-processes
rule, cgroup.kill, the eBPF device program and hugetlb with reserved pages.

Run from the project root, one guest for the whole file:
    python3 ../shared/tools/kvm-run --env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 -- \
        .venv/bin/python -m pytest -q -p hypothesis tests/guest/test_cgroups_v2.py

The module first moves *the test runner* (never the library) out of the root
cgroup into /sbxguest/runner, so its own cgroup holds processes and is not
the root: exactly the case the no-internal-processes rule forbids as a parent.
Leaves then go under /sbxguest, named as the delegated parent.
"""

from __future__ import annotations

import errno
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cgkit import make_leaf, no_stray_cgroups, spawn  # noqa: F401
from cgroup_behaviour import *  # noqa: F403

from sandbox.cgroups import CgroupLimits, State, create, detect
from sandbox.errors import SetupError

ROOT = "/sys/fs/cgroup"
BASE = f"{ROOT}/sbxguest"
pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1" or not os.path.exists(f"{ROOT}/cgroup.controllers"),
    reason="runs in the kvm-run guest (cgroup v2) only",
)


def _move_self(cgroup: str) -> None:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))


@pytest.fixture(scope="module")
def runner_moved():
    os.makedirs(f"{BASE}/runner")
    _move_self(f"{BASE}/runner")
    try:
        yield f"{BASE}/runner"
    finally:
        _move_self(ROOT)
        os.rmdir(f"{BASE}/runner")
        os.rmdir(BASE)


@pytest.fixture
def layout(runner_moved):
    return detect(parent="/sbxguest", env={})


def test_the_runner_is_in_a_busy_non_root_cgroup(runner_moved):
    with open("/proc/self/cgroup") as f:
        assert f.read().strip() == "0::/sbxguest/runner"


def test_own_busy_cgroup_is_refused_with_the_fix(runner_moved, make_leaf):  # noqa: F811
    own = detect(env={})
    h = own.placement["memory"]
    assert h.parent == f"{BASE}/runner" and h.parent_busy
    with pytest.raises(SetupError) as exc:
        create(own, "busy", CgroupLimits(memory=1 << 26), {"memory"}, prefix="sbxt")
    assert "supervisor" in str(exc.value) and "SANDBOX_CGROUP_PARENT" in str(exc.value)
    assert not [e for e in os.listdir(f"{BASE}/runner") if e.startswith("sbxt")]
    with open(f"{BASE}/runner/cgroup.subtree_control") as f:
        assert f.read().split() == []  # the caller's own cgroup was not touched
    # Nothing required: the run goes ahead with what needs no controller.
    leaf = make_leaf(CgroupLimits(memory=1 << 26), lay=own)
    states = {r.controller: r.state for r in leaf.report}
    assert states["memory"] is State.OFF and states["devices"] is State.FULL


def test_v2_mechanisms_are_the_v2_ones(make_leaf, layout):  # noqa: F811
    assert layout.mode == "v2"
    with open(f"{BASE}/cgroup.subtree_control") as f:
        before = f.read().split()
    leaf = make_leaf(CgroupLimits(memory=1 << 26, pids=8), {"memory", "pids", "devices"})
    detail = {r.controller: r.detail for r in leaf.report}
    assert "cgroup.kill" in detail["freezer"] and "eBPF" in detail["devices"]
    assert "swap 0" in detail["memory"] and "whole group" in detail["memory"]
    with open(f"{BASE}/cgroup.subtree_control") as f:
        assert {"memory", "pids", "cpu", "io"} <= set(f.read().split()) | set(before)
    with open(os.path.join(leaf.placement["memory"].path, "memory.swap.max")) as f:
        assert f.read().strip() == "0"


@pytest.fixture
def hugepages():
    path = "/proc/sys/vm/nr_hugepages"
    with open(path, "w") as f:
        f.write("8")
    with open(path) as f:
        if int(f.read()) < 4:
            pytest.skip("could not reserve 2 MiB huge pages")
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write("0")


def test_hugetlb_limit(make_leaf, hugepages):  # noqa: F811
    leaf = make_leaf(CgroupLimits(hugetlb={"2MB": 2 << 21}), {"hugetlb"})
    ok = spawn(leaf, "hugetlb", "2")
    assert ok.line() == "huge ok"
    ok.wait()
    over = spawn(leaf, "hugetlb", "3")  # 8 pages are free: only the limit refuses
    assert over.line() == f"huge errno {errno.ENOMEM}"
    over.wait()

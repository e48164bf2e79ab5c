"""Controller tests on a real kernel, shared by the host (v1/hybrid) and guest (v2) suites.

Each test asserts the *effect* of one controller, so it fails when that
controller alone is removed; bounds do not depend on machine load. Imported
with ``from cgroup_behaviour import *`` by a module that defines the
``layout`` fixture.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cgkit import PREFIX, probe, spawn, strays

from sandbox.cgroups import (
    DEFAULT_DEVICES,
    CgroupLimits,
    DeviceRule,
    IoLimit,
    State,
    join_with_fds,
    sweep,
)

MIB = 1 << 20
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWPID = 0x20000000


def killed_by(status: int) -> int | None:
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def test_memory_limit_oom_kills_and_counts(make_leaf):
    leaf = make_leaf(CgroupLimits(memory=32 * MIB), {"memory"})
    small = spawn(leaf, "alloc", "8")
    assert small.line() == "allocated" and os.WEXITSTATUS(small.wait()) == 0
    assert leaf.stats().memory_peak >= 8 * MIB and not leaf.stats().oom_killed
    hog = spawn(leaf, "alloc", "256")
    assert killed_by(hog.wait()) == signal.SIGKILL
    st = leaf.stats()
    assert st.oom_killed and st.oom_kills >= 1
    assert 8 * MIB <= st.memory_peak <= 32 * MIB
    assert st.memory_peak_source in ("memory.peak", "memory.max_usage_in_bytes")


def test_launcher_pages_are_not_billed(make_leaf):
    """The child joins after fork, just before exec: the parent's 64 MiB stay outside."""
    ballast = bytearray(64 * MIB)
    ballast[::4096] = b"x" * (len(ballast) // 4096)
    leaf = make_leaf(CgroupLimits(memory=16 * MIB), {"memory"})
    child = spawn(leaf, "alloc", "0")
    assert child.line() == "allocated" and os.WEXITSTATUS(child.wait()) == 0
    assert leaf.stats().memory_peak < 4 * MIB
    del ballast


def test_pids_bound_a_fork_bomb(make_leaf):
    leaf = make_leaf(CgroupLimits(pids=8), {"pids"})
    bomb = spawn(leaf, "forkbomb", "200")  # RLIMIT_NPROC is unlimited in the child
    forked, err = bomb.line().split()[1::2]
    assert int(forked) == 7 and int(err) == errno.EAGAIN  # 8 tasks with the bomb itself
    st = leaf.stats()
    assert st.pids_current == 8 and st.pids_limit_hits >= 1
    leaf.kill()
    assert killed_by(bomb.wait()) == signal.SIGKILL and leaf.is_empty()


def test_cpu_quota_throttles(make_leaf):
    leaf = make_leaf(CgroupLimits(cpu_quota=0.2), {"cpu"})
    t0 = time.monotonic()
    burner = spawn(leaf, "burn", "0.15")  # 150 ms of CPU at 20 ms per 100 ms period
    assert burner.line() == "burnt" and os.WEXITSTATUS(burner.wait()) == 0
    wall = time.monotonic() - t0
    st = leaf.stats()
    # The quota is a ceiling whatever the load: unthrottled the burn takes 0.15 s; at
    # 20 ms a period it needs 7.5 periods, less the partial first one and one 5 ms
    # slice per CPU that CFS may hand out ahead, so at least 0.5 s.
    assert wall >= 0.5, (st, wall)
    # CFS grants at most the quota per period (the counted ones plus a partial one).
    assert st.cpu_usage_ns <= 0.02e9 * (st.cpu_nr_periods + 1) + 0.01e9, (st, wall)
    assert st.cpu_nr_throttled > 0 and st.cpu_throttled_ns > 0
    assert st.cpu_user_ns is not None and st.cpu_system_ns is not None


def test_cpuset_pins_and_cannot_be_widened(make_leaf):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    last = str(cpus[-1])
    leaf = make_leaf(CgroupLimits(cpuset=last), {"cpuset"})
    child = spawn(leaf, "affinity")
    assert child.line() == f"before {last}"
    child.line()  # sched_setaffinity to all CPUs: accepted or refused, never widened
    assert child.line() == f"after {last}"
    child.wait()


def test_cpu_usage_ns_tracks_the_leaf(make_leaf):
    leaf = make_leaf()
    assert leaf.cpu_usage_ns() == 0
    child = spawn(leaf, "burn", "0.1")
    child.wait()
    usage = leaf.cpu_usage_ns()
    assert usage >= 0.1e9, usage
    assert abs(usage - leaf.stats().cpu_usage_ns) < 0.01e9


@pytest.fixture
def loopdev(tmp_path):
    if not os.path.exists("/dev/loop-control"):  # the guest loads modules on demand only
        subprocess.run(["modprobe", "loop"], check=True)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(16 * MIB)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(img)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        rdev = os.stat(dev).st_rdev
        yield dev, os.major(rdev), os.minor(rdev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_io_throttles_direct_reads_and_writes(make_leaf, loopdev):
    dev, major, minor = loopdev
    bps, size = MIB, 2 * MIB
    devices = (*DEFAULT_DEVICES, DeviceRule("b", major, minor, "rw"))
    leaf = make_leaf(
        CgroupLimits(io=(IoLimit(f"{major}:{minor}", rbps=bps, wbps=bps),), devices=devices), {"io"}
    )
    for mode in ("r", "w"):
        child = spawn(leaf, "dio", dev, mode, str(size))
        done, ns = map(int, child.line().split()[1:])
        child.wait()
        # The throttle lets about one slice through at once; the rest waits.
        assert done == size and ns >= 0.8 * (size - 0.2 * bps) / bps * 1e9, mode
    st = leaf.stats()
    assert st.io_read_bytes >= size and st.io_write_bytes >= size
    assert st.io_read_ios >= size // (64 * 1024)


def _devices_refuse(make_leaf, tmp_path, lay=None):
    """A node with the numbers of /dev/kmsg (c 1:11: same major as /dev/null, other
    minor) opens outside the leaf, so neither nodev nor a missing driver is what
    refuses it inside; /dev/null (c 1:3) still works inside."""
    node = tmp_path / "kmsgnode"
    os.mknod(node, 0o600 | 0o020000, os.makedev(1, 11))
    try:
        os.close(os.open(node, os.O_RDONLY))
    except PermissionError:  # a nodev /tmp (the guest's): devtmpfs is never nodev
        node.unlink()
        node = Path(f"/dev/{PREFIX}kmsgnode")
        os.mknod(node, 0o600 | 0o020000, os.makedev(1, 11))
        os.close(os.open(node, os.O_RDONLY))
    try:
        leaf = make_leaf(CgroupLimits(), {"devices"}, lay=lay)
        child = spawn(leaf, "open", "/dev/null", str(node))
        assert child.line() == "/dev/null ok"
        assert child.line() == f"{node} errno {errno.EPERM}"
        child.wait()
    finally:
        node.unlink()
    return leaf


def test_devices_refuse_a_node_outside_the_list(make_leaf, tmp_path):
    _devices_refuse(make_leaf, tmp_path)


def test_freezer_stops_and_resumes_progress(make_leaf, tmp_path):
    leaf = make_leaf(CgroupLimits(), {"freezer"})
    counter = tmp_path / "counter"
    child = spawn(leaf, "counter", str(counter))

    def value():
        return int(counter.read_text() or 0) if counter.exists() else 0

    deadline = time.monotonic() + 30
    while value() < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    leaf.freeze()
    frozen_at = value()
    time.sleep(0.3)
    assert value() == frozen_at
    leaf.thaw()
    deadline = time.monotonic() + 30
    while value() <= frozen_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert value() > frozen_at
    leaf.kill()
    assert killed_by(child.wait()) == signal.SIGKILL


def test_kill_leaves_nothing_even_a_fork_loop(make_leaf):
    leaf = make_leaf(CgroupLimits(pids=64), {"freezer", "pids"})
    spawn(leaf, "forkloop").wait()  # the first process exits at once; its heirs go on
    spawn(leaf, "forkbomb", "20")
    time.sleep(0.2)
    assert not leaf.is_empty()
    leaf.kill()
    assert leaf.is_empty()
    time.sleep(0.1)
    assert leaf.is_empty()  # nothing forked its way past the kill


def test_the_whole_payload_joins_every_hierarchy(make_leaf):
    """v1 is joined through ``tasks`` (only the writing thread moves, which spares
    the threadgroup lock's RCU sync); the process, its threads and what it
    forks must still be in the leaf in every hierarchy, v1 and v2."""
    leaf = make_leaf(CgroupLimits(pids=64), {"pids"})
    fds = leaf.open_join_fds()
    try:
        for d, fd in zip(leaf.dirs, fds, strict=True):
            want = {1: "tasks", 2: "cgroup.procs"}[d.hierarchy.version]
            assert os.readlink(f"/proc/self/fd/{fd}") == os.path.join(d.path, want)
        child = spawn(leaf, "forkbomb", "1", fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert child.line() == "forked 1 errno 0"
    grandchildren = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    assert len(grandchildren) == 1
    leaf_name = os.path.basename(leaf.dirs[0].path)
    for pid in [str(child.pid), *grandchildren]:
        for task in os.listdir(f"/proc/{pid}/task"):
            lines = Path(f"/proc/{pid}/task/{task}/cgroup").read_text().splitlines()
            inside = [ln for ln in lines if ln.endswith("/" + leaf_name)]
            assert len(inside) == len(leaf.dirs), (pid, task, lines)
    leaf.kill()


def test_join_with_zero_after_dropping_privileges(make_leaf):
    """Fds opened as root let a payload that is no longer root join (file creds)."""
    leaf = make_leaf()

    def drop():
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)

    child = spawn(leaf, "burn", "0.02", before_join=drop)
    assert child.line() == "burnt"
    child.wait()
    assert leaf.stats().cpu_usage_ns >= 0.02e9


@pytest.mark.parametrize("how", ["zero", "decimal pid"])
def test_join_from_new_pid_and_cgroup_namespaces(make_leaf, how):
    """The payload is in new pid and cgroup namespaces when it joins. "0" names the
    writer, and so does its pid as seen in its own namespace (1 here); fds opened
    before unshare(CLONE_NEWCGROUP) still work, because the kernel checks the
    opener's cgroup namespace (v2 nsdelegate)."""
    leaf = make_leaf()
    fds = leaf.open_join_fds()
    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.fork()
    if pid == 0:
        try:
            if libc.unshare(CLONE_NEWPID | CLONE_NEWCGROUP) != 0:
                raise OSError(ctypes.get_errno(), "unshare")
            inner = os.fork()
            if inner == 0:
                if how == "zero":
                    join_with_fds(fds, os.write)
                else:
                    for fd in fds:
                        os.write(fd, str(os.getpid()).encode())  # "1"
                os.execv(probe(), [probe(), "burn", "0.05"])
            os._exit(os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1]))
        except BaseException as exc:
            os.write(2, f"{exc!r}\n".encode())
        finally:
            os._exit(127)
    for fd in fds:
        os.close(fd)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert leaf.stats().cpu_usage_ns >= 0.05e9  # the burn ran inside the leaf


def test_remove_is_idempotent_and_sweep_takes_stale_leaves(make_leaf, layout):
    a, b = make_leaf(), make_leaf()
    spawn(b, "forkbomb", "3")
    time.sleep(0.1)
    removed = sweep(layout, PREFIX, lambda run_id: run_id == b.run_id)
    assert removed == [b.run_id]
    assert all(not os.path.exists(d.path) for d in b.dirs)
    assert all(os.path.exists(d.path) for d in a.dirs)
    a.remove()
    a.remove()
    assert not strays(layout)


def test_report_says_what_is_enforced(make_leaf):
    leaf = make_leaf(CgroupLimits(memory=64 * MIB, pids=16))
    states = {r.controller: r.state for r in leaf.report}
    for c in ("memory", "pids", "cpu", "cpuacct", "freezer", "devices", "io"):
        assert states[c] in (State.FULL, State.PARTIAL), c
    assert states["net_cls"] is State.OFF

"""create/stats/kill/remove/sweep on fake hosts, and what is (never) written."""

from __future__ import annotations

import errno
import os

import pytest
from cgroupfs_fake import CALLER_PID, FakeHost

from sandbox.cgroups import (
    DEFAULT_DEVICES,
    CgroupLimits,
    DeviceRule,
    IoLimit,
    State,
    bpfdev,
    create,
    detect,
    join_with_fds,
    sweep,
)
from sandbox.errors import PolicyError, SetupError, UnsupportedError
from sandbox.runner.accounting import RECORD_CONTROLLERS

LIMITS = CgroupLimits(
    memory=64 << 20,
    pids=32,
    cpu_quota=0.5,
    cpu_weight=50,
    cpuset="1",
    io=(IoLimit("7:0", rbps=1 << 20, wbps=2 << 20),),
)


def layout_of(host: FakeHost, **kw):
    return detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=host.mountinfo,
        io=host.io,
        env={},
        **kw,
    )


def leaf_files(host: FakeHost) -> set[str]:
    found = set()
    for dirpath, dirnames, _ in os.walk(host.root):
        found |= {os.path.join(dirpath, d) for d in dirnames if d.startswith("sbx-")}
    return found


def written(host: FakeHost, suffix: str) -> list[str]:
    return [data for path, data in host.io.writes if path.endswith(suffix)]


@pytest.fixture
def hybrid(tmp_path):
    return FakeHost(tmp_path / "hybrid", "hybrid", own={"memory": "/process_api/abc"})


@pytest.fixture
def v2(tmp_path):
    host = FakeHost(tmp_path / "v2", "v2", own={"": "/user.slice/session-1.scope"})
    host.make_cgroup("", "/judge.service")
    return host


def test_v1_hybrid_limits_are_written(hybrid):
    leaf = create(layout_of(hybrid), "r1", LIMITS, required={"memory", "pids"})
    mem = hybrid.root + "/sys/fs/cgroup/memory/process_api/abc/sbx-r1"
    assert leaf.placement["memory"].path == mem
    assert written(hybrid, "memory.limit_in_bytes") == [str(64 << 20)]
    assert written(hybrid, "memory.memsw.limit_in_bytes") == [str(64 << 20)]  # swap 0
    assert written(hybrid, "pids.max") == ["32"]
    assert written(hybrid, "cpu.cfs_quota_us") == ["50000"]
    assert written(hybrid, "cpu.shares") == ["512"]
    # a v1 cpuset child takes no task until mems and cpus are set: copied, then pinned
    assert written(hybrid, "cpuset.mems") == ["0"]
    assert written(hybrid, "cpuset.cpus") == ["0-1", "1"]
    assert written(hybrid, "devices.deny") == ["a"]
    assert written(hybrid, "devices.allow") == [r.v1() for r in DEFAULT_DEVICES]
    assert written(hybrid, "read_bps_device") == ["7:0 1048576"]
    states = {r.controller: r for r in leaf.report}
    assert states["io"].state is State.PARTIAL and "O_DIRECT" in states["io"].detail
    assert states["memory"].state is State.FULL and "tmpfs" in states["memory"].detail
    assert states["net_cls"].state is State.OFF and "network namespace" in states["net_cls"].detail
    assert "hugetlb" not in states  # not requested: the unified hierarchy is not touched
    assert not any("unified" in path for path, _ in hybrid.io.writes)
    assert leaf.dirs[0].hierarchy.name == "freezer"  # the kill hierarchy is joined first
    leaf.remove()
    assert leaf_files(hybrid) == set()


def test_hybrid_hugetlb_goes_through_the_unified_hierarchy(hybrid):
    leaf = create(
        layout_of(hybrid), "r2", CgroupLimits(hugetlb={"2MB": 2 << 20}), required={"hugetlb"}
    )
    unified = hybrid.root + "/sys/fs/cgroup/unified"
    assert (unified + "/cgroup.subtree_control", "+hugetlb") in hybrid.io.writes  # root: allowed
    assert leaf.placement["hugetlb"].path == unified + "/sbx-r2"
    assert written(hybrid, "hugetlb.2MB.max") == [str(2 << 20)]
    assert written(hybrid, "hugetlb.2MB.rsvd.max") == [str(2 << 20)]
    assert leaf.stats().hugetlb_limit_hits == 3
    leaf.remove()


def test_v2_busy_own_cgroup_is_refused_with_the_fix(v2):
    with pytest.raises(SetupError) as exc:
        create(layout_of(v2), "r3", LIMITS, required={"memory"})
    msg = str(exc.value)
    assert "no internal processes" in msg and "/supervisor" in msg
    assert "SANDBOX_CGROUP_PARENT" in msg
    assert leaf_files(v2) == set()
    # Never even tried: the caller's own cgroup is left exactly as it was.
    assert not written(v2, "session-1.scope/cgroup.subtree_control")


def test_v2_busy_own_cgroup_degrades_when_nothing_is_required(v2):
    leaf = create(layout_of(v2), "r4", LIMITS)
    states = {r.controller: r.state for r in leaf.report}
    assert states["memory"] is State.OFF and states["pids"] is State.OFF
    assert states["devices"] is State.FULL and states["freezer"] is State.FULL
    mem = next(r for r in leaf.report if r.controller == "memory")
    assert mem.detail.startswith("requested limit NOT enforced")
    leaf.remove()


def test_v2_delegated_parent(v2):
    leaf = create(
        layout_of(v2, parent="/judge.service"),
        "r5",
        LIMITS,
        required={"memory", "pids", "cpu", "io", "cpuset", "devices", "freezer"},
    )
    parent = v2.root + "/sys/fs/cgroup/judge.service"
    assert written(v2, "judge.service/cgroup.subtree_control") == ["+cpu +cpuset +io +memory +pids"]
    assert written(v2, "memory.max") == [str(64 << 20)]
    assert written(v2, "memory.swap.max") == ["0"]
    assert written(v2, "memory.oom.group") == ["1"]
    assert written(v2, "cpu.max") == ["50000 100000"]
    assert written(v2, "cpu.weight") == ["50"]
    assert written(v2, "io.max") == ["7:0 rbps=1048576 wbps=2097152"]
    assert v2.io.programs == [(parent + "/sbx-r5", bpfdev.build(DEFAULT_DEVICES))]
    assert all(
        r.state is State.FULL for r in leaf.report if r.controller not in ("net_cls", "net_prio")
    )
    stats = leaf.stats()
    assert (stats.cpu_usage_ns, stats.cpu_user_ns, stats.cpu_system_ns) == (7000, 4000, 3000)
    assert (stats.cpu_nr_throttled, stats.cpu_throttled_ns) == (6, 9000)
    assert (stats.memory_peak, stats.memory_peak_source) == (2097152, "memory.peak")
    assert stats.oom_kills == 1 and stats.oom_killed and stats.memory_limit_hits == 5
    assert (stats.io_read_bytes, stats.io_write_bytes, stats.io_write_ios) == (101, 202, 6)
    assert leaf.cpu_usage_ns() == 7000
    record = leaf.stats(RECORD_CONTROLLERS)  # the run record's figures, the same values
    for name in ("cpu_usage_ns", "cpu_user_ns", "cpu_system_ns", "memory_peak", "oom_killed"):
        assert getattr(record, name) == getattr(stats, name)
    assert (record.io_read_bytes, record.io_write_bytes) == (101, 202)
    assert record.pids_current is None and record.cpu_nr_throttled is None  # not read
    leaf.remove()
    leaf.remove()  # idempotent
    assert leaf_files(v2) == set()


def test_v1_stats_and_usage(hybrid):
    with create(layout_of(hybrid), "r6", CgroupLimits()) as leaf:
        s = leaf.stats()
        assert (s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns) == (1500, 1000, 500)
        assert (s.cpu_nr_periods, s.cpu_nr_throttled, s.cpu_throttled_ns) == (7, 3, 5000)
        assert (s.memory_peak, s.memory_peak_source) == (1048576, "memory.max_usage_in_bytes")
        assert s.oom_kills == 1 and s.oom_killed and s.pids_limit_hits == 4
        assert (s.io_read_bytes, s.io_write_bytes, s.io_read_ios, s.io_write_ios) == (
            8192,
            4096,
            2,
            1,
        )
        assert leaf.cpu_usage_ns() == 1500
    assert leaf_files(hybrid) == set()


def test_kept_open_files_are_reread_and_closed_with_the_leaf(hybrid, v2):
    for host in (hybrid, v2):
        lay = layout_of(host, **({"parent": "/judge.service"} if host is v2 else {}))
        leaf = create(lay, "k1", CgroupLimits(memory=64 << 20))
        before = leaf.stats(RECORD_CONTROLLERS)
        leaf.keep_open(RECORD_CONTROLLERS)
        dirs = tuple(d.path for d in leaf.dirs)
        assert leaf._kept and all(p.startswith(dirs) for p in leaf._kept)
        assert leaf.stats(RECORD_CONTROLLERS) == before  # the same figures through the fds
        peak = "memory.max_usage_in_bytes" if host is hybrid else "memory.peak"
        mem = leaf.placement["memory"].path
        host.io._set(os.path.join(mem, peak), "12345\n")  # the run's figure, written later
        assert leaf.stats(RECORD_CONTROLLERS).memory_peak == 12345
        open_before = len(os.listdir("/proc/self/fd"))
        kept = len(leaf._kept)
        leaf.remove()
        assert leaf._kept == {}
        assert len(os.listdir("/proc/self/fd")) == open_before - kept
        assert leaf_files(host) == set()


def test_no_usable_parent_anywhere_is_refused_with_the_fix(tmp_path):
    host = FakeHost(tmp_path, "v1")
    for fs in host.io.mounts:
        host.io.readonly.add(fs)
    with pytest.raises(SetupError) as exc:
        create(layout_of(host), "r7", CgroupLimits())
    assert "no write access" in str(exc.value) and "SANDBOX_CGROUP_PARENT" in str(exc.value)


def test_required_controller_missing_on_the_host(tmp_path):
    host = FakeHost(tmp_path, "v1")  # no cpuset, no io hierarchy
    with pytest.raises(SetupError, match="cpuset"):
        create(layout_of(host), "r8", CgroupLimits(cpuset="0"), required={"cpuset"})
    leaf = create(layout_of(host), "r8", CgroupLimits(cpuset="0"))
    assert {r.controller: r.state for r in leaf.report}["cpuset"] is State.OFF
    leaf.remove()


def test_without_a_freezer_freeze_is_unsupported_and_kill_still_works(tmp_path):
    host = FakeHost(tmp_path, "v1")
    mountinfo = "\n".join(ln for ln in host.mountinfo.splitlines() if "rw,freezer" not in ln)
    lay = detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=mountinfo,
        io=host.io,
        env={},
    )
    leaf = create(lay, "nf", CgroupLimits())
    assert {r.controller: r.state for r in leaf.report}["freezer"] is State.OFF
    with pytest.raises(UnsupportedError, match="freezer"):
        leaf.freeze()
    host.io._set(os.path.join(leaf.dirs[0].path, "cgroup.procs"), "777\n")
    leaf.remove()
    assert host.io.signalled == [777] and leaf_files(host) == set()


def test_failed_limit_write_rolls_back(hybrid):
    hybrid.io.fail["pids.max"] = errno.EINVAL
    with pytest.raises(SetupError, match="pids"):
        create(layout_of(hybrid), "r9", LIMITS, required={"pids"})
    assert leaf_files(hybrid) == set()
    leaf = create(layout_of(hybrid), "r9", LIMITS)  # not required: reported off
    pids = next(r for r in leaf.report if r.controller == "pids")
    assert pids.state is State.OFF and "Invalid argument" in pids.detail
    leaf.remove()


def test_existing_leaf_is_refused(hybrid):
    lay = layout_of(hybrid)
    leaf = create(lay, "dup", CgroupLimits())
    with pytest.raises(SetupError, match="already exists"):
        create(lay, "dup", CgroupLimits())
    leaf.remove()
    assert leaf_files(hybrid) == set()


def test_remove_kills_what_is_left_and_sweep_removes_stale_leaves(hybrid):
    lay = layout_of(hybrid)
    live, dead = create(lay, "live", CgroupLimits()), create(lay, "dead", CgroupLimits())
    for d in dead.dirs:  # pretend the payload joined and forked
        hybrid.io._set(os.path.join(d.path, "cgroup.procs"), "9001\n9002\n")
    assert not dead.is_empty()
    assert sweep(lay, "sbx-", lambda run_id: run_id == "dead") == ["dead"]
    assert sorted(set(hybrid.io.signalled)) == [9001, 9002]
    assert "FROZEN" in written(hybrid, "freezer.state")
    assert {os.path.basename(p) for p in leaf_files(hybrid)} == {"sbx-live"}
    live.remove()


def test_the_callers_pid_is_never_written_or_signalled(hybrid, v2):
    for host, kw in ((hybrid, {}), (v2, {"parent": "/judge.service"})):
        lay = layout_of(host, **kw)
        leaf = create(lay, "p", LIMITS)
        fds = leaf.open_join_fds()
        for fd in fds:
            os.close(fd)
        leaf.stats()
        leaf.freeze()
        leaf.thaw()
        leaf.remove()
        sweep(lay, "sbx-", lambda _: True)
        assert not any(str(CALLER_PID) in data.split() for _, data in host.io.writes)
        assert not any(path.endswith(("cgroup.procs", "tasks")) for path, _ in host.io.writes)
        assert CALLER_PID not in host.io.signalled


def test_join_with_fds_writes_zero_to_each_fd_in_order():
    calls = []
    join_with_fds([7, 5, 9], lambda fd, data: calls.append((fd, data)))
    assert calls == [(7, b"0"), (5, b"0"), (9, b"0")]


def test_open_join_fds_are_write_only_cloexec(hybrid):
    with create(layout_of(hybrid), "fds", CgroupLimits()) as leaf:
        fds = leaf.open_join_fds()
        try:
            assert len(fds) == len(leaf.dirs)
            for fd in fds:
                assert not os.get_inheritable(fd)
                import fcntl

                assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        finally:
            for fd in fds:
                os.close(fd)


@pytest.mark.parametrize(
    "bad",
    [
        {"memory": 0},
        {"pids": -1},
        {"cpu_quota": 0.0},
        {"cpu_weight": 0},
        {"cpuset": "a"},
        {"hugetlb": {"2M": 1}},
    ],
)
def test_limits_are_validated(bad):
    with pytest.raises(PolicyError):
        CgroupLimits(**bad)


def test_rules_and_io_limits_are_validated():
    with pytest.raises(PolicyError):
        IoLimit("sda", rbps=1)
    with pytest.raises(PolicyError):
        IoLimit("8:0", wbps=0)
    with pytest.raises(PolicyError):
        DeviceRule("x")
    assert DeviceRule("c", 136, None, "rw").v1() == "c 136:* rw"


def test_unknown_required_controller_is_an_error(hybrid):
    with pytest.raises(SetupError, match="blkio"):
        create(layout_of(hybrid), "u", CgroupLimits(), required={"blkio"})


@pytest.mark.parametrize("run_id", ["", "../x", "a/b", "x" * 65, ".hidden"])
def test_bad_run_ids(hybrid, run_id):
    with pytest.raises(SetupError):
        create(layout_of(hybrid), run_id, CgroupLimits())


def test_remove_of_an_empty_leaf_only_rmdirs_and_a_half_joined_task_is_still_killed(hybrid):
    lay = layout_of(hybrid)
    empty = create(lay, "empty", CgroupLimits())
    busy = create(lay, "busy", CgroupLimits())
    empty.remove()  # the usual end of a run: init killed everything already
    assert hybrid.io.signalled == []
    assert not any("FROZEN" in data for _, data in hybrid.io.writes)
    assert {os.path.basename(p) for p in leaf_files(hybrid)} == {"sbx-busy"}
    # A task that joined the kill hierarchy and one more, then stopped: the
    # directories it is not in go, the busy one makes the remove kill it.
    for d in busy.dirs[:2]:
        hybrid.io._set(os.path.join(d.path, "cgroup.procs"), "9001\n")
    busy.remove()
    assert set(hybrid.io.signalled) == {9001}
    assert "FROZEN" in written(hybrid, "freezer.state")
    assert leaf_files(hybrid) == set()

"""Detection on fake hosts: where each controller lives and which parent is usable."""

from __future__ import annotations

import pytest
from cgroupfs_fake import FakeHost

from sandbox.cgroups import detect
from sandbox.cgroups.detect import parse_mountinfo, resolve


def layout_of(host: FakeHost, **kw):
    return detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=host.mountinfo,
        io=host.io,
        env={},
        **kw,
    )


def test_hybrid_like_the_dev_host(tmp_path):
    host = FakeHost(tmp_path, "hybrid", own={"memory": "/process_api/abc"})
    lay = layout_of(host)
    assert lay.mode == "hybrid"
    assert lay.placement["memory"].parent == host.root + "/sys/fs/cgroup/memory/process_api/abc"
    assert lay.placement["pids"].parent == host.root + "/sys/fs/cgroup/pids"
    assert lay.placement["io"].name == "blkio"
    # hugetlb is only on the unified hierarchy; freezer/devices/cpuacct stay on v1.
    assert lay.placement["hugetlb"].version == 2
    assert {c: lay.placement[c].version for c in ("freezer", "devices", "cpuacct")} == {
        "freezer": 1,
        "devices": 1,
        "cpuacct": 1,
    }
    assert "net_cls" in lay.missing and "network namespace" in lay.missing["net_cls"]
    assert "name=systemd" not in {h.name for h in lay.hierarchies}
    assert "memory: v1 memory" in lay.describe()


def test_hybrid_without_v1_devices_falls_back_to_bpf_on_unified(tmp_path):
    host = FakeHost(tmp_path, "hybrid")
    mountinfo = "\n".join(ln for ln in host.mountinfo.splitlines() if "rw,devices" not in ln)
    lay = detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=mountinfo,
        io=host.io,
        env={},
    )
    assert lay.placement["devices"].version == 2


def test_v1_comounted(tmp_path):
    lay = layout_of(FakeHost(tmp_path, "v1"))
    assert lay.mode == "v1"
    assert lay.placement["cpu"] is lay.placement["cpuacct"]
    assert lay.placement["net_cls"].name == "net_cls,net_prio"
    assert "cpuset" in lay.missing and "hugetlb" in lay.missing


def test_v2_caller_in_busy_cgroup(tmp_path):
    host = FakeHost(tmp_path, "v2", own={"": "/user.slice/session-1.scope"})
    lay = layout_of(host)
    h = lay.placement["memory"]
    assert lay.mode == "v2" and h.version == 2 and h.parent_busy
    assert {"memory", "pids", "cpu", "io", "cpuacct", "freezer", "devices"} <= h.controllers
    assert "net_cls" in lay.missing


def test_named_parent_from_env_and_argument(tmp_path):
    host = FakeHost(tmp_path, "v2", own={"": "/user.slice/session-1.scope"})
    host.make_cgroup("", "/judge.service")
    for lay in (
        layout_of(host, parent="/judge.service"),
        detect(
            root=host.root,
            proc_self_cgroup=host.proc_self_cgroup,
            mountinfo=host.mountinfo,
            io=host.io,
            env={"SANDBOX_CGROUP_PARENT": "/judge.service"},
        ),
    ):
        h = lay.placement["memory"]
        assert h.parent == host.root + "/sys/fs/cgroup/judge.service" and not h.parent_busy


def test_missing_or_readonly_parent_is_a_problem_with_the_fix(tmp_path):
    host = FakeHost(tmp_path, "v2")
    lay = layout_of(host, parent="/nope")
    assert not lay.placement and "does not exist" in lay.missing["memory"]
    assert "SANDBOX_CGROUP_PARENT" in lay.missing["memory"]
    host.io.readonly.add(host.mount_path(""))
    lay = layout_of(host)
    assert "no write access" in lay.missing["pids"] and "Delegate=yes" in lay.missing["pids"]


def test_statfs_magic_mismatch_is_refused(tmp_path):
    host = FakeHost(tmp_path, "v1")
    host.io.statfs_magic = lambda path: 0x01021994  # tmpfs
    lay = layout_of(host)
    assert lay.mode == "v1" and not lay.placement
    assert "statfs magic" in lay.missing["memory"]


def test_no_cgroup_mounts(tmp_path):
    lay = detect(root=str(tmp_path), proc_self_cgroup="", mountinfo="", env={})
    assert lay.mode == "none" and "no mounted" in lay.missing["memory"]


@pytest.mark.parametrize(
    ("mount_root", "cgroup", "expected"),
    [
        ("/", "/", "/m"),
        ("/", "/a/b", "/m/a/b"),
        ("/docker/x", "/docker/x", "/m"),
        ("/docker/x", "/docker/x/y", "/m/y"),
        ("/docker/x", "/other", None),
        ("/", "/../a", None),
    ],
)
def test_resolve_through_mount_roots(mount_root, cgroup, expected):
    assert resolve("/m", mount_root, cgroup) == expected


def test_mountinfo_escapes_and_options():
    text = (
        "40 31 0:37 /sub /sys/fs/cg\\040x rw,relatime shared:2 - cgroup cgroup "
        "rw,xattr,cpu,cpuacct\n41 31 0:38 / /u rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "42 31 0:39 / /t rw - tmpfs tmpfs rw\n"
    )
    assert parse_mountinfo(text) == [
        ("cgroup", "/sub", "/sys/fs/cg x", frozenset({"cpu", "cpuacct"})),
        ("cgroup2", "/", "/u", frozenset()),
    ]


def test_second_mount_of_a_hierarchy_is_used_when_the_first_cannot_reach(tmp_path):
    host = FakeHost(tmp_path, "v1", own={"memory": "/judge"})
    # A bind mount of an unrelated subtree listed first: it cannot reach /judge.
    extra = "29 25 0:41 /elsewhere /mnt/memcg rw - cgroup cgroup rw,memory\n"
    lay = detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=extra + host.mountinfo,
        io=host.io,
        env={},
    )
    assert lay.placement["memory"].parent == host.root + "/sys/fs/cgroup/memory/judge"

"""linux.cgroupsPath: the path check (pure) and leaves made where an engine asks, on fake hosts."""

from __future__ import annotations

import errno
import os

import pytest
from cgroupfs_fake import CALLER_PID, FakeHost

from sandbox.cgroups import CgroupLimits, State, create, detect
from sandbox.cgroups.place import CgroupPathError, check_path
from sandbox.errors import SetupError

LIMITS = CgroupLimits(memory=64 << 20, pids=32)
REQUIRED = {"memory", "pids", "freezer", "cpuacct"}


def layout_of(host: FakeHost, **kw):
    return detect(
        root=host.root,
        proc_self_cgroup=host.proc_self_cgroup,
        mountinfo=host.mountinfo,
        io=host.io,
        env={},
        **kw,
    )


def dirs_named(host: FakeHost, name: str) -> set[str]:
    found = set()
    for dirpath, dirnames, _ in os.walk(host.root):
        found |= {os.path.join(dirpath, d) for d in dirnames if d == name}
    return found


@pytest.mark.parametrize(
    ("path", "norm"),
    [
        ("/libpod_parent/libpod-abc", "/libpod_parent/libpod-abc"),
        ("/k8s.io//pod1/ctr/", "/k8s.io/pod1/ctr"),
        ("default/ctr", "default/ctr"),
        ("/a:b/c", "/a:b/c"),  # a colon in a cgroupfs name is fine, only slice:prefix:name is not
    ],
)
def test_check_path_accepts_and_normalises(path: str, norm: str) -> None:
    assert check_path(path) == norm


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("system.slice:docker:abc", "systemd cgroup path"),
        (":libpod:abc", "systemd cgroup path"),
        ("/a/../../etc", "'..'"),
        ("..", "'..'"),
        ("/a/./b", "'.'"),
        ("/", "root cgroup"),
        ("///", "root cgroup"),
        ("/a\nb", "control character"),
        ("/a\0b", "control character"),
        ("/" + "x" * 256, "longer than 255"),
        ("/" + "/".join(["d"] * 33), "deeper than 32"),
        ("/x" * 2100, "longer than 4096"),
        ("", "non-empty"),
    ],
)
def test_check_path_refuses(path: str, why: str) -> None:
    with pytest.raises(CgroupPathError, match=why):
        check_path(path)


@pytest.fixture
def hybrid(tmp_path):
    return FakeHost(tmp_path / "hybrid", "hybrid", own={"memory": "/process_api/abc"})


@pytest.fixture
def v2(tmp_path):
    host = FakeHost(tmp_path / "v2", "v2", own={"": "/user.slice/session-1.scope"})
    host.make_cgroup("", "/judge.service")
    return host


def test_absolute_path_from_each_hierarchy_root_and_parents_made_then_removed(hybrid):
    conmon = hybrid.make_cgroup("memory", "/libpod_parent/conmon", procs=[777])
    leaf = create(
        layout_of(hybrid), "r1", LIMITS, REQUIRED | {"cpuset"}, at="/libpod_parent/libpod-c1"
    )
    for d in leaf.dirs:  # exactly at the path, from the mount, not under our own cgroup
        assert d.path == os.path.join(d.hierarchy.mount, "libpod_parent/libpod-c1")
    mem = hybrid.root + "/sys/fs/cgroup/memory/libpod_parent/libpod-c1"
    assert leaf.placement["memory"].path == mem
    assert (mem + "/memory.limit_in_bytes", str(64 << 20)) in hybrid.io.writes
    # memory's libpod_parent was there (the engine's); the others were made, and cpuset's
    # new parent got its parent's cpus/mems before the leaf copied them.
    made = set(leaf.made_parents)
    assert os.path.dirname(mem) not in made and len(made) == len(leaf.dirs) - 1
    cpuset_parent = hybrid.root + "/sys/fs/cgroup/cpuset/libpod_parent"
    assert (cpuset_parent + "/cpuset.cpus", "0-1") in hybrid.io.writes
    assert (cpuset_parent + "/cpuset.mems", "0") in hybrid.io.writes
    assert not any("unified" in p for p, _ in hybrid.io.writes)  # hugetlb not asked for
    leaf.remove()
    assert dirs_named(hybrid, "libpod-c1") == set()
    assert {os.path.dirname(conmon)} == dirs_named(hybrid, "libpod_parent")  # the engine's stays


def test_relative_path_goes_under_the_delegated_parent(hybrid):
    leaf = create(layout_of(hybrid), "r2", LIMITS, REQUIRED, at="pods/ctr")
    mem = hybrid.root + "/sys/fs/cgroup/memory/process_api/abc/pods/ctr"
    assert leaf.placement["memory"].path == mem
    assert leaf.placement["pids"].path == hybrid.root + "/sys/fs/cgroup/pids/pods/ctr"
    leaf.remove()
    assert dirs_named(hybrid, "pods") == set()


def test_existing_leaf_is_refused_and_nothing_made_is_left(hybrid):
    hybrid.make_cgroup("pids", "/default/c2", procs=[555])  # someone else's container
    with pytest.raises(SetupError, match=r"linux.cgroupsPath '/default/c2'.*exists already"):
        create(layout_of(hybrid), "r3", LIMITS, REQUIRED, at="/default/c2")
    assert dirs_named(hybrid, "c2") == {hybrid.root + "/sys/fs/cgroup/pids/default/c2"}
    assert dirs_named(hybrid, "default") == {hybrid.root + "/sys/fs/cgroup/pids/default"}
    assert hybrid.io.signalled == []  # its task untouched


def test_parent_kept_while_a_sibling_lives_in_it(hybrid):
    layout = layout_of(hybrid)
    first = create(layout, "a", LIMITS, REQUIRED, at="/default/a")
    second = create(layout, "b", LIMITS, REQUIRED, at="/default/b")
    assert first.made_parents and not second.made_parents  # made by the first only
    first.remove()  # its parent still holds b: kept
    assert len(dirs_named(hybrid, "default")) == len(second.dirs)
    second.remove()
    assert len(dirs_named(hybrid, "default")) == len(second.dirs)  # not made by b: b keeps it


def test_symlink_planted_on_the_way_is_refused(hybrid, tmp_path):
    mem = hybrid.root + "/sys/fs/cgroup/memory"
    target = tmp_path / "elsewhere"  # its own: a /tmp/x of anybody's must not decide it
    target.mkdir()
    os.symlink(target, mem + "/evil")
    with pytest.raises(SetupError, match="cannot make its parent") as exc:
        create(layout_of(hybrid), "r4", LIMITS, REQUIRED, at="/evil/x")
    assert os.strerror(errno.ELOOP) in str(exc.value)
    assert not (target / "x").exists()
    # the planted link only: the parents made in the other hierarchies were undone
    assert dirs_named(hybrid, "evil") == {mem + "/evil"}


def test_v2_controllers_enabled_down_the_chain(v2):
    layout = layout_of(v2)
    leaf = create(layout, "r5", LIMITS, {"memory", "pids"}, at="/libpod_parent/libpod-c5")
    root = v2.root + "/sys/fs/cgroup"
    assert leaf.placement["memory"].path == root + "/libpod_parent/libpod-c5"
    control = (root + "/libpod_parent/cgroup.subtree_control", "+cpu +io +memory +pids")
    assert control in v2.io.writes  # the root had them all (systemd); the new parent enables
    assert (root + "/libpod_parent/libpod-c5/memory.max", str(64 << 20)) in v2.io.writes
    leaf.remove()
    assert not os.path.exists(root + "/libpod_parent")


def test_v2_busy_ancestor_is_never_written_and_refuses_required(v2):
    with pytest.raises(SetupError, match="no internal processes"):
        create(layout_of(v2), "r6", LIMITS, {"memory"}, at="/user.slice/session-1.scope/c6")
    scope = v2.root + "/sys/fs/cgroup/user.slice/session-1.scope"
    assert not [p for p, _ in v2.io.writes if p.startswith(scope + "/cgroup.subtree_control")]
    assert v2.io.read(scope + "/cgroup.procs").split() == [str(CALLER_PID)]  # caller not moved
    assert not os.path.exists(scope + "/c6")


def test_v2_relative_path_under_a_delegated_parent(v2):
    leaf = create(layout_of(v2, parent="/judge.service"), "r7", LIMITS, {"memory"}, at="c7")
    assert leaf.placement["memory"].path == v2.root + "/sys/fs/cgroup/judge.service/c7"
    states = {r.controller: r.state for r in leaf.report}
    assert states["memory"] is State.FULL
    leaf.remove()


def test_sbx_leaf_refused_only_where_the_sweep_looks(hybrid):
    layout = layout_of(hybrid)
    with pytest.raises(SetupError, match="sandbox's own runs"):
        create(layout, "r9", LIMITS, REQUIRED, at="sbx-r9")  # right under the delegated parent
    assert dirs_named(hybrid, "sbx-r9") == set()
    leaf = create(layout, "r9", LIMITS, REQUIRED, at="/default/sbx-ctr")  # ctr's, elsewhere
    leaf.remove()

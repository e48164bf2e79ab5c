"""The child-side order, asserted on the recording fake (STYLE C7 ordering assertions).

The whole three-process sequence runs on RecordingSyscalls: every fork
follows the child, so one recorded list goes from the outer child's first
prctl to the payload's execve.
"""

from __future__ import annotations

import errno

import pytest

from sandbox.fs.ops import BindMount, MountPlan, UpperEntry
from sandbox.landlock.rules import prepare as landlock_prepare
from sandbox.launcher.protocol import EXIT_SPAWN_FAILED, MAPS_WRITTEN, decode_failure
from sandbox.launcher.steps import Ctx, LaunchFds, outer_main
from sandbox.plan import LaunchPlan, Rlimit, SeccompPlan
from sandbox.policy.model import Filesystem
from sandbox.syscalls.consts import CloneFlag, MountFlag, Prctl, UmountFlag
from sandbox.syscalls.recording import Call, ExecCalled, ExitCalled, RecordingSyscalls

FLAGS = int(
    CloneFlag.CLONE_NEWUSER
    | CloneFlag.CLONE_NEWNS
    | CloneFlag.CLONE_NEWPID
    | CloneFlag.CLONE_NEWNET
    | CloneFlag.CLONE_NEWIPC
    | CloneFlag.CLONE_NEWUTS
)


def make_plan(**kw) -> LaunchPlan:
    mounts = MountPlan(
        lowers=("/var/lib/sandbox/images/x",),
        upper_size=1 << 20,
        upper_inodes=100,
        upper_entries=(UpperEntry("box", 0o755, "payload"), UpperEntry("tmp", 0o1777, "root")),
        binds=(BindMount("/usr", "/usr", False, True),),
        tmpfs=(),
        writable=("/box", "/tmp"),
        proc_subset_pid=True,
        program=("/host/prog", "prog"),
    )
    base = dict(
        run_id="r1",
        policy_digest="d",
        inside_uid=1000,
        inside_gid=1000,
        host_uid=61001,
        host_gid=61001,
        id_mode="slot",
        hostname="sandbox",
        unshare_flags=FLAGS,
        cgroupns=True,
        nested_userns=False,
        mounts=mounts,
        exec_path="/box/prog",
        argv=("/box/prog", "a"),
        env=(("PATH", "/usr/bin"),),
        workdir="/box",
        apparmor_profile="sbx_abc",
        rlimits=(Rlimit(4, 0, 0),),
        landlock=landlock_prepare(Filesystem(), 7),
        seccomp=SeccompPlan(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 0),
        caps_keep=0,
    )
    base.update(kw)
    return LaunchPlan(**base)


def fake() -> RecordingSyscalls:
    return RecordingSyscalls(read_results=[MAPS_WRITTEN])


def run(plan: LaunchPlan, sc: RecordingSyscalls | None = None) -> RecordingSyscalls:
    sc = sc or fake()
    fds = LaunchFds(
        stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15, cgroup_join=(16, 17)
    )
    ctx = Ctx(plan=plan, fds=fds, sc=sc, parent_pid=1, last_cap=40)
    with pytest.raises(ExecCalled) as e:
        outer_main(ctx)
    assert e.value.path == "/box/prog"
    assert e.value.argv == ["/box/prog", "a"]
    assert e.value.env == {"PATH": "/usr/bin"}
    return sc


def idx(calls: list[Call], pred) -> list[int]:
    return [i for i, c in enumerate(calls) if pred(c)]


def first(calls, name, pred=lambda c: True) -> int:
    found = idx(calls, lambda c: c.name == name and pred(c))
    assert found, f"no {name} call"
    return found[0]


def last(calls, name, pred=lambda c: True) -> int:
    found = idx(calls, lambda c: c.name == name and pred(c))
    assert found, f"no {name} call"
    return found[-1]


@pytest.fixture
def calls() -> list[Call]:
    return run(make_plan()).calls


def test_seccomp_is_the_last_call_before_execve(calls):
    assert calls[-1].name == "execve"
    assert calls[-2].name == "seccomp_set_filter"


def is_userns(c: Call) -> bool:
    return c.name == "unshare" and bool(c.args[0] & CloneFlag.CLONE_NEWUSER)


def test_userns_first_and_all_namespaces_in_one_unshare(calls):
    unshares = [c for c in calls if c.name == "unshare"]
    # a scratch mount namespace for building the overlay (still in the initial
    # user namespace), then the container's namespaces in one call
    assert [c.args[0] for c in unshares[:2]] == [CloneFlag.CLONE_NEWNS, FLAGS]
    # the cgroup namespace comes later, in the payload, after it joined its leaf
    assert unshares[2].args[0] == CloneFlag.CLONE_NEWCGROUP


def test_scratch_mount_namespace_is_private_and_emptied_before_the_userns(calls):
    scratch = first(calls, "unshare")
    userns = first(calls, "unshare", lambda c: is_userns(c))
    private = Call("mount", (None, "/", None, MountFlag.MS_REC | MountFlag.MS_PRIVATE))
    assert calls[scratch + 1] == private
    # the upper is attached (for 6.1's clone_private_mount) only between those two
    attach = first(calls, "move_mount")
    assert calls[attach].args[3] == "/run/sandbox/stage"
    lowerdir = first(calls, "fsconfig", lambda c: "lowerdir" in c.args)
    overlay_create = min(i for i in idx(calls, lambda c: c.name == "fsmount") if i > lowerdir)
    detach = first(calls, "umount2")
    assert scratch < attach < overlay_create < detach < userns
    assert calls[detach].args == ("/run/sandbox/stage", UmountFlag.MNT_DETACH)
    lower_open = first(calls, "openat2")
    assert attach < lower_open < overlay_create


def test_detached_mounts_are_made_before_the_user_namespace(calls):
    userns = first(calls, "unshare", lambda c: is_userns(c))
    for name in ("fsopen", "fsmount", "open_tree", "mount_setattr", "mknodat", "copy_into"):
        assert max(idx(calls, lambda c, n=name: c.name == n)) < userns, name


def test_id_maps_are_awaited_before_the_first_fork(calls):
    assert (
        first(calls, "unshare", lambda c: is_userns(c))
        < first(calls, "write", lambda c: c.args[1] == b"U")
        < first(calls, "read")
        < first(calls, "fork")
    )


def test_no_mount_after_credentials_or_landlock(calls):
    limit = min(
        first(calls, "capset"), first(calls, "setresuid"), first(calls, "landlock_restrict_self")
    )
    for name in ("mount", "move_mount", "pivot_root", "umount2"):
        assert last(calls, name) < limit, name


def test_no_new_privs_before_landlock_and_seccomp(calls):
    nnp = first(calls, "prctl", lambda c: c.args[0] == Prctl.PR_SET_NO_NEW_PRIVS)
    assert nnp < first(calls, "landlock_restrict_self") < first(calls, "seccomp_set_filter")


def test_apparmor_after_pivot_root_and_before_uid_switch(calls):
    aa = first(calls, "write_file", lambda c: "attr" in c.args[0])
    assert calls[aa].args[1] == b"exec sbx_abc"
    assert first(calls, "pivot_root") < aa < first(calls, "setresuid")
    assert aa < first(calls, "prctl", lambda c: c.args[0] == Prctl.PR_SET_NO_NEW_PRIVS)


def test_bounding_set_dropped_before_setresuid_and_capset_after(calls):
    drops = idx(calls, lambda c: c.name == "prctl" and c.args[0] == Prctl.PR_CAPBSET_DROP)
    assert len(drops) == 41
    assert max(drops) < first(calls, "setresuid") < first(calls, "capset")
    assert calls[first(calls, "capset")].args == (0, 0, 0)


def test_pivot_root_detaches_the_old_root(calls):
    p = first(calls, "pivot_root")
    assert calls[p].args == (".", ".")
    assert calls[p + 1] == Call("umount2", (".", 2))
    # propagation stopped before anything was moved in
    assert first(calls, "mount") < first(calls, "move_mount")


def test_cgroup_joined_by_the_payload_before_cgroupns_and_uid_switch(calls):
    joins = idx(calls, lambda c: c.name == "write" and c.args[0] in (16, 17))
    assert len(joins) == 2
    assert max(joins) < last(calls, "unshare") < first(calls, "setresuid")
    assert max(joins) > last(calls, "fork")  # the payload itself, not the launcher


def test_fds_closed_after_the_last_open(calls):
    cr = first(calls, "close_range")
    assert calls[cr].args[0] == 3
    assert last(calls, "openat") < cr


def test_pdeathsig_rearmed_after_the_uid_switch(calls):
    rearm = idx(calls, lambda c: c.name == "prctl" and c.args[0] == Prctl.PR_SET_PDEATHSIG)
    assert any(i > first(calls, "setresuid") for i in rearm)


def test_payload_is_not_pid_1_two_forks(calls):
    assert len(idx(calls, lambda c: c.name == "fork")) == 2
    # the init step list runs between the forks: mounts and hostname in PID 1
    f1, f2 = idx(calls, lambda c: c.name == "fork")
    assert f1 < first(calls, "pivot_root") < first(calls, "sethostname") < f2


def test_layers_switched_off_make_no_call():
    plan = make_plan(
        apparmor_profile=None, landlock=None, seccomp=None, no_new_privs=False, drop_caps=False
    )
    names = run(plan).names()
    assert "seccomp_set_filter" not in names
    assert "landlock_create_ruleset" not in names
    assert "capset" not in names
    assert not [c for c in run(plan).calls if c.name == "write_file" and "attr" in c.args[0]]


def test_failing_step_reports_on_the_errpipe_and_exits_125():
    sc = fake()
    sc.fail_on("pivot_root", errno.EINVAL)
    fds = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)
    with pytest.raises(ExitCalled) as e:
        outer_main(Ctx(plan=make_plan(), fds=fds, sc=sc, parent_pid=1))
    assert e.value.code == EXIT_SPAWN_FAILED
    report = [c for c in sc.calls if c.name == "write" and c.args[0] == 13][-1]
    f = decode_failure(report.args[1])
    assert f.step == "mounts" and f.errno == errno.EINVAL
    assert "pivot_root" in f.message


def test_exec_failure_names_the_exec_step():
    sc = fake()

    def bad_exec(path, argv, env):
        sc.calls.append(Call("execve", (path,)))
        raise FileNotFoundError(errno.ENOENT, "No such file")

    sc.execve = bad_exec  # type: ignore[method-assign]
    fds = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)
    with pytest.raises(ExitCalled):
        outer_main(Ctx(plan=make_plan(), fds=fds, sc=sc, parent_pid=1))
    report = [c for c in sc.calls if c.name == "write" and c.args[0] == 13][-1]
    assert decode_failure(report.args[1]).step == "exec"


def test_a_step_raising_something_else_than_oserror_is_reported_too():
    """resource.setrlimit says EPERM with a ValueError (RLIMIT_NOFILE above fs.nr_open).
    Unreported, the child ended silently and the errpipe's EOF read as a good execve."""
    sc = fake()

    def bad_setrlimit(res, soft, hard):
        raise ValueError("not allowed to raise maximum limit")

    sc.setrlimit = bad_setrlimit  # type: ignore[method-assign]
    fds = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)
    with pytest.raises(ExitCalled) as e:
        outer_main(Ctx(plan=make_plan(), fds=fds, sc=sc, parent_pid=1))
    assert e.value.code == EXIT_SPAWN_FAILED
    report = [c for c in sc.calls if c.name == "write" and c.args[0] == 13][-1]
    f = decode_failure(report.args[1])
    assert (f.step, f.message) == ("rlimits", "not allowed to raise maximum limit")
    assert "execve" not in sc.names()


def test_parent_gone_before_pdeathsig_is_refused():
    sc = fake()
    sc.getppid = lambda: 99  # type: ignore[method-assign]
    fds = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)
    with pytest.raises(ExitCalled):
        outer_main(Ctx(plan=make_plan(), fds=fds, sc=sc, parent_pid=1))
    assert "unshare" not in sc.names()


def test_the_launcher_side_never_imports_pydantic():
    """STYLE B1/C3: pydantic only at the trust boundary; the fork server forks lean."""
    import subprocess
    import sys

    code = "import sys, sandbox.launcher.server; print([m for m in sys.modules if 'pydantic' in m])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def run_detached(plan: LaunchPlan, sc: RecordingSyscalls) -> RecordingSyscalls:
    """As ``run``, on a kernel whose overlayfs takes detached layers (6.15+)."""
    fds = LaunchFds(
        stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15, cgroup_join=(16, 17)
    )
    ctx = Ctx(plan=plan, fds=fds, sc=sc, parent_pid=1, last_cap=40, detached_layers=True)
    with pytest.raises((ExecCalled, ExitCalled)):
        outer_main(ctx)
    return sc


def _upper_fd(calls: list[Call]) -> int:
    upperdir = calls[first(calls, "fsconfig", lambda c: "upperdir" in c.args)].args[3]
    return int(upperdir.split("/")[4])  # /proc/self/fd/N/upper


def test_detached_layers_need_no_scratch_namespace_and_no_umount_before_init():
    calls = run_detached(make_plan(), fake()).calls
    userns = first(calls, "unshare", lambda c: is_userns(c))
    # no scratch mount namespace: the container's namespaces are the first unshare
    assert [c.args[0] for c in calls if c.name == "unshare"] == [FLAGS, CloneFlag.CLONE_NEWCGROUP]
    before = calls[:userns]
    assert not [c for c in before if c.name in ("mount", "move_mount", "umount2")]
    # the overlay is still made before the user namespace, from the detached upper
    assert max(idx(calls, lambda c: c.name == "fsmount")) < userns
    upper = _upper_fd(calls)
    assert calls[first(calls, "fsconfig", lambda c: "workdir" in c.args)].args[3] == (
        f"/proc/self/fd/{upper}/work"
    )
    assert first(calls, "mkdirat", lambda c: c.args[0] == upper) < userns


def test_init_keeps_the_upper_until_the_status_is_written():
    # the outer's fork follows init; init's fork returns the payload's pid (42)
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN], fork_results=[0, 42])
    calls = run_detached(make_plan(), sc).calls
    upper = _upper_fd(calls)
    closes = idx(calls, lambda c: c == Call("close", (upper,)))
    status = first(calls, "write", lambda c: c.args[0] == 14)
    eof = first(calls, "close", lambda c: c.args == (14,))
    # the supervisor's end-of-file before the upper's unmount (a grace period)
    assert len(closes) == 1 and status < eof < closes[0]
    assert closes[0] > first(calls, "pivot_root")  # not with the other detached fds


def test_the_collector_never_inherits_the_upper():
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN], fork_results=[0, 42, 43])
    calls = run_detached(make_plan(collect=("out.txt",)), sc).calls
    upper = _upper_fd(calls)
    assert first(calls, "close", lambda c: c.args == (upper,)) < last(calls, "fork")


def test_scratch_namespace_path_keeps_the_upper_too():
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN], fork_results=[0, 42])
    fds = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)
    with pytest.raises(ExitCalled):
        outer_main(Ctx(plan=make_plan(), fds=fds, sc=sc, parent_pid=1))
    calls = sc.calls
    upper = _upper_fd(calls)
    assert idx(calls, lambda c: c == Call("close", (upper,)))[0] > first(
        calls, "write", lambda c: c.args[0] == 14
    )

"""The container's own devpts and its console in the Python reference, on the recording fake.

Init mounts the run's devpts (always ``newinstance``, nosuid, noexec) on the
staging /dev/pts before pivot_root, and refuses the run when the instance it
got is the host's; the payload opens its console from the container's
/dev/pts/ptmx after the uid switch and before Landlock and seccomp, sends the
master to init and closes it before anything else, then takes the slave as
0-2 and controlling terminal; init checks the master and passes it to the
supervisor, never keeping it. The C side runs the same step lists
(test_native_parity.py); the kernel and podman tests are in
tests/integration/test_oci_devpts.py.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace

import pytest
from test_launcher_order import first, last, make_plan

from sandbox.fs.ops import DevptsMount
from sandbox.launcher.protocol import CONSOLE_TAG, EXIT_SPAWN_FAILED, MAPS_WRITTEN, decode_failure
from sandbox.launcher.steps import Ctx, LaunchFds, outer_main, run_steps, step_take_console
from sandbox.syscalls.consts import MountFlag
from sandbox.syscalls.recording import Call, ExecCalled, ExitCalled, RecordingSyscalls

PTS = DevptsMount(mode=0o620, ptmxmode=0o666, gid=1000)
NOTIFY, ERRPIPE = 18, 13


def ptmx_stat(*_a: object) -> os.stat_result:
    """What fstat says of a devpts instance's ptmx (char 5:2)."""
    return os.stat_result((0o020666, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": os.makedev(5, 2)})


def console_plan(**kw):
    plan = make_plan(**kw)
    return replace(plan, mounts=replace(plan.mounts, devpts=PTS), console=True)


def run_all(plan, sc) -> tuple[list[Call], BaseException]:
    fds = LaunchFds(
        stdin=10, stdout=11, stderr=12, errpipe=ERRPIPE, status=14, sync=15, notify=NOTIFY
    )
    with pytest.raises((ExecCalled, ExitCalled)) as e:
        outer_main(Ctx(plan=plan, fds=fds, sc=sc, parent_pid=1))
    return sc.calls, e.value


def ptmx_fake() -> RecordingSyscalls:
    """The fake, where every fstat'd fd is a ptmx (the binds' owners read as root's)."""
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN])
    record = sc.__getattr__("fstat")

    def fstat(fd: int) -> os.stat_result:
        record(fd)
        return ptmx_stat()

    sc.fstat = fstat  # type: ignore[method-assign]
    return sc


def test_init_mounts_a_new_devpts_instance_before_pivot_root():
    calls, end = run_all(console_plan(), ptmx_fake())
    assert isinstance(end, ExecCalled)
    i = first(calls, "mount", lambda c: c.args[2] == "devpts")
    m = calls[i]
    assert m.args[1].endswith("/dev/pts")
    assert m.args[3] == MountFlag.MS_NOSUID | MountFlag.MS_NOEXEC
    assert m.args[4] == "newinstance,ptmxmode=0666,mode=0620,gid=1000"
    assert first(calls, "move_mount", lambda c: c.args[3].endswith("/dev")) < i
    assert i < first(calls, "pivot_root")
    # the mount point and /dev/ptmx -> pts/ptmx are made with /dev itself
    assert first(calls, "mkdirat", lambda c: c.args[1] == "pts") < i


def test_the_host_instance_is_refused():
    """A devpts mount that is the host's /dev/pts (a kernel that ignored newinstance)
    fails the run: the payload would reach the host's ptys through it."""
    sc = ptmx_fake()
    sc.fstat_path = lambda path: os.stat_result((0o040755, 1, 42, 1, 0, 0, 0, 0, 0, 0))  # type: ignore[method-assign]
    calls, end = run_all(console_plan(), sc)
    assert isinstance(end, ExitCalled) and end.code == EXIT_SPAWN_FAILED
    f = decode_failure(calls[-2].args[1])
    assert f.step == "mounts" and "host's instance" in f.message and f.errno == errno.EEXIST
    assert "pivot_root" not in sc.names()


def test_the_kernel_refusing_devpts_fails_the_run():
    sc = ptmx_fake()
    sc.fail_on("mount", errno.EINVAL, nth=_devpts_mount_nth())
    calls, end = run_all(console_plan(), sc)
    assert isinstance(end, ExitCalled) and end.code == EXIT_SPAWN_FAILED
    f = decode_failure(calls[-2].args[1])
    assert f.step == "mounts" and f.errno == errno.EINVAL
    assert calls[-3].name == "mount" and calls[-3].args[2] == "devpts"


def _devpts_mount_nth() -> int:
    calls, _ = run_all(console_plan(), ptmx_fake())
    mounts = [c for c in calls if c.name == "mount"]
    return next(i for i, c in enumerate(mounts, 1) if c.args[2] == "devpts")


def test_payload_opens_its_console_after_the_uid_switch_and_never_keeps_the_master():
    calls, end = run_all(console_plan(), ptmx_fake())
    assert isinstance(end, ExecCalled)
    opened = first(calls, "openat2", lambda c: c.args[1] == "/dev/pts/ptmx")
    assert last(calls, "setresuid") < opened  # the pty is the payload's own
    assert opened < first(calls, "landlock_create_ruleset")
    assert opened < first(calls, "seccomp_set_filter")
    assert opened < first(calls, "close_range")
    # open -> check -> unlock -> slave -> send to init -> close, then the slave on 0-2
    tail = [c.name for c in calls[opened : opened + 12]]
    assert tail == [
        "openat2", "fstat", "unlockpt", "pty_peer", "send_fd", "close",
        "setsid", "dup2", "dup2", "dup2", "close", "set_controlling_tty",
    ]  # fmt: skip
    send = calls[opened + 4]
    assert send.args[2] == CONSOLE_TAG
    master_fd = send.args[1]
    assert calls[opened + 5] == Call("close", (master_fd,))
    slave = calls[opened + 3]
    assert [c.args[1] for c in calls[opened + 7 : opened + 10]] == [0, 1, 2]
    assert calls[opened + 11] == Call("set_controlling_tty", (0,))
    assert slave.args[1] == os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC


def test_a_console_that_is_no_ptmx_fails_closed():
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN])  # its fstat: a regular file
    calls, end = run_all(console_plan(), sc)
    assert isinstance(end, ExitCalled) and end.code == EXIT_SPAWN_FAILED
    f = decode_failure(calls[-2].args[1])
    assert f.step == "console" and "not a pty multiplexer" in f.message
    assert "send_fd" not in sc.names() and "execve" not in sc.names()


def test_no_console_no_pty_calls():
    plan = make_plan()
    plan = replace(plan, mounts=replace(plan.mounts, devpts=PTS))
    calls, end = run_all(plan, ptmx_fake())
    assert isinstance(end, ExecCalled)
    names = [c.name for c in calls]
    assert "unlockpt" not in names and "set_controlling_tty" not in names
    assert not any(c.name == "openat2" and c.args[1] == "/dev/pts/ptmx" for c in calls)
    assert "socketpair" not in names  # no handover channel without console or listener


def init_ctx(sc, plan=None) -> Ctx:
    fds = LaunchFds(
        stdin=10, stdout=11, stderr=12, errpipe=ERRPIPE, status=14, sync=15, notify=NOTIFY
    )
    ctx = Ctx(plan=plan or console_plan(), fds=fds, sc=sc, parent_pid=0)
    ctx.handover, ctx.payload_pid = 30, 7
    return ctx


def test_init_passes_the_master_on_and_closes_it():
    sc = RecordingSyscalls()
    sc.recv_fd = lambda s: (CONSOLE_TAG, 44)  # type: ignore[method-assign]
    sc.fstat = ptmx_stat  # type: ignore[method-assign]
    step_take_console(init_ctx(sc))
    assert sc.calls == [Call("send_fd", (NOTIFY, 44, CONSOLE_TAG)), Call("close", (44,))]


@pytest.mark.parametrize(
    ("got", "message"),
    [((b"F", 44), "sent no console"), ((CONSOLE_TAG, -1), "sent no console"),
     ((CONSOLE_TAG, 44), "not a pty master")],
)  # fmt: skip
def test_init_refuses_what_is_no_console_and_kills_the_payload(got, message):
    sc = RecordingSyscalls()
    sc.recv_fd = lambda s: got  # type: ignore[method-assign]
    ctx = init_ctx(sc)
    with pytest.raises(ExitCalled):
        run_steps(ctx, (step_take_console,))
    assert Call("kill", (7, 9)) in sc.calls
    assert "send_fd" not in sc.names()
    f = decode_failure(next(c for c in sc.calls if c.name == "write").args[1])
    assert f.step == "take_console" and message in f.message
    if got[1] >= 0:
        assert Call("close", (44,)) in sc.calls


def test_init_at_end_of_file_leaves_the_report_to_the_payload():
    sc = RecordingSyscalls()
    sc.recv_fd = lambda s: (b"", -1)  # type: ignore[method-assign]
    step_take_console(init_ctx(sc))
    assert sc.calls == []

"""The seccomp listener's handover in the Python reference, on the recording fake.

The payload: dumpable again just before its filter (so its init may copy the
listener), then only write(number) and read(ack) on the handover socket
before execve; no ack, no execve. Its init: copy, pass the copy to the
supervisor, then ack (never the ack first), keep the copy until the payload
has exited and what it left is killed. The C side runs the same step lists
(test_native_parity.py) and the integration tests run both on the kernel.
"""

from __future__ import annotations

import errno

import pytest
from test_launcher_order import make_plan

from sandbox.launcher.protocol import (
    EXIT_SPAWN_FAILED,
    MAPS_WRITTEN,
    NOTIFY_TAKEN,
    decode_failure,
)
from sandbox.launcher.steps import HANDOVER_STEPS, Ctx, LaunchFds, outer_main, run_steps
from sandbox.plan import SeccompPlan
from sandbox.syscalls.consts import Prctl
from sandbox.syscalls.recording import Call, ExecCalled, ExitCalled, RecordingSyscalls

NOTIFYING = SeccompPlan(b"\x06\x00\x00\x00\x00\x00\xff\x7f", 8, notify=True)
ERRPIPE, NOTIFY = 13, 18


def fds() -> LaunchFds:
    return LaunchFds(
        stdin=10, stdout=11, stderr=12, errpipe=ERRPIPE, status=14, sync=15, notify=NOTIFY
    )


def ctx(sc: RecordingSyscalls, **kw: object) -> Ctx:
    return Ctx(plan=make_plan(seccomp=NOTIFYING, **kw), fds=fds(), sc=sc, parent_pid=1)


def payload_calls(reads: list[bytes]) -> tuple[list[Call], BaseException]:
    """The whole sequence, following every fork into the child, to execve or exit."""
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN, b"\x01", *reads])
    with pytest.raises((ExecCalled, ExitCalled)) as e:
        outer_main(ctx(sc))
    return sc.calls, e.value


def test_payload_hands_its_listener_to_init_and_waits_for_the_ack():
    calls, end = payload_calls([NOTIFY_TAKEN])
    assert isinstance(end, ExecCalled)
    assert Call("socketpair", ()) in calls  # made by init before the fork
    tail = calls[[c.name for c in calls].index("seccomp_set_filter") - 1 :]
    assert tail[0] == Call("prctl", (Prctl.PR_SET_DUMPABLE, 1))
    assert [c.name for c in tail] == ["prctl", "seccomp_set_filter", "write", "read", "execve"]
    theirs = tail[2].args[0]
    assert tail[2].args == (theirs, b"0")  # the fake's filter returns fd 0
    assert tail[3].args == (theirs, 1)
    assert Call("close", (theirs - 1,)) in calls  # init's end (the fake numbers them in order)
    # the supervisor's channel is not the payload's to use any more
    assert not [c for c in tail if c.args[:1] == (NOTIFY,)]


@pytest.mark.parametrize("answer", [b"", b"X"])
def test_no_ack_no_execve(answer):
    calls, end = payload_calls([answer])
    assert isinstance(end, ExitCalled) and end.code == EXIT_SPAWN_FAILED
    assert "execve" not in [c.name for c in calls]
    report = [c for c in calls if c.name == "write" and c.args[0] == ERRPIPE]
    f = decode_failure(report[-1].args[1])
    assert f.step == "seccomp" and "did not take the seccomp listener" in f.message


def handover(reads: list[bytes], fail: tuple[str, int] | None = None):
    sc = RecordingSyscalls(read_results=reads)
    if fail:
        sc.fail_on(*fail)
    c = ctx(sc)
    c.handover, c.payload_pid = 7, 42
    try:
        run_steps(c, HANDOVER_STEPS)
    except ExitCalled as e:
        return sc.calls, c, e.code
    return sc.calls, c, None


def test_init_copies_passes_on_then_acks():
    calls, c, code = handover([b"5"])
    assert code is None
    assert calls == [
        Call("read", (7, 16)),
        Call("pidfd_getfd", (42, 5)),
        Call("send_fd", (NOTIFY, 100)),
        Call("write", (7, NOTIFY_TAKEN)),
        Call("close", (7,)),
    ]
    assert c.listener == 100 and c.handover == -1  # init keeps its copy


@pytest.mark.parametrize(
    ("fail", "reads"),
    [
        (("pidfd_getfd", errno.EPERM), [b"5"]),
        (("send_fd", errno.EPIPE), [b"5"]),
        (None, [b"5; rm"]),
    ],
)
def test_a_failed_handover_is_reported_and_never_acked(fail, reads):
    calls, _c, code = handover(reads, fail)
    assert code == EXIT_SPAWN_FAILED
    assert Call("write", (7, NOTIFY_TAKEN)) not in calls
    report = [i for i, c in enumerate(calls) if c.name == "write" and c.args[0] == ERRPIPE]
    assert decode_failure(calls[report[0]].args[1]).step == "take_listener"
    # the payload is gone before the report: one failure on the errpipe, not two
    killed = calls.index(Call("kill", (42, 9)))
    assert killed < calls.index(Call("wait_exited", (42,))) < report[0]


def test_payload_gone_before_its_filter_is_not_a_second_failure():
    calls, c, code = handover([b""])
    assert code is None and c.listener == -1
    assert [x.name for x in calls] == ["read", "close"]


def test_init_keeps_its_copy_until_the_payload_exited_and_its_leftovers_are_killed():
    # the outer's fork follows its child (init); init's fork returns the payload's pid
    sc = RecordingSyscalls(read_results=[MAPS_WRITTEN, b"\x01", b"3"], fork_results=[0, 42])
    with pytest.raises(ExitCalled):
        outer_main(ctx(sc))
    names = [(c.name, c.args) for c in sc.calls]
    acks = [i for i, (n, a) in enumerate(names) if n == "write" and a[1:] == (NOTIFY_TAKEN,)]
    (copy,) = [a[1] for n, a in names if n == "send_fd" and a[0] == NOTIFY]
    ack = acks[0]
    errpipe_closed = names.index(("close", (ERRPIPE,)))
    exited = names.index(("wait_exited", (42,)))
    killed = names.index(("kill", (-1, 9)))
    listener_closed = names.index(("close", (copy,)))
    assert ack < errpipe_closed < exited < killed < listener_closed

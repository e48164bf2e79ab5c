"""The seccomp listener's handover, on the real kernel, through both launchers.

The payload's init (C in the native launcher, the reference in Python) copies
the listener out of the payload with pidfd_getfd, passes it to the supervisor
over the notify channel and only then lets the payload go on; it keeps its own
copy while the payload lives. The supervisor is never waited for. So:

- a supervisor slow to take the listener (a loaded machine) still records the
  first denied syscall, which waits for it, and the payload does not run on;
- a supervisor that loses its copy still never lets a denied syscall pass:
  init's copy keeps the listener held (without it the kernel would answer
  ENOSYS and the payload would go on: the attack this guards against);
- a handover that cannot be completed fails the run before execve.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import types
from collections.abc import Iterator

import pytest

import sandbox.runner.launch as launch_mod
import sandbox.runner.watch as watch_mod
from sandbox import Sandbox, Verdict

pytestmark = pytest.mark.requires("root")
DENIED = "unshare -U true; echo after $?"  # unshare is not in strict's allow-list


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


@pytest.fixture(params=["native", "python"])
def sb(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with Sandbox("strict", launcher=request.param) as s:
        assert s.run(["/bin/true"]).verdict == Verdict.OK  # warm: its own sockets exist
        yield s


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Busy processes on every core while the test runs."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 1))
    ]
    try:
        yield
    finally:
        for p in hogs:
            p.kill()
            p.wait()


def test_a_slow_supervisor_still_records_the_first_denied_syscall(sb, monkeypatch, cpu_load):
    real = watch_mod.recv_listener

    def slow(sock: int) -> tuple[bytes, list[int]]:
        time.sleep(0.3)  # the payload is running by now: its first denial waits for us
        return real(sock)

    monkeypatch.setattr(watch_mod, "recv_listener", slow)
    for _ in range(3):
        r = sb.run(["/bin/sh", "-c", DENIED])
        assert r.verdict == Verdict.SECURITY_VIOLATION, (r.verdict, r.message, r.stdout)
        assert r.violation is not None and r.violation.syscall == "unshare"
        assert b"after" not in (r.stdout or b"")


def test_a_supervisor_that_loses_the_listener_never_lets_a_denial_pass(sb, monkeypatch):
    real = watch_mod.recv_listener

    def lose(sock: int) -> tuple[bytes, list[int]]:
        data, fds = real(sock)
        for fd in fds:
            os.close(fd)
        time.sleep(0.5)  # meanwhile the payload reaches its denied syscall
        return data, []

    monkeypatch.setattr(watch_mod, "recv_listener", lose)
    r = sb.run(["/bin/sh", "-c", DENIED])
    # The supervisor stops the run (it holds no listener); the denied syscall
    # waited on init's copy until then instead of failing with ENOSYS.
    assert r.verdict == Verdict.SECURITY_VIOLATION, (r.verdict, r.message, r.stdout)
    assert b"after" not in (r.stdout or b"")


def test_a_handover_that_cannot_complete_fails_before_execve(sb, monkeypatch):
    real = launch_mod.socket

    def closed_pair(*args: int) -> tuple[object, object]:
        ours, theirs = real.socketpair(*args)
        ours.shutdown(real.SHUT_RDWR)  # init's sendmsg of the listener: EPIPE
        return ours, theirs

    monkeypatch.setattr(
        launch_mod,
        "socket",
        types.SimpleNamespace(
            socketpair=closed_pair, AF_UNIX=real.AF_UNIX, SOCK_SEQPACKET=real.SOCK_SEQPACKET
        ),
    )
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    try:
        r = sb.run(["/bin/sh", "-c", "echo ran"], stdout=out_w)
        os.close(out_w)
        out_w = -1
        assert r.verdict == Verdict.SPAWN_ERROR, (r.verdict, r.message)
        # init's report alone (it ends the payload, waiting for the ack, first)
        assert r.message.startswith("take_listener: ") and "sendmsg" in r.message, r.message
        assert "seccomp" not in r.message, r.message
        assert os.read(out_r, 100) == b""  # the payload never reached execve
    finally:
        os.close(out_r)
        if out_w >= 0:
            os.close(out_w)

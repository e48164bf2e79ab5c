"""The caller's terminal is never the payload's (issue 13 item 3; bubblewrap's CVE-2017-5226).

The test is the caller: its terminal is a real pty (os.openpty), passed to
``sandbox exec`` as stdin. Through an inherited tty fd a payload could set the
line discipline to N_NULL, turn echo and canonical mode off and make the
terminal exclusive, and all of it would outlive the run. The supervisor gives
the payload pipes instead and relays them (a pty of the run's own would be a
disconnected path inside the container, which AppArmor refuses to fstat);
the knob ``tty_relay`` hands the caller's terminal over as it is, to show the
relay is what stops these.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

import pytest
from escape_kit import E, attack, judge, matrix
from sbxtest import sandbox_cmd

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]
TIOCGEXCL = 0x80045440
N_TTY = 0


def _state(fd: int) -> tuple[int, int, object]:
    """(line discipline, exclusive, termios or the error reading it) of a terminal."""
    ldisc = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCGETD, b"\0" * 4))[0]
    excl = struct.unpack("i", fcntl.ioctl(fd, TIOCGEXCL, b"\0" * 4))[0]
    try:
        attrs: object = termios.tcgetattr(fd)
    except termios.error as e:
        attrs = e
    return ldisc, excl, attrs


def _drain(master: int) -> bytes:
    out = b""
    while select.select([master], [], [], 0.3)[0]:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: no slave left open
            break
        if not chunk:
            break
        out += chunk
    return out


@matrix("tty_relay")
def test_the_callers_terminal_cannot_be_changed_for_good(probes, tmp_path, ablate):
    master, slave = os.openpty()
    try:
        before = _state(slave)
        try:
            r = attack(probes["escape"], ["tty-clobber"], ablate, tmp_path, stdin=slave)
            after = _state(slave)
        finally:
            os.close(slave)
        _drain(master)
    finally:
        os.close(master)
    assert before[0] == N_TTY and before[1] == 0
    if judge(r, ablate, {"tty_relay": E.ENOTTY}):
        assert r.out.startswith("terminals 1"), (r.out, r.err)  # it held the terminal
        assert after[:2] == (27, 1), after  # N_NULL, exclusive: the damage stayed
    else:
        assert r.out.startswith("terminals 0"), (r.out, r.err)  # no terminal to hold
        assert after == before


@pytest.mark.parametrize("variant", ["plain", "high"])
@matrix("seccomp", "tty_relay")
def test_tiocsti_never_reaches_the_callers_terminal(probes, tmp_path, ablate, variant):
    """Push a byte into the input queue of the caller's terminal.

    The payload has no controlling terminal (setsid), which alone would make
    TIOCSTI fail; it makes the terminal its own first (TIOCSCTTY). Seccomp's
    argument check stops TIOCSTI (EPERM), also with bit 32 of the request set
    ("high": the kernel reads an unsigned int, CVE-2019-10063); the relay
    stops it too, the payload holding a pipe (ENOTTY). When it works, the byte
    is echoed on the terminal's master side, where the test reads it.
    """
    master, slave = os.openpty()
    try:
        try:
            r = attack(probes["escape"], ["tiocsti", variant], ablate, tmp_path, stdin=slave)
        finally:
            os.close(slave)
        echoed = _drain(master)
    finally:
        os.close(master)
    if judge(r, ablate, {"seccomp": E.EPERM, "tty_relay": E.ENOTTY}):
        assert b"#" in echoed
    else:
        assert b"#" not in echoed


def test_typed_input_and_output_are_relayed(tmp_path):
    """An interactive run: the payload reads what is typed, its output reaches the
    terminal, ^D ends its input. It holds no terminal itself."""
    master, slave = os.openpty()
    argv = [
        *sandbox_cmd(),
        "exec",
        "--profile",
        "strict",
        "--",
        "/bin/sh",
        "-c",
        "for fd in 0 1 2; do test -t $fd && printf T; done; echo ready; cat; echo done",
    ]
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=subprocess.PIPE, cwd=tmp_path)
    os.close(slave)
    out, step = b"", 0
    deadline = time.monotonic() + 300  # a bound, not a timing: the guest kernel is slow
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
            if step == 0 and b"ready\r\n" in out:
                os.write(master, b"hello\n")
                step = 1
            elif step == 1 and out.count(b"hello") >= 2:  # the caller's echo, then cat's
                os.write(master, b"\x04")  # ^D: end of input
                step = 2
            if p.poll() is not None:
                out += _drain(master)
                break
    finally:
        try:
            rc = p.wait(timeout=30)  # EIO above: it closed the terminal, it is ending
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        os.close(master)
    assert rc == 0, (rc, out, p.stderr.read() if p.stderr else b"")
    assert out.startswith(b"ready\r\n"), out  # no T: none of its streams is a terminal
    assert out.count(b"hello") == 2 and out.endswith(b"done\r\n"), out

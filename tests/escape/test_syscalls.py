"""Syscall attacks: denied calls natively and through the i386 ABI, io_uring, keyrings, TIOCSTI.

Seccomp is the only stopper of each (the matrix is "on" and "off"): nothing
else in the sandbox stands between an unprivileged process and these calls,
which is why the allow-list exists. Each attack is one that *works* for an
unprivileged process without the filter on this kernel (io_uring_disabled=0,
dev.tty.legacy_tiocsti=1, IA32 emulation on).
"""

from __future__ import annotations

import os
import select

import pytest
from escape_kit import KILLED, E, attack, judge, matrix

pytestmark = pytest.mark.requires("root", "gcc")

X86_64_PERSONALITY, I386_PERSONALITY, I386_GETPID = 135, 136, 20
ADDR_NO_RANDOMIZE = "0x0040000"
KEYCTL, KEYCTL_JOIN_SESSION_KEYRING = 250, 1


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["native", str(X86_64_PERSONALITY), ADDR_NO_RANDOMIZE], id="native"),
        pytest.param(["int80", str(I386_PERSONALITY), ADDR_NO_RANDOMIZE], id="int80"),
        # any i386 call kills the whole process, even one from a second thread
        pytest.param(["thread-int80", str(I386_GETPID)], id="thread-int80"),
    ],
)
@matrix("seccomp")
def test_denied_syscall_natively_and_through_the_i386_abi(probes, tmp_path, ablate, args):
    """personality(ADDR_NO_RANDOMIZE) turns ASLR off for the next exec; the filter
    allows only PER_LINUX and the query, and kills any foreign-ABI call."""
    r = attack(probes["try_syscall"], args, ablate, tmp_path)
    judge(r, ablate, {"seccomp": KILLED})


@matrix("seccomp")
def test_io_uring_setup(probes, tmp_path, ablate):
    """io_uring_setup(4, ...): io_uring bypasses seccomp for the operations it runs."""
    r = attack(probes["escape"], ["io-uring"], ablate, tmp_path)
    judge(r, ablate, {"seccomp": KILLED})


@matrix("seccomp")
def test_keyctl(probes, tmp_path, ablate):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): the kernel keyrings are not namespaced."""
    args = ["native", str(KEYCTL), str(KEYCTL_JOIN_SESSION_KEYRING), "0"]
    r = attack(probes["try_syscall"], args, ablate, tmp_path)
    judge(r, ablate, {"seccomp": KILLED})


@pytest.mark.parametrize("variant", ["plain", "high"])
@matrix("seccomp")
def test_tiocsti_on_a_terminal(probes, tmp_path, ablate, variant):
    """Push a byte into the input queue of the terminal the caller passed as stdin.

    The payload has no controlling terminal (setsid), which alone would make
    TIOCSTI fail; but the pty is unowned, so it makes it its own (setsid,
    TIOCSCTTY) first. Then only seccomp's argument check stops TIOCSTI
    (EPERM), also with bit 32 of the request set ("high": the kernel reads
    an unsigned int, CVE-2019-10063). When it works, the byte is echoed to
    the master side, where the test reads it.
    """
    master, slave = os.openpty()
    try:
        try:
            r = attack(probes["escape"], ["tiocsti", variant], ablate, tmp_path, stdin=slave)
        finally:
            os.close(slave)
        echoed = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: no slave left open
                break
            if not chunk:
                break
            echoed += chunk
    finally:
        os.close(master)
    if judge(r, ablate, {"seccomp": E.EPERM}):
        assert b"#" in echoed
    else:
        assert b"#" not in echoed

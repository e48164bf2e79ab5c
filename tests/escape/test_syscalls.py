"""Syscall attacks: denied calls natively and through the i386 ABI, io_uring, keyrings, TIOCSTI.

Seccomp is the only stopper of each (the matrix is "on" and "off"): nothing
else in the sandbox stands between an unprivileged process and these calls,
which is why the allow-list exists. Each attack is one that *works* for an
unprivileged process without the filter on this kernel (io_uring_disabled=0,
dev.tty.legacy_tiocsti=1, IA32 emulation on).
"""

from __future__ import annotations

import pytest
from escape_kit import KILLED, attack, judge, matrix

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

"""default_action = "notify": denials reach a supervisor through the listener fd.

The child loads the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER (artifact.flags),
tells the parent the listener's fd number and waits; the parent copies the fd
with pidfd_getfd, lets the child exec a probe that calls syslog(2), receives the
notification (SECCOMP_IOCTL_NOTIF_RECV), checks it names syslog, and answers
EKEYREJECTED (SECCOMP_IOCTL_NOTIF_SEND), which becomes the probe's exit status.
Foreign ABIs reach the same listener, with their own arch and number: the
supervisor records them and kills the run (issue 13 item 4: never a kernel
kill known only from the kernel log).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from pathlib import Path

from seccomp_kernel import FilterLoader, profile_seccomp, requires_seccomp

from sandbox.policy.model import Seccomp
from sandbox.seccomp.bpf import pack_seccomp_data
from sandbox.seccomp.build import prepare
from sandbox.seccomp.tables import AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, table

pytestmark = requires_seccomp

NR = table("x86_64").by_name
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438
NOTIF_RECV, NOTIF_SEND = 0xC0502100, 0xC0182101  # _IOWR('!', 0/1, ...)


class Notif(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * 64),
    ]


class NotifResp(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_uint64),
        ("val", ctypes.c_int64),
        ("error", ctypes.c_int32),
        ("flags", ctypes.c_uint32),
    ]


def notify_artifact() -> Seccomp:
    strict = profile_seccomp("strict")
    return Seccomp.model_validate(strict.model_dump() | {"default_action": "notify"})


def _round_trip(
    probes: dict[str, Path], argv: list[str], stop: tuple[int, int], answer: int
) -> tuple[list[tuple[int, int]], bytes, int]:
    """Run a probe under the notify filter; answer each notification, ``answer`` for
    (arch, nr) == ``stop`` and ENOSYS otherwise; return what was seen, the stopping
    notification's data, and the probe's wait status."""
    art = prepare(notify_artifact())
    assert art.notify and art.flags == 1 << 3  # SECCOMP_FILTER_FLAG_NEW_LISTENER
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    loader = FilterLoader(art.bpf, art.flags)
    tell_r, tell_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            listener = loader.load()
            os.write(tell_w, str(listener).encode())
            os.read(go_r, 1)  # keep the listener open until the parent holds a copy
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    listener_in_child = int(os.read(tell_r, 16))
    pidfd = libc.syscall(SYS_pidfd_open, pid, 0)
    listener = libc.syscall(SYS_pidfd_getfd, pidfd, listener_in_child, 0)
    assert pidfd >= 0 and listener >= 0, os.strerror(ctypes.get_errno())
    os.write(go_w, b"g")
    seen: list[tuple[int, int]] = []
    data = b""
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], 10)
            assert ready, f"no notification within 10 s (saw {seen})"
            notif = Notif()
            if libc.ioctl(listener, NOTIF_RECV, ctypes.byref(notif)) != 0:
                raise OSError(ctypes.get_errno(), "SECCOMP_IOCTL_NOTIF_RECV")
            nr = int.from_bytes(bytes(notif.data[:4]), "little")
            arch = int.from_bytes(bytes(notif.data[4:8]), "little")
            seen.append((arch, nr))
            hit = (arch, nr) == stop
            resp = NotifResp(notif.id, 0, -answer if hit else -errno.ENOSYS, 0)
            if libc.ioctl(listener, NOTIF_SEND, ctypes.byref(resp)) != 0:
                raise OSError(ctypes.get_errno(), "SECCOMP_IOCTL_NOTIF_SEND")
            if hit:
                data = bytes(notif.data)
                break
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (listener, pidfd, tell_r, tell_w, go_r, go_w):
            os.close(fd)
    return seen, data, status


def test_notify_round_trip(probes: dict[str, Path]) -> None:
    argv = [str(probes["try_syscall"]), "native", str(NR["syslog"]), "10"]
    seen, data, status = _round_trip(
        probes, argv, (AUDIT_ARCH_X86_64, NR["syslog"]), errno.EKEYREJECTED
    )
    assert data[16:24] == pack_seccomp_data(0, 0, (10,))[16:24]
    assert seen == [(AUDIT_ARCH_X86_64, NR["syslog"])]  # nothing else the probe needs was refused
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == errno.EKEYREJECTED


def test_foreign_abis_reach_the_listener_with_their_arch(probes: dict[str, Path]) -> None:
    """i386 getpid (int 0x80, nr 20) is held for the supervisor, named by its own ABI;
    what the supervisor answers is what the call returns (it never runs by itself)."""
    argv = [str(probes["try_syscall"]), "int80", "20"]
    seen, _, status = _round_trip(probes, argv, (AUDIT_ARCH_I386, 20), errno.EKEYREJECTED)
    assert seen == [(AUDIT_ARCH_I386, 20)]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == errno.EKEYREJECTED

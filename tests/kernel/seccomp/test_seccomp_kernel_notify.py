"""default_action = "notify": denials reach a supervisor through the listener fd.

The child loads the filter with SECCOMP_FILTER_FLAG_NEW_LISTENER (artifact.flags),
tells the parent the listener's fd number and waits; the parent copies the fd
with pidfd_getfd, lets the child exec a probe that calls syslog(2), receives the
notification (SECCOMP_IOCTL_NOTIF_RECV), checks it names syslog, and answers
EKEYREJECTED (SECCOMP_IOCTL_NOTIF_SEND), which becomes the probe's exit status.
Foreign ABIs still die at once: the bad-arch action stays KILL_PROCESS.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
from pathlib import Path

from seccomp_kernel import FilterLoader, profile_seccomp, requires_seccomp, run_filtered

from sandbox.policy.model import Seccomp
from sandbox.seccomp.bpf import pack_seccomp_data
from sandbox.seccomp.build import prepare
from sandbox.seccomp.tables import AUDIT_ARCH_X86_64, table

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


def test_notify_round_trip(probes: dict[str, Path]) -> None:
    art = prepare(notify_artifact())
    assert art.notify and art.flags == 1 << 3  # SECCOMP_FILTER_FLAG_NEW_LISTENER
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    loader = FilterLoader(art.bpf, art.flags)
    tell_r, tell_w = os.pipe()
    go_r, go_w = os.pipe()
    argv = [str(probes["try_syscall"]), "native", str(NR["syslog"]), "10"]
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
    seen = []
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], 10)
            assert ready, f"no notification within 10 s (saw {seen})"
            notif = Notif()
            if libc.ioctl(listener, NOTIF_RECV, ctypes.byref(notif)) != 0:
                raise OSError(ctypes.get_errno(), "SECCOMP_IOCTL_NOTIF_RECV")
            nr = int.from_bytes(bytes(notif.data[:4]), "little")
            seen.append(table("x86_64").name(nr))
            resp = NotifResp(
                notif.id, 0, -errno.EKEYREJECTED if nr == NR["syslog"] else -errno.ENOSYS, 0
            )
            if libc.ioctl(listener, NOTIF_SEND, ctypes.byref(resp)) != 0:
                raise OSError(ctypes.get_errno(), "SECCOMP_IOCTL_NOTIF_SEND")
            if nr == NR["syslog"]:
                assert bytes(notif.data[4:8]) == AUDIT_ARCH_X86_64.to_bytes(4, "little")
                assert bytes(notif.data)[16:24] == pack_seccomp_data(0, 0, (10,))[16:24]
                break
    finally:
        _, status = os.waitpid(pid, 0)
        for fd in (listener, pidfd, tell_r, tell_w, go_r, go_w):
            os.close(fd)
    assert seen == ["syslog"]  # nothing else the probe needs was refused
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == errno.EKEYREJECTED


def test_notify_filter_still_kills_foreign_abis(probes: dict[str, Path]) -> None:
    art = prepare(notify_artifact())
    out = run_filtered(art.bpf, [str(probes["try_syscall"]), "int80", "20"], flags=art.flags)
    assert out.signal == signal.SIGSYS

"""Supervisor-side kernel calls for recording violations: seccomp user notification.

Runs in the supervisor. The payload loads its filter with
SECCOMP_FILTER_FLAG_NEW_LISTENER and reports the listener's fd number to its
init, which copies that fd out of the payload with pidfd_getfd and passes it to
the supervisor over the notify channel (SCM_RIGHTS: launcher.steps
``step_take_listener``, received with sandbox.syscalls.fdpass). The supervisor
then receives one notification per denied syscall, foreign-ABI calls (i386
``int 0x80``, x32) included: the filter answers them USER_NOTIF, not a kernel kill.
That listener is the run's only violation channel: nothing the payload writes
reaches it, and each run has its own, so no other run can flood or forge it.
(The kernel's audit records in /dev/kmsg were one once: rate-limited host-wide,
floodable by any task, and attributable only by host uid; issue 13 item 4.)
"""

from __future__ import annotations

import errno
import fcntl
import select
import struct
from dataclasses import dataclass

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
_NOTIF = struct.Struct("=QIIiIQ6Q")  # id, pid, flags, nr, arch, ip, args[6]
_RESP = struct.Struct("=QqiI")  # id, val, error, flags


@dataclass(frozen=True, slots=True)
class Notification:
    """One denied syscall the payload is blocked in."""

    id: int
    pid: int
    nr: int
    arch: int
    ip: int
    args: tuple[int, ...]


def recv(listener: int) -> Notification | None:
    """Receive one notification; None when it went away (the task died: ENOENT)."""
    buf = bytearray(_NOTIF.size)
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.EINTR):
            return None
        raise
    nid, pid, _flags, nr, arch, ip, *args = _NOTIF.unpack(buf)
    return Notification(nid, pid, nr, arch, ip, tuple(args))


def hung_up(listener: int) -> bool:
    """True when no task uses the filter any more and nothing is pending.

    The listener then polls POLLHUP without POLLIN; a pending notification
    (POLLIN) is received first even if the filter's last task is going away.
    """
    p = select.poll()
    p.register(listener, select.POLLIN)
    return any(ev & select.POLLHUP and not ev & select.POLLIN for _, ev in p.poll(0))


def answer_errno(listener: int, nid: int, err: int) -> None:
    """Make the blocked syscall fail with ``err`` (the task may have died: ignored)."""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(_RESP.pack(nid, 0, -err, 0)))
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_IOCTL_NOTIF_ID_VALID = 0x40082102


def answer_continue(listener: int, nid: int) -> None:
    """Let the blocked syscall proceed as if no filter had asked (learning mode).

    Only for recording: a CONTINUE reply is not a security decision (the
    kernel re-reads the arguments, which the task may have changed since).
    """
    try:
        fcntl.ioctl(
            listener,
            SECCOMP_IOCTL_NOTIF_SEND,
            bytearray(_RESP.pack(nid, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)),
        )
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise


def id_valid(listener: int, nid: int) -> bool:
    """Whether notification ``nid`` is still pending (TOCTOU check after reading memory)."""
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, struct.pack("=Q", nid))
        return True
    except OSError:
        return False

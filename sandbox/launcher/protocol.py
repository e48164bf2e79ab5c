"""Wire formats between the launcher child, its fork server and the supervisor.

- errpipe (CLOEXEC, written by the child): ``EXEC_READY`` once every step
  but seccomp and execve has passed, then on failure ``step:hexerrno:message``.
  EOF after ``EXEC_READY`` alone means the payload's execve succeeded
  (CPython's _execute_child protocol); EOF without it means the launcher died
  before execve, however quietly: never a good start (issue 13 item 6).
- status pipe (written once by the container's init when the payload ends):
  the raw wait status and the payload's rusage from wait4.
- launcher requests and replies (supervisor <-> fork server): one JSON object
  per SOCK_SEQPACKET message, fds attached with SCM_RIGHTS (``send_msg`` /
  ``recv_msg``).
- id-map sync: the child writes ``USERNS_READY`` after unshare(CLONE_NEWUSER);
  whoever owns the parent side writes the maps and answers ``MAPS_WRITTEN``.
- start gate (optional, an OCI ``create``): the payload writes ``GATE_READY``
  once set up and execs only after reading ``GATE_OPEN`` (EOF: never started).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

from sandbox.syscalls.fdpass import recv_fds, send_fds

EXEC_READY = b"\x01"  # cannot begin a failure record (those begin with a step name)
USERNS_READY = b"U"
MAPS_WRITTEN = b"M"
MAPS_FAILED = b"F"
NOTIFY_TAKEN = b"K"  # init to the payload: its seccomp listener is held
# Tags of the fds on the handover channels (payload -> init -> supervisor), one a message.
LISTENER_TAG = b"F"  # the payload's seccomp listener
CONSOLE_TAG = b"C"  # the master of the console pty (an OCI process.terminal)
# OCI exec: the joining process tells the exec's supervisor the payload's listener's
# fd number (no fd: the payload is not dumpable; the supervisor copies it itself).
LISTENER_NUMBER_TAG = b"N"
GATE_READY = b"R"
GATE_OPEN = b"G"

EXIT_SPAWN_FAILED = 125
MAX_MSG = 1 << 20
MAX_FDS = 64
_STATUS = struct.Struct("=iddqqqqq")
_FILE = struct.Struct("=Iq")  # name length, size (negative: why it is missing)


@dataclass(frozen=True, slots=True)
class ChildFailure:
    """A launcher step that failed before the payload ran."""

    step: str
    errno: int
    message: str


def encode_failure(step: str, errno: int, message: str) -> bytes:
    """``step:hexerrno:message``, truncated to fit one atomic pipe write."""
    return f"{step}:{errno:x}:{message}".encode(errors="replace")[:4000]


def decode_failure(data: bytes) -> ChildFailure:
    """Inverse of :func:`encode_failure`; garbage becomes an 'unknown' failure."""
    try:
        step, err, msg = data.decode(errors="replace").split(":", 2)
        return ChildFailure(step, int(err, 16), msg)
    except ValueError:
        return ChildFailure("unknown", 0, data[:200].decode(errors="replace"))


@dataclass(frozen=True, slots=True)
class PayloadStatus:
    """What the container's init saw of the payload: wait status and rusage."""

    status: int
    utime: float
    stime: float
    maxrss_kib: int
    nvcsw: int
    nivcsw: int
    rchar: int = -1
    wchar: int = -1

    def encode(self) -> bytes:
        """Fixed-size binary record."""
        return _STATUS.pack(
            self.status,
            self.utime,
            self.stime,
            self.maxrss_kib,
            self.nvcsw,
            self.nivcsw,
            self.rchar,
            self.wchar,
        )

    @classmethod
    def decode(cls, data: bytes) -> PayloadStatus:
        """Parse a record written by :meth:`encode`."""
        return cls(*_STATUS.unpack(data[: _STATUS.size]))

    SIZE = _STATUS.size


# Why a collected file is missing (negative sizes in the record; collect.c has
# the same numbers). Any other errno E of the open or read comes as -(1000 + E).
MISSING, NOT_REGULAR, TOO_BIG, REFUSED, DENIED, COLLECTOR_FAILED = -1, -2, -3, -4, -5, -6
_REASONS = {
    MISSING: "no such file",
    NOT_REGULAR: "not a regular file",
    TOO_BIG: "larger than the collect limit",
    REFUSED: "refused: a symlink, another mount or a path leaving /box on the way",
    DENIED: "permission denied (the payload could not read it either)",
    COLLECTOR_FAILED: "the collector could not take the payload's rights",
}


def collect_code(err: int) -> int:
    """The record code for an errno from opening or reading a collected file."""
    if err in (errno.ENOENT, errno.ENOTDIR):
        return MISSING
    if err in (errno.ELOOP, errno.EXDEV, errno.EAGAIN):
        return REFUSED
    if err in (errno.EACCES, errno.EPERM):
        return DENIED
    return -(1000 + err)


def collect_reason(code: int) -> str:
    """Why a file was not collected, in words, from its record code."""
    if code in _REASONS:
        return _REASONS[code]
    if code <= -1000:
        err = -code - 1000
        return f"{errno.errorcode.get(err, str(err))}: {os.strerror(err)}"
    return f"unknown reason {code}"


def encode_file(name: str, size: int, data: bytes = b"") -> bytes:
    """One collected file after the status record: header, name, contents."""
    raw = name.encode()
    return _FILE.pack(len(raw), size) + raw + data


def decode_files(data: bytes) -> dict[str, bytes | int]:
    """Collected files by name: contents, or the negative reason code."""
    out: dict[str, bytes | int] = {}
    off = 0
    while off + _FILE.size <= len(data):
        nlen, size = _FILE.unpack_from(data, off)
        off += _FILE.size
        name = data[off : off + nlen].decode(errors="replace")
        off += nlen
        if size < 0:
            out[name] = size
        else:
            out[name] = data[off : off + size]
            off += size
    return out


def send_msg(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """One JSON message, with fds attached when given."""
    send_fds(sock, json.dumps(msg).encode(), fds or ())


def recv_msg(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """(message, fds); (None, []) at EOF."""
    data, fds = recv_fds(sock, MAX_MSG, MAX_FDS)
    return (json.loads(data), fds) if data else (None, [])

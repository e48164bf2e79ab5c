"""The control socket between runtime commands and a container's supervisor (light).

One request per connection: a JSON object on an AF_UNIX SOCK_SEQPACKET
socket (fds attached with SCM_RIGHTS), one JSON reply. The socket lives in
the container's 0700 state directory, so only root reaches it. Also the
console protocol of runc: the pty master sent over ``--console-socket``.
"""

from __future__ import annotations

import json
import os
import socket

from sandbox.syscalls.fdpass import recv_fds, send_fds

TYPE_CHECKING = False  # not typing's (see oci.state)
if TYPE_CHECKING:
    from typing import Any

MAX_MSG = 1 << 16
MAX_FDS = 64
TIMEOUT = 30.0


def send(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """One JSON message, with fds when given."""
    send_fds(sock, json.dumps(msg).encode(), fds or ())


def recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """(message, fds); (None, []) at EOF."""
    data, fds = recv_fds(sock, MAX_MSG, MAX_FDS)
    if not data:
        return None, []
    msg = json.loads(data)
    if not isinstance(msg, dict):
        for fd in fds:
            os.close(fd)
        raise ValueError("a control message must be a JSON object")
    return msg, fds


def unix_addr(path: str) -> tuple[str, int]:
    """An AF_UNIX address for ``path`` short enough for sun_path (108 bytes): through
    an O_PATH fd of its directory (engines' ids alone are 64 characters). Returns
    (address, fd to close once bound or connected)."""
    d = os.open(os.path.dirname(path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{d}/{os.path.basename(path)}", d


def request(
    path: str, msg: dict[str, Any], fds: list[int] | None = None, timeout: float | None = TIMEOUT
) -> dict[str, Any]:
    """Send one request to the supervisor at ``path`` and return its reply.

    Raises:
        OSError: the supervisor is not there (ECONNREFUSED/ENOENT) or hung up.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        addr, d = unix_addr(path)
        try:
            s.connect(addr)
        finally:
            os.close(d)
        send(s, msg, fds)
        reply, got = recv(s)
        for fd in got:
            os.close(fd)
    if reply is None:
        raise ConnectionResetError("the container's supervisor hung up")
    return reply


def send_console(path: str, master: int, name: str) -> None:
    """runc's console protocol: connect to ``path``, send the pty master (SCM_RIGHTS)
    with the slave's name as the data."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.connect(path)
        send_fds(s, name.encode(), [master])

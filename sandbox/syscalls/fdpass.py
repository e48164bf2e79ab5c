"""Messages with file descriptors over AF_UNIX sockets (SCM_RIGHTS), both directions.

One implementation for every channel that carries fds: the launcher
protocol, the OCI runtime's control socket, the CLI's zygote. A message
that ends the stream (EOF) closes whatever fds came with it.
"""

from __future__ import annotations

import array
import os
import socket
from collections.abc import Sequence


def send_fds(sock: socket.socket, data: bytes, fds: Sequence[int] = ()) -> None:
    """Send ``data`` as one message, with ``fds`` attached when there are any."""
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv_fds(sock: socket.socket, max_msg: int, max_fds: int) -> tuple[bytes, list[int]]:
    """One message and the fds that came with it; ``(b"", [])`` at EOF."""
    fds = array.array("i")
    data, anc, _flags, _ = sock.recvmsg(max_msg, socket.CMSG_SPACE(max_fds * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return b"", []
    return data, list(fds)

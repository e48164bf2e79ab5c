"""What both launcher clients share: one server, one socket, a reply queue per run.

Supervisor side, no privilege. The native client (:mod:`sandbox.launcher.native`)
and the Python fork server's (:mod:`sandbox.runner.client`) differ in how they
start their server and encode messages; the bookkeeping is this class's: the
socket opened on the first spawn, each run's queue, routing a reply to its
run, telling every run in flight when the server goes away, and shutting the
server down. Thread-safe: many runs may be in flight from many threads.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import threading
from typing import Any


class ServerConnection:
    """One connection to one launcher server; subclasses start it (``_start``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0

    @property
    def server_pid(self) -> int:
        """Pid of the server process (0 before the first spawn)."""
        return self._pid

    def _start(self) -> socket.socket:
        """Start a server (and a reader thread calling ``_route``); our end of its socket."""
        raise NotImplementedError

    def _register(self, run_id: str) -> tuple[socket.socket, queue.Queue[dict[str, Any]]]:
        """The server's socket (started on first use) and a new queue for ``run_id``'s replies."""
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            if self._sock is None:
                self._sock = self._start()
            self._queues[run_id] = q
            return self._sock, q

    def _route(self, sock: socket.socket, msg: dict[str, Any] | None) -> bool:
        """Put a reply on its run's queue; False at the server's end (``msg`` None).

        At the end every run in flight gets ``server_died`` and the socket is
        forgotten, so the next spawn starts a new server.
        """
        if msg is None:
            with self._lock:
                if self._sock is sock:
                    self._sock = None
                queues = list(self._queues.values())
            for q in queues:
                q.put({"op": "server_died"})
            return False
        rid = msg.get("run_id")
        with self._lock:
            dest = self._queues.get(rid) if isinstance(rid, str) else None
        if dest is not None:
            dest.put(msg)
        return True

    def _socket_for(self, op: str, run_id: str) -> socket.socket | None:
        """The socket for a fire-and-forget ``op``; a ``release`` forgets the run's queue."""
        with self._lock:
            if op == "release":
                self._queues.pop(run_id, None)
            return self._sock

    def close(self) -> None:
        """Shut the server down (it kills and cleans any run still in flight)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            # shutdown, not just close: the reader thread blocked in recv keeps the
            # socket alive past close(), and the server would never see EOF.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._proc is not None:
            self._proc.wait()

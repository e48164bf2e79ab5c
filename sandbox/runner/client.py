"""Client of the fork server: start it, send spawn requests, route its replies.

Thread-safe: many runs may be in flight from many threads; a reader thread
routes each reply to its run's queue. The server is started either by
``fork()`` (the CLI: single-threaded, already has everything imported) or as
a fresh interpreter ``python -I`` running ``sandbox.launcher.server`` (the library: the
caller may have threads, so no fork of the caller's process). If the server
dies, the next spawn starts a new one transparently.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sandbox import codec
from sandbox.errors import SandboxInternalError
from sandbox.launcher.connection import ServerConnection
from sandbox.launcher.protocol import recv_msg, send_msg
from sandbox.plan import LaunchPlan
from sandbox.syscalls.linux import LinuxSyscalls

PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding sandbox/


class ForkServerClient(ServerConnection):
    """One connection to one fork server process."""

    def __init__(self, mode: Literal["fork", "exec"] = "exec") -> None:
        super().__init__()
        self.mode = mode

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        if self.mode == "fork":
            pid = os.fork()
            if pid == 0:  # the server: single-threaded copy of the CLI
                try:
                    # Nothing of the caller's but the socket: a pipe end kept here
                    # would hold back a run's EOF for as long as the server lives.
                    keep = theirs.fileno()
                    os.closerange(3, keep)
                    LinuxSyscalls().close_range(keep + 1, 0xFFFFFFFF, 0)
                    from sandbox.launcher.server import ForkServer

                    ForkServer(theirs).serve()
                finally:
                    os._exit(0)
            self._pid = pid
        else:
            # -I: no environment, no user site, nothing from the caller's working
            # directory on sys.path (a json.py planted there would run as root);
            # the package's own location is put on the path explicitly.
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "from sandbox.launcher.server import main; main(sys.argv[2:])"
            )
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", code, PACKAGE_ROOT, "--fd", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                cwd="/",
                env={},
            )
            self._pid = self._proc.pid
        theirs.close()
        threading.Thread(
            target=self._reader, args=(ours,), daemon=True, name="sandbox-forkserver-reader"
        ).start()
        return ours

    def _reader(self, sock: socket.socket) -> None:
        while True:
            try:
                msg, fds = recv_msg(sock)
            except OSError:
                msg, fds = None, []
            for fd in fds:
                os.close(fd)
            if not self._route(sock, msg):
                return

    def spawn(
        self, plan: LaunchPlan, fds: Sequence[tuple[str, int]], cleanup: dict[str, Any]
    ) -> queue.Queue[dict[str, Any]]:
        """Send a spawn request; returns the queue on which the run's replies arrive."""
        sock, q = self._register(plan.run_id)
        msg = {
            "op": "spawn",
            "run_id": plan.run_id,
            "plan": codec.dumps(plan),
            "fds": [n for n, _ in fds],
            "cleanup": cleanup,
        }
        try:
            send_msg(sock, msg, [fd for _, fd in fds])
        except OSError as e:
            raise SandboxInternalError(f"fork server unreachable: {e}") from e
        return q

    def hold(self, run_id: str, cleanup: dict[str, Any]) -> None:
        """Have the server remove ``cleanup`` should this client die before a spawn
        of ``run_id`` takes it over (or ``send("release", run_id)`` ends it)."""
        with self._lock:
            if self._sock is None:
                self._sock = self._start()
            sock = self._sock
        try:
            send_msg(sock, {"op": "hold", "run_id": run_id, "cleanup": cleanup})
        except OSError as e:
            raise SandboxInternalError(f"fork server unreachable: {e}") from e

    def send(self, op: str, run_id: str) -> None:
        """Fire-and-forget request about a run (``kill``, ``release``)."""
        sock = self._socket_for(op, run_id)
        if sock is not None:
            with contextlib.suppress(OSError):
                send_msg(sock, {"op": op, "run_id": run_id})

    def close(self) -> None:
        """Shut the server down (it kills and cleans any run still in flight)."""
        super().close()
        if self._proc is None and self._pid:  # a forked server: ours to reap
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)

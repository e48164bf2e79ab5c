"""Client of the native launcher server (``sandbox-launcher --server``).

The same interface as :class:`sandbox.runner.client.ForkServerClient`
(``spawn(plan, fds, cleanup) -> queue`` of reply dicts, ``send("kill" |
"release", run_id)``, ``close()``, ``server_pid``), so the supervisor takes
either. The server is a small C process started with ``posix_spawn`` (never a
fork of the caller, who may have threads); it forks one outer process per run
and writes the id maps, and is the watchdog of its client's runs (see
``native/server.c``). Plans cross as :mod:`sandbox.launcher.wire` bytes.

A missing or stale binary refuses the run with the fix (never a fallback to
the Python launcher): the server's hello carries its protocol and plan
versions and the build id of the sources it was built from, which must match
the sources shipped beside this module.
"""

from __future__ import annotations

import array
import contextlib
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from sandbox.errors import PolicyError, SandboxInternalError, SetupError
from sandbox.launcher import nativebuild, wire
from sandbox.launcher.connection import ServerConnection
from sandbox.plan import LaunchPlan

BINARY = Path(__file__).resolve().parent / nativebuild.BINARY_NAME
FIX = "run ./scripts/setup.sh in the checkout, or reinstall the package (pip install .)"
# Network namespaces the server prepares ahead (root only; each serves one run).
NETNS_POOL = int(os.environ.get("SANDBOX_NETNS_POOL", "2"))
# Measurements only: a file the server and its children append step times to.
TRACE = os.environ.get("SANDBOX_LAUNCHER_TRACE")
_FD_ORDER = ("stdin", "stdout", "stderr", "errpipe", "status")


@cache
def expected_build_id() -> str:
    """Build id of the sources beside this module (what a good binary reports)."""
    return nativebuild.build_id()


def check_binary(path: Path = BINARY) -> None:
    """Refuse early when the executable is not there.

    Raises:
        SetupError: naming the fix.
    """
    if not os.access(path, os.X_OK):
        raise SetupError(
            "launcher",
            f"the native launcher is not built ({path} is missing): {FIX}; "
            "or choose the Python launcher (--launcher python, Sandbox(launcher='python'))",
        )


class NativeLauncherClient(ServerConnection):
    """One connection to one native launcher server (thread-safe)."""

    def __init__(
        self, mode: str = "exec", binary: Path = BINARY, netns_pool: int = NETNS_POOL
    ) -> None:
        super().__init__()
        self.mode = mode  # accepted for ForkServerClient's signature; always exec'd
        self.binary = binary
        self.netns_pool = netns_pool
        self.server_env: dict[str, str] = {}  # tests: sanitizer options

    def _start(self) -> socket.socket:
        spare = take_prestarted(self.binary)
        if spare is None:
            ours = self._launch()
        else:
            ours, self._pid = spare
            self._hello(ours)  # it has been starting while the fork was made
        threading.Thread(
            target=self._reader, args=(ours,), daemon=True, name="sandbox-native-reader"
        ).start()
        return ours

    def _launch(self) -> socket.socket:
        """Start a server and check its hello (no reader yet)."""
        ours = self._spawn_server()
        self._hello(ours)
        return ours

    def _spawn_server(self) -> socket.socket:
        """Start a server process; our end of its socket (its hello not read yet)."""
        check_binary(self.binary)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with contextlib.suppress(OSError):  # large plans (root may exceed wmem_max)
            ours.setsockopt(socket.SOL_SOCKET, 32, wire.MAX_MSG)  # SO_SNDBUFFORCE
        try:
            self._proc = subprocess.Popen(
                [
                    str(self.binary),
                    "--server",
                    str(theirs.fileno()),
                    "--netns-pool",
                    str(self.netns_pool),
                    *(["--trace", TRACE] if TRACE else []),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=dict(self.server_env),
                cwd="/",
            )
        finally:
            theirs.close()
        self._pid = self._proc.pid
        return ours

    def _hello(self, ours: socket.socket) -> None:
        """Read and check the server's hello: protocol, plan version and build id."""
        ours.settimeout(10.0)
        try:
            hello = wire.decode_reply(ours.recv(4096))
        except (OSError, ValueError) as e:
            self._abandon(ours)
            raise SetupError("launcher", f"the native launcher did not start: {e}; {FIX}") from e
        ours.settimeout(None)
        want = (wire.PROTOCOL_VERSION, wire.PLAN_VERSION, expected_build_id())
        got = (hello.get("protocol"), hello.get("plan"), hello.get("build"))
        if hello.get("op") != "hello" or got != want:
            self._abandon(ours)
            raise SetupError(
                "launcher",
                f"the native launcher at {self.binary} was built from other sources "
                f"(protocol/plan/build {got}, expected {want}): {FIX}",
            )

    def _abandon(self, sock: socket.socket) -> None:
        sock.close()  # EOF: the server exits
        if self._proc is not None:
            self._proc.wait()

    def _reader(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(wire.MAX_MSG)
            except OSError:
                data = b""
            msg: dict[str, Any] | None = None
            if data:
                try:
                    msg = wire.decode_reply(data)
                except ValueError:
                    msg = None  # a server speaking garbage is a dead server
            if not self._route(sock, msg):
                return

    def spawn(
        self, plan: LaunchPlan, fds: Sequence[tuple[str, int]], cleanup: dict[str, Any]
    ) -> queue.Queue[dict[str, Any]]:
        """Send a spawn request; returns the queue on which the run's replies arrive.

        Raises:
            SetupError: the native launcher is missing or stale (with the fix).
            PolicyError: a value of the run that the plan cannot carry (a NUL byte).
        """
        try:
            encoded = wire.encode_plan(plan)
        except ValueError as e:
            raise PolicyError(f"cannot launch: {e}") from None
        byname = dict(fds)
        ordered = [byname[n] for n in _FD_ORDER]
        has_notify = "notify" in byname
        if has_notify:
            ordered.append(byname["notify"])
        has_gate = "gate" in byname
        if has_gate:
            ordered.append(byname["gate"])
        cgroup = [fd for n, fd in fds if n.startswith("cgroup")]
        ordered += cgroup
        msg = wire.encode_spawn(
            plan.run_id,
            encoded,
            has_notify,
            len(cgroup),
            cleanup.get("cgroup_dirs", []),
            cleanup.get("files", []),
            cleanup.get("staged_dirs", []),
            has_gate,
        )
        sock, q = self._register(plan.run_id)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", ordered))]
        try:
            sock.sendmsg([msg], anc)
        except OSError as e:
            raise SandboxInternalError(f"native launcher unreachable: {e}") from e
        return q

    def hold(self, run_id: str, cleanup: dict[str, Any]) -> None:
        """Have the server remove ``cleanup`` (``cgroup_dirs``, ``files``) should this
        client die before a spawn of ``run_id`` takes it over or a release ends it."""
        msg = wire.encode_hold(run_id, cleanup.get("cgroup_dirs", []), cleanup.get("files", []))
        with self._lock:
            if self._sock is None:
                self._sock = self._start()
            sock = self._sock
        try:
            sock.send(msg)
        except OSError as e:
            raise SandboxInternalError(f"native launcher unreachable: {e}") from e

    def send(self, op: str, run_id: str) -> None:
        """Fire-and-forget request about a run (``kill``, ``release``)."""
        code = {"kill": wire.OP_KILL, "release": wire.OP_RELEASE}[op]
        sock = self._socket_for(op, run_id)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.send(wire.encode_op(code, run_id))


# A server started ahead by a single-threaded parent that forks one client
# process per run (the CLI's zygote): the fork takes it over, so the run does
# not wait for a server to start (and to prepare its network namespaces).
_PRESTARTED: tuple[Path, socket.socket, int, tuple[int, int, int]] | None = None


def prestart(binary: Path = BINARY) -> int:
    """Start a server now (without waiting for it), for the next client made in a fork
    of this process; its pid.

    The caller (the zygote) closes its own copy of the socket after the fork
    with :func:`drop_prestarted` and reaps the server when it exits.

    Raises:
        SetupError: the native launcher is missing or stale.
    """
    global _PRESTARTED
    client = NativeLauncherClient(binary=binary)
    sock = client._spawn_server()  # its hello is read by the fork that takes it
    _PRESTARTED = (binary, sock, client._pid, _file_id(binary))
    return client._pid


def _file_id(path: Path) -> tuple[int, int, int]:
    """(device, inode, mtime) of the launcher binary; zeros when it is gone."""
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def take_prestarted(binary: Path) -> tuple[socket.socket, int] | None:
    """The server started ahead for this process and its pid, if still there (once)."""
    global _PRESTARTED
    spare, _PRESTARTED = _PRESTARTED, None
    if spare is None:
        return None
    # Only while it is the binary installed now: a launcher removed or replaced
    # since is never used through a server started before.
    if spare[0] != binary or spare[3] != _file_id(binary) or _hung_up(spare[1]):
        spare[1].close()
        return None
    return spare[1], spare[2]


def drop_prestarted() -> None:
    """Close this process's copy of the server started ahead (the fork took it)."""
    global _PRESTARTED
    spare, _PRESTARTED = _PRESTARTED, None
    if spare is not None:
        spare[1].close()


def _hung_up(sock: socket.socket) -> bool:
    import select

    poller = select.poll()
    poller.register(sock, 0)  # only hang-ups and errors: its hello may be waiting to be read
    return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0))

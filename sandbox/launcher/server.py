"""The fork server: a single-threaded process that forks one launcher child per run.

Why a separate process (STYLE B4): ``unshare(CLONE_NEWUSER)`` fails in a
multi-threaded process and forking a threaded Python can deadlock, while a
judge's supervisor has threads. This process has done its imports once, is
single-threaded, and forks cheaply. It also:

- writes each child's uid_map/gid_map from outside its new user namespace
  (only the parent namespace may), answering the child's USERNS_READY;
- reaps its children and reports their exit;
- is the **watchdog**: when its client's socket reaches EOF (the supervisor
  exited or was SIGKILLed), it kills every run of that client and removes the
  cgroup leaves and lock files they registered, so nothing is left behind.
  It does not use PR_SET_PDEATHSIG itself, because that follows the *thread*
  that forked it and a judge may start it from a pool thread.

Messages are JSON on a SOCK_SEQPACKET socket, fds travel with SCM_RIGHTS.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import codec
from sandbox.caps.names import last_cap
from sandbox.launcher.protocol import MAPS_FAILED, MAPS_WRITTEN, USERNS_READY
from sandbox.launcher.steps import Ctx, LaunchFds, outer_main
from sandbox.plan import LaunchPlan
from sandbox.syscalls.linux import LinuxSyscalls

MAX_MSG = 1 << 20
MAX_FDS = 64


def send_msg(sock: socket.socket, msg: dict[str, Any], fds: list[int] | None = None) -> None:
    """One JSON message, with fds attached when given."""
    data = json.dumps(msg).encode()
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def recv_msg(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """(message, fds); (None, []) at EOF."""
    fds = array.array("i")
    data, anc, _flags, _ = sock.recvmsg(MAX_MSG, socket.CMSG_SPACE(MAX_FDS * fds.itemsize))
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), list(fds)


def write_id_maps(pid: int, inside: tuple[int, int], host: tuple[int, int]) -> None:
    """Map exactly one uid and one gid (never an identity map); setgroups denied."""
    (iu, ig), (hu, hg) = inside, host
    with open(f"/proc/{pid}/uid_map", "w") as f:
        f.write(f"{iu} {hu} 1\n")
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    with open(f"/proc/{pid}/gid_map", "w") as f:
        f.write(f"{ig} {hg} 1\n")


@dataclass
class _Run:
    run_id: str
    pid: int
    pidfd: int
    sync: socket.socket
    inside: tuple[int, int]
    host: tuple[int, int]
    cleanup: dict[str, Any] = field(default_factory=dict)
    exited: bool = False


def remove_cgroup_dirs(dirs: list[str], deadline: float = 5.0) -> None:
    """Kill what is left in each leaf and rmdir it (deepest first). Idempotent."""
    end = time.monotonic() + deadline
    for d in sorted(dirs, key=lambda p: -p.count("/")):
        while os.path.isdir(d):
            try:
                os.rmdir(d)
                break
            except OSError:
                pass
            kill = Path(d, "cgroup.kill")
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
            try:
                for pid in Path(d, "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
            if time.monotonic() > end:
                break
            time.sleep(0.005)


class ForkServer:
    """Serve one client on ``sock`` until it closes (see module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sel = selectors.DefaultSelector()
        self.runs: dict[str, _Run] = {}
        self.sc = LinuxSyscalls()
        self.last_cap = last_cap()
        self.parent = os.getpid()

    def serve(self) -> None:
        """Event loop: requests, id-map syncs and child exits."""
        self.sel.register(self.sock, selectors.EVENT_READ, ("ctl", None))
        while True:
            for key, _ in self.sel.select():
                kind, run = key.data
                if kind == "ctl":
                    msg, fds = recv_msg(self.sock)
                    if msg is None:
                        self._shutdown()
                        return
                    self._handle(msg, fds)
                elif run is None or self.runs.get(run.run_id) is not run:
                    continue  # released earlier in this batch of events
                else:
                    try:
                        if kind == "sync":
                            self._on_sync(run)
                        elif kind == "exit" and not run.exited:
                            self._on_exit(run)
                    except Exception as e:  # one run's trouble must not end the others
                        print(
                            f"sandbox fork server: run {run.run_id}: {type(e).__name__}: {e}",
                            file=sys.stderr,
                        )

    def _handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg.get("op")
        if op == "spawn":
            try:
                self._spawn(msg, fds)
            except Exception as e:  # report, never die: other runs depend on us
                send_msg(
                    self.sock,
                    {
                        "op": "failed",
                        "run_id": msg.get("run_id"),
                        "error": f"{type(e).__name__}: {e}",
                    },
                )
            finally:
                for fd in fds:
                    os.close(fd)
        elif op == "kill":
            run = self.runs.get(msg["run_id"])
            if run and not run.exited:
                os.kill(run.pid, signal.SIGKILL)
        elif op == "release":
            run = self.runs.pop(msg["run_id"], None)
            if run:
                self._forget(run)
        elif op == "ping":
            send_msg(self.sock, {"op": "pong"})

    def _spawn(self, msg: dict[str, Any], fds: list[int]) -> None:
        plan = codec.loads(LaunchPlan, msg["plan"])
        names: list[str] = msg["fds"]
        byname = dict(zip(names, fds, strict=True))
        child_sync, our_sync = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lfds = LaunchFds(
            stdin=byname["stdin"],
            stdout=byname["stdout"],
            stderr=byname["stderr"],
            errpipe=byname["errpipe"],
            status=byname["status"],
            sync=child_sync.fileno(),
            cgroup_join=tuple(
                fd for n, fd in zip(names, fds, strict=True) if n.startswith("cgroup")
            ),
            notify=byname.get("notify", -1),
        )
        pid = os.fork()
        if pid == 0:
            try:
                our_sync.close()
                self.sock.close()
                self.sel.close()
                for other in self.runs.values():  # nothing of other runs in this child
                    other.sync.close()
                    os.close(other.pidfd)
                ctx = Ctx(
                    plan=plan, fds=lfds, sc=self.sc, parent_pid=self.parent, last_cap=self.last_cap
                )
                outer_main(ctx)
            finally:
                os._exit(125)
        child_sync.close()
        run = _Run(
            plan.run_id,
            pid,
            os.pidfd_open(pid),
            our_sync,
            (plan.inside_uid, plan.inside_gid),
            (plan.host_uid, plan.host_gid),
            msg.get("cleanup", {}),
        )
        self.runs[run.run_id] = run
        self.sel.register(our_sync, selectors.EVENT_READ, ("sync", run))
        self.sel.register(run.pidfd, selectors.EVENT_READ, ("exit", run))
        send_msg(self.sock, {"op": "spawned", "run_id": run.run_id, "pid": pid})

    def _on_sync(self, run: _Run) -> None:
        try:
            data = run.sync.recv(16)
        except OSError:
            data = b""
        if not data:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(run.sync)
            return
        if data == USERNS_READY:
            try:
                write_id_maps(run.pid, run.inside, run.host)
                run.sync.send(MAPS_WRITTEN)
            except OSError as e:
                print(f"sandbox fork server: id maps for {run.run_id}: {e}", file=sys.stderr)
                run.sync.send(MAPS_FAILED)

    def _on_exit(self, run: _Run) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(run.pidfd)
        _, status = os.waitpid(run.pid, 0)
        run.exited = True
        send_msg(self.sock, {"op": "exited", "run_id": run.run_id, "status": status})

    def _forget(self, run: _Run) -> None:
        for obj in (run.sync, run.pidfd):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(obj)
        run.sync.close()
        os.close(run.pidfd)
        if not run.exited:
            os.kill(run.pid, signal.SIGKILL)
            os.waitpid(run.pid, 0)

    def _shutdown(self) -> None:
        """The client is gone: kill every run, then remove what each registered."""
        for run in self.runs.values():
            if not run.exited:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run.pid, signal.SIGKILL)
        for run in list(self.runs.values()):
            self._forget(run)
            remove_cgroup_dirs(run.cleanup.get("cgroup_dirs", []))
            for path in run.cleanup.get("files", []):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.runs.clear()


def main(argv: list[str] | None = None) -> None:
    """``python -I -m sandbox.launcher.server --fd N``: serve the socket at fd N."""
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[args.index("--fd") + 1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client decides when runs end
    sock = socket.socket(fileno=fd)
    ForkServer(sock).serve()


if __name__ == "__main__":
    main()

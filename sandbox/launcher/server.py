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

import contextlib
import os
import selectors
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from sandbox import codec
from sandbox.caps.names import last_cap
from sandbox.cgroups.leaf import remove_dirs
from sandbox.host import kernel_version
from sandbox.launcher.protocol import MAPS_FAILED, MAPS_WRITTEN, USERNS_READY, recv_msg, send_msg
from sandbox.launcher.steps import Ctx, LaunchFds, outer_main
from sandbox.ns.user import write_id_maps
from sandbox.plan import LaunchPlan
from sandbox.syscalls.linux import LinuxSyscalls


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


class ForkServer:
    """Serve one client on ``sock`` until it closes (see module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sel = selectors.DefaultSelector()
        self.runs: dict[str, _Run] = {}
        # Run ids with resources but no process yet (a pooled leaf and its lock):
        # their cleanup lists, until a spawn of that id or a release ends them.
        self.holds: dict[str, dict[str, Any]] = {}
        self.sc = LinuxSyscalls()
        self.last_cap = last_cap()
        # overlayfs takes detached layers from 6.15 on (sandbox/fs/mounts.py)
        self.detached_layers = kernel_version() >= (6, 15)
        self.parent = os.getpid()

    def serve(self) -> None:
        """Event loop: requests, id-map syncs and child exits."""
        self.sel.register(self.sock, selectors.EVENT_READ, ("ctl", None))
        while True:
            for key, _ in self.sel.select():
                kind, run = key.data
                if kind == "ctl":
                    try:
                        msg, fds = recv_msg(self.sock)
                    except ConnectionResetError:
                        # A client SIGKILLed with a reply unread resets the socket:
                        # gone all the same, and the watchdog's cleanup is owed.
                        msg, fds = None, []
                    if msg is None:
                        self._shutdown()
                        return
                    self._handle(msg, fds)
                elif not isinstance(run, _Run) or self.runs.get(run.run_id) is not run:
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
            self.holds.pop(msg["run_id"], None)
            run = self.runs.pop(msg["run_id"], None)
            if run:
                self._forget(run)
        elif op == "hold":
            rid = msg.get("run_id")
            if isinstance(rid, str) and rid and rid not in self.runs and rid not in self.holds:
                self.holds[rid] = dict(msg.get("cleanup", {}))
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
            gate=byname.get("gate", -1),
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
                    plan=plan,
                    fds=lfds,
                    sc=self.sc,
                    parent_pid=self.parent,
                    last_cap=self.last_cap,
                    detached_layers=self.detached_layers,
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
        self.holds.pop(run.run_id, None)  # the run's own cleanup list replaces the hold's
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
        cleanups = []
        for run in list(self.runs.values()):
            self._forget(run)
            cleanups.append(run.cleanup)
        for cleanup in [*cleanups, *self.holds.values()]:
            remove_dirs(cleanup.get("cgroup_dirs", []))
            for path in cleanup.get("staged_dirs", []):  # staged files: before the lock
                shutil.rmtree(path, ignore_errors=True)
            for path in cleanup.get("files", []):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.runs.clear()
        self.holds.clear()


def main(argv: list[str] | None = None) -> None:
    """``python -I -m sandbox.launcher.server --fd N``: serve the socket at fd N."""
    args = sys.argv[1:] if argv is None else argv
    fd = int(args[args.index("--fd") + 1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the client decides when runs end
    sock = socket.socket(fileno=fd)
    ForkServer(sock).serve()


if __name__ == "__main__":
    main()

"""``create``: a bundle through the pipeline, held by one supervisor per container.

Process model (after gVisor's runsc sandbox process): ``create`` parses the
bundle, compiles and verifies in its own process (every error is its exit
status and one line), then forks the container's **supervisor**, which
acquires the resources, launches the payload up to the start gate
(``launcher.steps.step_wait_gate``: everything set up, execve pending) and
reports back. ``create`` writes the supervisor's pid to ``--pid-file`` and
exits; the supervisor, reparented to the engine's subreaper (conmon, the
containerd shim), holds the seccomp listener, the cgroup leaf and the
record for the container's whole life and exits with the payload's wait
status (re-raising a fatal signal on itself), which the engine takes as the
container's.

Other commands reach the supervisor through ``<root>/<id>/ctl.sock``
(``oci.ctl``): start (open the gate), kill, pause/resume (the leaf's
freezer), ps. If the supervisor dies, its fork server's watchdog kills the
run and removes its leaf; ``delete --force`` removes what is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.oci import ctl
from sandbox.oci.bundle import Bundle, Hook
from sandbox.oci.state import Container, private_dir, start_time

READY_TIMEOUT = 60.0
# Run records kept under <root>/records (by container, newest first; the
# supervisor that writes one prunes the oldest beyond this): $SANDBOX_RUNTIME_RECORDS.
MAX_RECORDS = 1000
RECORD_SUFFIXES = (".exec.jsonl", ".error", ".json")  # the longest first
START_TIMEOUT = 10.0
HOOK_TIMEOUT = 30


@dataclass
class Options:
    """``create``'s command line."""

    root: Path
    id: str
    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    notes: list[str] = field(default_factory=list)


class CreateError(Exception):
    """create failed: one line for the engine."""


def create(opts: Options) -> int:
    """Compile and verify the bundle, fork the supervisor, wait for the gate (exit status).

    Raises:
        CreateError: anything that stops the container from being created.
    """
    from sandbox.compile import Artifacts, compile_run
    from sandbox.errors import ProgramNotFound, SandboxError
    from sandbox.host import probe
    from sandbox.oci import bundle as bundle_mod
    from sandbox.oci.convert import adjust, convert
    from sandbox.verify.cache import verify_run

    c = Container(opts.root, opts.id)
    max_records()  # a bad $SANDBOX_RUNTIME_RECORDS refuses here, not after the run
    private_dir(opts.root)
    if c.dir.exists():
        raise CreateError(f"container {opts.id!r} already exists")
    try:
        bundle = bundle_mod.load(opts.bundle)
        host = probe()
        conv = convert(bundle)
        compiled = adjust(
            compile_run(conv.profile, host, conv.request, Artifacts(host)), bundle, host
        )
        report = verify_run(compiled, host)
    except ProgramNotFound as e:  # engines map runc's wording to exit status 127
        from sandbox.oci.join import NOT_FOUND

        raise CreateError(f"{e}: {NOT_FOUND}") from None
    except SandboxError as e:
        raise CreateError(str(e)) from None
    if bundle.process.terminal and not opts.console_socket:
        raise CreateError("process.terminal is true but no --console-socket was given")
    if opts.console_socket and not bundle.process.terminal:
        raise CreateError("--console-socket was given but process.terminal is false")
    if not opts.console_socket and any(os.isatty(n) for n in range(3)):
        # Issue 13's terminal rule: the payload never holds the caller's terminal (its
        # ioctls would outlive the container). Engines pass pipes or a console socket.
        raise CreateError(
            "the container's stdio would be the caller's terminal: give it a terminal of its "
            "own (process.terminal with --console-socket, e.g. podman -t) or redirect stdio"
        )
    opts.notes = [*conv.notes]
    c.dir.mkdir(mode=0o700)
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # the container's supervisor
        code = 1
        try:
            os.close(r)
            code = Supervisor(opts, c, bundle, host, compiled, report.hash, w).main()
        except BaseException as e:  # never return into the create command's stack
            known = isinstance(e, CreateError | SandboxError)
            with contextlib.suppress(OSError):
                os.write(w, f"err {e if known else f'{type(e).__name__}: {e}'}".encode())
            _log_failure(opts.root, opts.id, e)
        finally:
            os._exit(code)
    os.close(w)
    reply = b""
    while chunk := os.read(r, 65536):
        reply += chunk
    os.close(r)
    if not reply.startswith(b"ok"):
        os.waitpid(pid, 0)
        _remove_dir(c)
        raise CreateError(reply.decode(errors="replace").removeprefix("err ") or "supervisor died")
    if opts.pid_file:
        _write_pid_file(opts.pid_file, pid)
    return 0


def _log_failure(root: Path, cid: str, e: BaseException) -> None:
    """A supervisor that fails after create returned leaves one line in the records."""
    import traceback

    with contextlib.suppress(OSError):
        d = private_dir(root / "records")
        with open(d / f"{cid}.error", "a") as f:
            f.write("".join(traceback.format_exception(e)))
        prune_records(str(d), max_records())


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _remove_dir(c: Container) -> None:
    for p in c.dir.glob("*"):
        with contextlib.suppress(OSError):
            p.unlink()
    with contextlib.suppress(OSError):
        c.dir.rmdir()


class Supervisor:
    """The container's supervisor process (see module docstring)."""

    def __init__(
        self,
        opts: Options,
        c: Container,
        bundle: Bundle,
        host: Any,
        compiled: Any,
        verification: str,
        report_fd: int,
    ) -> None:
        self.opts, self.c, self.bundle, self.host = opts, c, bundle, host
        self.compiled, self.verification, self.report_fd = compiled, verification, report_fd
        self.gate: socket.socket | None = None
        self.launched: Any = None
        self.res: Any = None
        self.control: Any = None
        self.started = False
        self.lock = threading.Lock()
        self.pending_fds: list[int] = []  # fds sent with the reply being made
        self.handling = threading.Lock()  # held while a control request is answered

    # ----------------------------------------------------------- setup ----
    def main(self) -> int:
        """Set up to the gate, report, supervise; returns only on setup failure."""
        from sandbox.errors import SandboxError
        from sandbox.runner.acquire import Acquirer
        from sandbox.runner.control import RunControl
        from sandbox.runner.launch import Stdio, launch, take_console
        from sandbox.runner.release import release

        os.setsid()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # re-raised signals dump nothing
        stdio = self._stdio()
        acquirer = Acquirer(self.host)
        client = _launcher_client()
        self.control = RunControl()
        try:
            self.res = acquirer.acquire(self.compiled)
        except SandboxError as e:
            client.close()
            raise CreateError(str(e)) from None
        try:  # the leaf (at the engine's cgroupsPath) is on record for delete --force at once
            self._write_state("creating")
        except BaseException:
            release(self.res)
            client.close()
            raise
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.gate = ours
        try:
            self.launched = launch(
                self.compiled,
                self.res,
                Stdio(*stdio),
                client,
                control=self.control,
                gate=theirs.detach(),
            )
            for fd in set(stdio):
                os.close(fd)
            self._await_gate()
            if self.opts.console_socket:
                # The payload opened its console in the container's own devpts before
                # its gate (launcher.steps.step_console); its init passed us the master.
                master = take_console(self.launched)
                try:
                    ctl.send_console(self.opts.console_socket, master, _pty_name(master))
                finally:
                    os.close(master)
            self._oom_score_adj()
            server = self._serve()
            self._write_state("created")
            self._hooks("prestart")
            self._hooks("createRuntime")
        except BaseException:
            release(self.res)
            client.close()
            raise
        os.write(self.report_fd, b"ok")
        os.close(self.report_fd)
        return self._supervise(server, client, release)

    def _stdio(self) -> tuple[int, int, int]:
        """The payload's stdin/stdout/stderr as the launcher gets them (with a console:
        /dev/null, which the payload replaces with its pty); our own 0-2 become
        /dev/null so the fork server holds none of the engine's pipes."""
        if self.opts.console_socket:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            fds = (null, os.dup(null), os.dup(null))
        else:
            fds = (os.dup(0), os.dup(1), os.dup(2))
        null = os.open(os.devnull, os.O_RDWR)
        for n in range(3):
            os.dup2(null, n)
        os.close(null)
        return fds

    def _await_gate(self) -> None:
        """Wait until the payload reaches the gate, or report its launcher's failure."""
        from sandbox.launcher.protocol import GATE_READY, decode_failure

        assert self.gate is not None
        watch = self.launched.watch
        end = time.monotonic() + READY_TIMEOUT
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise CreateError("the container's setup did not finish within 60 s")
            ready, _, _ = select.select([self.gate, watch.err_r], [], [], left)
            if self.gate in ready:
                if self.gate.recv(16) == GATE_READY:
                    return
                raise CreateError("the container's launcher ended during setup")
            if watch.err_r in ready:
                data = os.read(watch.err_r, 4096)
                if data:
                    f = decode_failure(data)
                    raise CreateError(f"{f.step}: {f.message}")
                raise CreateError("the payload started before its gate opened")

    def _oom_score_adj(self) -> None:
        adj = self.bundle.process.oom_score_adj
        pid = self.payload_pid()
        if adj is None:
            return
        if not pid:
            raise CreateError(f"process.oomScoreAdj {adj}: the container's process is gone")
        try:
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write(str(adj))
        except OSError as e:
            raise CreateError(f"process.oomScoreAdj {adj}: {e.strerror or e}") from None

    def payload_pid(self) -> int | None:
        """Host pid of the payload (the child of the container's init)."""
        from sandbox.runner.launch import _payload_pid

        return _payload_pid(self.launched.outer_pid)

    def _write_state(self, status: str, **extra: Any) -> None:
        b = self.bundle
        st = {
            "ociVersion": "1.0.2",
            "id": self.c.id,
            "status": status,
            "pid": os.getpid(),
            "supervisor_start": start_time(os.getpid()),
            "bundle": b.path,
            "rootfs": b.root,
            "annotations": dict(b.annotations),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime()),
            "run_id": self.res.plan.run_id,
            "cgroup_dirs": list(self.res.cgroup_dirs),
            "cgroup_parents": list(self.res.leaf.made_parents) if self.res.leaf else [],
            "lock_file": str(self.res.lock.path),
            "poststop": [_hook_dict(h) for h in b.hooks.get("poststop", ())],
            **extra,
        }
        with self.c.locked():
            self.c.write(st)

    def _hooks(self, kind: str) -> None:
        state = json.dumps(
            {
                "ociVersion": "1.0.2",
                "id": self.c.id,
                "status": "created" if not self.started else "running",
                "pid": os.getpid(),
                "bundle": self.bundle.path,
                "annotations": dict(self.bundle.annotations),
            }
        )
        for h in self.bundle.hooks.get(kind, ()):
            run_hook(h, state, f"{kind} hook {h.path}")

    # ------------------------------------------------------ supervise ----
    def _supervise(self, server: socket.socket, client: Any, release: Any) -> int:
        from sandbox.runner.supervise import supervise

        for sig in (
            signal.SIGTERM,
            signal.SIGINT,
            signal.SIGHUP,
            signal.SIGQUIT,
            signal.SIGUSR1,
            signal.SIGUSR2,
        ):
            signal.signal(sig, self._forward)
        status: int | None = None
        record: dict[str, Any]
        try:
            result = supervise(self.launched, self.compiled, self.res, self.control)
            record = result.record() | {"verification": self.verification}
            st = self.launched.watch.status
            status = st.status if st is not None else None
        except Exception as e:
            record = {"verdict": "SPAWN_ERROR", "message": f"{type(e).__name__}: {e}"}
        finally:
            release(self.res)
            client.close()
            with self.handling:  # a request in flight (start of a short-lived payload) is answered
                server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.c.ctl_path)
        record |= {"container": self.c.id, "bundle": self.bundle.path, "notes": self.opts.notes}
        self._write_record(record)
        # What the release removed is no longer ours to name: a later container may
        # be given the same linux.cgroupsPath, and `delete` of this one must never
        # kill it (attack2 #2). What is still there (a failed release) stays ours.
        left = [d for d in self.res.cgroup_dirs if os.path.isdir(d)]
        with contextlib.suppress(OSError):
            self.c.update(
                status="stopped",
                exit_status=status,
                record=record.get("verdict"),
                cgroup_dirs=left,
                cgroup_parents=list(self.res.leaf.made_parents) if left and self.res.leaf else [],
            )
        return _exit_like(status)

    def _forward(self, signum: int, _frame: object) -> None:
        pid = self.payload_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _write_record(self, record: dict[str, Any]) -> None:
        d = private_dir(self.opts.root / "records")
        tmp = d / f".{self.c.id}.tmp"
        tmp.write_text(json.dumps(record, indent=1, default=str))
        os.chmod(tmp, 0o600)
        os.rename(tmp, d / f"{self.c.id}.json")
        prune_records(str(d), max_records())

    # ---------------------------------------------------------- control ----
    def _serve(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        addr, d = ctl.unix_addr(self.c.ctl_path)
        try:
            sock.bind(addr)
        finally:
            os.close(d)
        os.chmod(self.c.ctl_path, 0o600)
        sock.listen(8)
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()
        return sock

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn, self.handling:  # the supervisor ends only once this reply is sent
                try:
                    msg, fds = ctl.recv(conn)
                    if msg is None:
                        continue
                    try:
                        reply = self._handle(msg, fds)
                    finally:
                        for fd in fds:
                            os.close(fd)
                except Exception as e:
                    reply = {"error": f"{e}"}
                out, self.pending_fds = self.pending_fds, []
                try:
                    with contextlib.suppress(OSError):
                        ctl.send(conn, reply, out)
                finally:
                    for fd in out:
                        os.close(fd)

    def _handle(self, msg: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        op = msg.get("op")
        if op == "start":
            return self._start()
        if op == "kill":
            return self._kill(int(msg["signal"]), bool(msg.get("all")))
        if op == "pause":
            self.control.pause()
            self.c.update(status="paused")
            return {"ok": True}
        if op == "resume":
            self.control.resume()
            self.c.update(status="running")
            return {"ok": True}
        if op == "ps":
            return {"pids": self._pids()}
        if op == "join":
            return self._join(msg)
        return {"error": f"unknown request {op!r}"}

    def _join(self, msg: dict[str, Any]) -> dict[str, Any]:
        """The plan and fds for a process joining this container (``exec``)."""
        from sandbox.oci.join import Running, join_plan

        if not self.started or self.launched.watch.status is not None:
            return {"error": "the container is not running"}
        run = Running(
            self.bundle.process,
            self.res.plan,
            self.res.leaf,
            self.launched.outer_pid,
            self.compiled.supervision.deny_errno,
        )
        reply, self.pending_fds = join_plan(run, msg.get("process"))
        return reply

    def _start(self) -> dict[str, Any]:
        from sandbox.launcher.protocol import GATE_OPEN

        with self.lock:
            if self.started:
                return {"error": "the container has already been started"}
            self.started = True
        assert self.gate is not None
        self.gate.send(GATE_OPEN)
        watch = self.launched.watch
        end = time.monotonic() + START_TIMEOUT
        while watch.exec_at is None and not watch.failure and watch.status is None:
            if time.monotonic() > end:
                return {"error": "the payload did not start within 10 s"}
            time.sleep(0.0005)
        if watch.failure:
            from sandbox.launcher.protocol import decode_failure

            f = decode_failure(watch.failure)
            return {"error": f"{f.step}: {f.message}"}
        self.c.update(status="running")
        self._hooks("poststart")
        return {"ok": True}

    def _kill(self, signum: int, all_tasks: bool) -> dict[str, Any]:
        pids = self._pids() if all_tasks else []
        pid = self.payload_pid()
        if pid and pid not in pids:
            pids.append(pid)
        if not pids:
            return {"error": "the container is not running"}
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signum)
        if signum == signal.SIGKILL and self.res.leaf is not None:
            with contextlib.suppress(Exception):
                self.res.leaf.thaw()  # a frozen task would never see the kill
        return {"ok": True}

    def _pids(self) -> list[int]:
        leaf = self.res.leaf
        if leaf is None:
            pid = self.payload_pid()
            return [pid] if pid else []
        for d in leaf.dirs:
            try:
                with open(os.path.join(d.path, "cgroup.procs")) as f:
                    return [int(x) for x in f.read().split()]
            except OSError:
                continue
        return []


def max_records() -> int:
    """How many containers' records to keep: ``$SANDBOX_RUNTIME_RECORDS`` or 1000.

    Raises:
        CreateError: the variable is not a positive integer.
    """
    raw = os.environ.get("SANDBOX_RUNTIME_RECORDS", "")
    if not raw:
        return MAX_RECORDS
    if not raw.isdigit() or int(raw) < 1:
        raise CreateError(f"SANDBOX_RUNTIME_RECORDS={raw!r}: must be a positive integer")
    return int(raw)


def prune_records(directory: str, keep: int) -> None:
    """Remove the records of all but the ``keep`` containers whose records changed last.

    A container's records are ``<id>.json`` (its run record), ``<id>.error``
    (its supervisor's failure) and ``<id>.exec.jsonl`` (its execs' violations);
    they go together. Never raises: a record that cannot be removed stays.
    """
    newest: dict[str, int] = {}
    files: dict[str, list[str]] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for e in entries:
        suffix = next((x for x in RECORD_SUFFIXES if e.name.endswith(x)), "")
        cid = e.name.removesuffix(suffix) if suffix and not e.name.startswith(".") else ""
        if not cid or not e.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):
            mtime = e.stat(follow_symlinks=False).st_mtime_ns
            newest[cid] = max(newest.get(cid, 0), mtime)
            files.setdefault(cid, []).append(e.path)
    if len(newest) <= keep:
        return
    for cid in sorted(newest, key=lambda k: newest[k])[: len(newest) - keep]:
        for path in files[cid]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _launcher_client() -> Any:
    """The container's launcher: the native server (default), or the Python fork server
    (``SANDBOX_LAUNCHER=python``), forked from this single-threaded supervisor.

    The native server is this container's alone (it exits with the supervisor and
    is the watchdog of the run): it prepares no network namespace ahead, since
    it serves exactly one run, at once.

    Raises:
        PolicyError: ``$SANDBOX_LAUNCHER`` names no launcher.
    """
    from sandbox.runner.launchers import launcher_name

    if launcher_name() == "native":
        from sandbox.launcher.native import NativeLauncherClient

        return NativeLauncherClient(netns_pool=0)
    from sandbox.runner.client import ForkServerClient

    return ForkServerClient(mode="fork")


def _pty_name(master: int) -> str:
    """The slave's path inside the container (TIOCGPTN on its master)."""
    import fcntl
    import struct

    tiocgptn = 0x80045430  # _IOR('T', 0x30, unsigned int)
    (n,) = struct.unpack("I", fcntl.ioctl(master, tiocgptn, b"\0" * 4))
    return f"/dev/pts/{n}"


def _hook_dict(h: Hook) -> dict[str, Any]:
    return {"path": h.path, "args": list(h.args), "env": list(h.env), "timeout": h.timeout}


def run_hook(h: Hook | dict[str, Any], state: str, what: str) -> None:
    """Run one runtime-namespace hook with the state on its stdin (runtime-spec config.md).

    Raises:
        CreateError: the hook failed or timed out.
    """
    import subprocess

    if isinstance(h, dict):
        h = Hook(h["path"], tuple(h["args"]), tuple(h["env"]), h["timeout"])
    env = dict(e.split("=", 1) for e in h.env if "=" in e)
    try:
        subprocess.run(
            list(h.args) or [h.path],
            executable=h.path,
            input=state.encode(),
            env=env,
            timeout=h.timeout or HOOK_TIMEOUT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
    except subprocess.TimeoutExpired:
        raise CreateError(f"{what} timed out") from None
    except (OSError, subprocess.CalledProcessError) as e:
        raise CreateError(f"{what} failed: {e}") from None


def _exit_like(status: int | None) -> int:
    """Exit with the payload's wait status: a signal is re-raised on ourselves."""
    if status is None:
        return 255
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stdout.flush()
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those cannot be caught anyway
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        os.kill(os.getpid(), sig)
        time.sleep(0.1)
        return 128 + sig
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 255

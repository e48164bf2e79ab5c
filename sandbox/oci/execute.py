"""``exec``: another process in a running container, under every layer the container has.

The container's supervisor makes the join plan (``oci.join``: its own
verified plan with the process fields replaced, never more than the
container) and hands over the container init's namespaces and leaf join fds.
This command then forks the exec's own supervisor, which, like the
container's, holds the process's seccomp listener (denials answered or
recorded, never inferred from an exit status) and exits with the process's
wait status; that pid is what ``--pid-file`` names (conmon waits for it).
The joining process itself runs ``launcher.steps.join_main``: JOIN_STEPS,
then the same PAYLOAD_STEPS as a container's first process.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sandbox.errors import SandboxError
from sandbox.oci import ctl
from sandbox.oci.state import Container, StateError


def _process(c: Container, opts: dict[str, Any], argv: list[str]) -> dict[str, Any]:
    if opts.get("--process"):
        try:
            with open(opts["--process"], "rb") as f:
                given = json.loads(f.read(1 << 20))
        except (OSError, ValueError) as e:
            raise StateError(f"exec: --process {opts['--process']}: {e}") from None
        if not isinstance(given, dict):
            raise StateError("exec: --process must hold a JSON object")
        return given
    if not argv:
        raise StateError("exec: no command given (use --process FILE or COMMAND ARGS...)")
    proc: dict[str, Any] = {"args": argv, "terminal": bool(opts.get("--tty"))}
    if opts.get("--cwd"):
        proc["cwd"] = opts["--cwd"]
    if opts.get("--user"):
        uid, _, gid = str(opts["--user"]).partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise StateError(f"exec: --user {opts['--user']!r}: use UID[:GID]")
        proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if opts.get("--env"):
        proc["env"] = list(opts["--env"])
    return proc


def execute(c: Container, opts: dict[str, Any], argv: list[str]) -> int:
    """Run a process in the container (see module docstring); returns its exit status.

    Raises:
        StateError: the container is not running, or the process was refused.
    """
    if c.read()["status"] != "running":
        raise StateError(f"cannot exec in container {c.id!r}: it is not running")
    proc = _process(c, opts, argv)
    if proc.get("terminal") and not opts.get("--console-socket"):
        raise StateError("exec: a terminal needs --console-socket")
    if not opts.get("--console-socket") and any(os.isatty(n) for n in range(3)):
        raise StateError(
            "exec: the process's stdio would be the caller's terminal: use --tty with "
            "--console-socket (e.g. podman exec -t) or redirect stdio"
        )
    # Asked here, before the exec's supervisor is forked: a refusal (a program the
    # container lacks: 127, as runc) is this command's exit status and message.
    sent, got = _ask_join(c, proc)
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 125
        try:
            os.close(r)
            code = _exec_supervisor(c, sent, got, opts, w)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.write(w, f"err {e}".encode())
        finally:
            os._exit(code)
    os.close(w)
    for fd in got:
        os.close(fd)
    reply = b""
    while chunk := os.read(r, 65536):
        reply += chunk
    os.close(r)
    if not reply.startswith(b"ok"):
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        message = reply.decode(errors="replace").removeprefix("err ").strip()
        raise StateError(message or f"exec failed ({code})")
    if opts.get("--pid-file"):
        tmp = f"{opts['--pid-file']}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(str(pid))
        os.rename(tmp, opts["--pid-file"])
    if opts.get("--detach"):
        return 0
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _stdio(console: str | None, own_pts: bool) -> tuple[int, int, int, int]:
    if own_pts:  # the payload's pty replaces these
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return null, os.dup(null), os.dup(null), -1
    if console:
        master, slave = os.openpty()
        os.set_inheritable(master, False)
        return slave, os.dup(slave), os.dup(slave), master  # three fds: the join closes each
    fds = tuple(os.dup(n) for n in range(3))
    null = os.open(os.devnull, os.O_RDWR)
    for n in range(3):
        os.dup2(null, n)
    os.close(null)
    return fds[0], fds[1], fds[2], -1


def _exec_supervisor(
    c: Container, sent: dict[str, Any], got: list[int], opts: dict[str, Any], report: int
) -> int:
    """The exec's supervisor (a child of the exec command, single-threaded until the fork),
    with the container supervisor's join plan and fds (``sent``, ``got``)."""
    from sandbox import codec
    from sandbox.caps.names import last_cap
    from sandbox.launcher.protocol import decode_failure
    from sandbox.launcher.steps import Ctx, LaunchFds, join_main
    from sandbox.oci.shim import _exit_like, _pty_name
    from sandbox.plan import LaunchPlan
    from sandbox.runner.watch import Watch
    from sandbox.syscalls.linux import LinuxSyscalls
    from sandbox.syscalls.procfs import child_pids

    os.setsid()
    plan = codec.loads(LaunchPlan, sent["plan"])
    console = opts.get("--console-socket")
    # A container with its own devpts: the exec's terminal is a pty of it, opened
    # by the payload (launcher.steps.step_console) as the container's first process's.
    own_pts = bool(console) and plan.mounts.devpts is not None
    plan = replace(plan, console=own_pts)
    names: list[str] = sent["fds"]
    ns = tuple(
        (fd, int(n.split(":")[1])) for n, fd in zip(names, got, strict=True) if n != "cgroup"
    )
    cg = tuple(fd for n, fd in zip(names, got, strict=True) if n == "cgroup")
    stdin, stdout, stderr, master = _stdio(console, own_pts)
    pty_name = os.ttyname(stdin) if master >= 0 else ""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    st_r, st_w = os.pipe2(os.O_CLOEXEC)
    notify_ours = notify_theirs = -1
    listener = plan.seccomp is not None and plan.seccomp.notify
    if listener or own_pts:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        notify_ours, notify_theirs = a.detach(), b.detach()
    fds = LaunchFds(
        stdin,
        stdout,
        stderr,
        err_w,
        st_w,
        sync=-1,
        cgroup_join=cg,
        notify=notify_theirs,
        join_ns=ns,
    )
    parent = os.getpid()
    lc = last_cap()
    pid = os.fork()
    if pid == 0:
        try:
            # The exec command reads its report up to EOF: a copy here (and in the
            # payload) would hold `exec --detach` until the process ended.
            os.close(report)
            join_main(Ctx(plan=plan, fds=fds, sc=LinuxSyscalls(), parent_pid=parent, last_cap=lc))
        finally:
            os._exit(125)
    for fd in {stdin, stdout, stderr, err_w, st_w, notify_theirs, *cg, *(f for f, _ in ns)}:
        if fd >= 0:
            os.close(fd)

    def payload() -> int | None:
        kids = child_pids(pid)
        return kids[0] if kids else None

    def kill(_reason: object) -> None:
        p = payload()
        if p:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, 9)

    watch = Watch(
        err_r=err_r,
        status_r=st_r,
        kill=kill,
        deny_errno=sent.get("deny_errno"),
    )
    if own_pts:
        from sandbox.runner.launch import recv_console

        try:
            master = recv_console(notify_ours)
            pty_name = _pty_name(master)
        except SandboxError:
            master = -1  # the launcher's failure, on the errpipe, is what the exec reports
        finally:
            if not listener:
                os.close(notify_ours)
    if listener:
        watch.listener = _take_listener(notify_ours, pid, kill)
        os.close(notify_ours)
    if master >= 0:
        ctl.send_console(opts["--console-socket"], master, pty_name)
        os.close(master)
    os.write(report, b"ok")
    os.close(report)
    try:
        watch.run()
    finally:
        watch.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    if watch.failure:
        f = decode_failure(watch.failure)
        with contextlib.suppress(OSError):
            os.write(2, f"sandbox-runtime: exec: {f.step}: {f.message}\n".encode())
        return 127 if f.step == "exec" else 125
    _record(c, watch)
    st = watch.status
    return _exit_like(st.status if st is not None else None)


def _take_listener(chan: int, joiner: int, kill: Callable[[object], None]) -> int:
    """The exec's seccomp listener, copied from its payload by us (-1: none came).

    The payload is never dumpable (the container's processes share its uid), so
    the joining process cannot copy it: it sends the fd's number, we (root of
    the host) copy it with pidfd_getfd from the joiner's only child, then say
    so. No listener means no run: the payload is killed (fail closed); a
    failure of its own before the filter is on the errpipe and is what the
    exec reports.
    """
    from sandbox.launcher.protocol import LISTENER_NUMBER_TAG, NOTIFY_TAKEN
    from sandbox.runner.watch import SETUP_DEADLINE
    from sandbox.syscalls.linux import LinuxSyscalls
    from sandbox.syscalls.procfs import child_pids

    ready, _, _ = select.select([chan], [], [], SETUP_DEADLINE)
    msg = os.read(chan, 64) if ready else b""
    num = msg.removeprefix(LISTENER_NUMBER_TAG)
    kids = child_pids(joiner)
    if not msg.startswith(LISTENER_NUMBER_TAG) or not num.isdigit() or len(kids) != 1:
        kill(None)
        return -1
    try:
        fd = LinuxSyscalls().pidfd_getfd(kids[0], int(num))
    except OSError:
        kill(None)
        return -1
    os.write(chan, NOTIFY_TAKEN)
    return fd


def _ask_join(c: Container, proc: dict[str, Any]) -> tuple[dict[str, Any], list[int]]:
    """The container supervisor's join plan and fds (namespaces, leaf)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as s:
        s.settimeout(ctl.TIMEOUT)
        addr, d = ctl.unix_addr(c.ctl_path)
        try:
            s.connect(addr)
        except OSError:
            raise StateError(f"cannot exec in container {c.id!r}: it is not running") from None
        finally:
            os.close(d)
        ctl.send(s, {"op": "join", "process": proc})
        reply, fds = ctl.recv(s)
    if reply is None or "error" in reply:
        for fd in fds:
            os.close(fd)
        why = reply.get("error") if reply else "the container's supervisor hung up"
        code = reply.get("exit") if reply else None
        raise StateError(f"exec in {c.id}: {why}", code if isinstance(code, int) else 1)
    return reply, fds


def _record(c: Container, watch: Any) -> None:
    """The exec's violation and denials, beside the container's record."""
    from dataclasses import asdict

    if watch.violation is None and not watch.denied:
        return
    rec = {
        "container": c.id,
        "exec": True,
        "time": time.time(),
        "verdict": "SECURITY_VIOLATION" if watch.violation else "OK",
        "violation": asdict(watch.violation) if watch.violation else None,
        "denied": [asdict(d) for d in watch.denied],
    }
    d = c.root / "records"
    with contextlib.suppress(OSError):
        d.mkdir(mode=0o700, exist_ok=True)
        with open(d / f"{c.id}.exec.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        from sandbox.oci.shim import CreateError, max_records, prune_records

        with contextlib.suppress(CreateError):  # a bad count: create refuses it
            prune_records(str(d), max_records())

"""The launch stage: hand the final LaunchPlan and the run's fds to the launcher (supervisor side).

Makes the pipes the run talks through (errpipe, status, stdin/stdout/stderr,
the seccomp listener's channel), sends one spawn request to the launcher
(the fork server, through its client) and waits for its answer. Returns a
:class:`Launched` run: the :class:`~sandbox.runner.watch.Watch` that the
supervise stage drives, wired to kill the run through its cgroup leaf or,
without one, through the payload's pid or the launcher. Every fd and the
launcher's record of the run are released with the run's resources.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox.compile import CompiledRun
from sandbox.errors import PolicyError, SandboxInternalError
from sandbox.plan import LaunchPlan
from sandbox.runner.acquire import Resources
from sandbox.runner.control import RunControl
from sandbox.runner.result import Violation
from sandbox.runner.terminal import is_terminal, reopen
from sandbox.runner.verdict import KillReason
from sandbox.runner.watch import SETUP_DEADLINE, Out, Watch
from sandbox.seccomp.tables import arch_info
from sandbox.syscalls.notify import Notification
from sandbox.syscalls.procfs import child_pids

STDIO_INHERIT = -1
SPAWN_TIMEOUT = 30.0


class LauncherClient(Protocol):
    """What the supervisor needs of a launcher (the Python fork server or the native one)."""

    def spawn(
        self, plan: LaunchPlan, fds: Sequence[tuple[str, int]], cleanup: dict[str, Any]
    ) -> queue.Queue[dict[str, Any]]:
        """Send a spawn request; replies ({"op": "spawned"|"failed"|...}) arrive on the queue."""
        ...

    def send(self, op: str, run_id: str) -> None:
        """Fire-and-forget request about a run (``kill``, ``release``)."""
        ...

    def hold(self, run_id: str, cleanup: dict[str, Any]) -> None:
        """Register what to remove for a run id with no process yet (a pooled leaf),
        should the caller die; a spawn of that id or a release ends the hold."""
        ...

    def close(self) -> None:
        """Stop the launcher (it kills and cleans up any run in flight)."""
        ...


@dataclass(frozen=True, slots=True)
class Stdio:
    """The payload's standard streams as the caller asked for them.

    ``stdin``: bytes to feed, an fd (``STDIO_INHERIT``: the caller's own), or
    None for /dev/null. ``stdout``/``stderr``: an fd, or None to capture.
    ``own_terminal``: a terminal among them is the run's own (the pty the OCI
    runtime made for the container's console), not the caller's: handed over
    as it is, since relaying exists to keep the caller's terminal intact.
    """

    stdin: bytes | int | None = None
    stdout: int | None = None
    stderr: int | None = None
    own_terminal: bool = False


@dataclass
class Launched:
    """A run whose launcher has been spawned: the watch to drive, and its outer pid."""

    watch: Watch
    outer_pid: int
    # Our end of the handover channel from the container's init (the console's
    # master comes on it first; the seccomp listener after), or -1.
    channel: int = -1


def launch(
    compiled: CompiledRun,
    res: Resources,
    stdio: Stdio,
    client: LauncherClient,
    *,
    control: RunControl | None = None,
    on_notification: Callable[[Notification, int], Violation | None] | None = None,
    gate: int | None = None,
) -> Launched:
    """Spawn the run (see module docstring); fds and the launcher's record go on ``res.stack``.

    ``gate``: the payload's end of a start barrier (a SOCK_SEQPACKET socket,
    closed here once sent): the payload stops before execve until
    ``GATE_OPEN`` arrives on the other end (``launcher.steps.step_wait_gate``),
    and the setup deadline does not apply.

    Raises:
        PolicyError: stdin is a directory.
        SandboxInternalError: the launcher did not answer or refused the request.
    """
    plan, stack = res.plan, res.stack
    mine: list[int] = []  # our ends, closed at release
    theirs: list[tuple[str, int]] = []  # the child's ends, closed once it has them
    stack.callback(_close_all, mine)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    st_r, st_w = os.pipe2(os.O_CLOEXEC)
    mine += [err_r, st_r]
    outer: list[int] = []
    sup = compiled.supervision

    def payload_pid() -> int | None:
        return _payload_pid(outer[0] if outer else 0)

    def kill(_reason: KillReason) -> None:
        # The payload and what it started, not its init: init then reports the
        # payload's status as usual and kills what is left in its namespace.
        if res.leaf is not None:
            res.leaf.kill()
            return
        pid = payload_pid()
        if pid is None:
            client.send("kill", plan.run_id)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    leaf = res.leaf
    watch = Watch(
        err_r=err_r,
        status_r=st_r,
        kill=kill,
        # PDEATHSIG takes init and its namespace with the launcher's outer process.
        kill_launcher=lambda: client.send("kill", plan.run_id),
        cpu_usage=(lambda: leaf.cpu_usage_ns() / 1e9) if leaf is not None else None,
        wall_limit=sup.wall_time,
        cpu_limit=sup.cpu_time,
        output_limit=sup.output,
        deny_errno=sup.deny_errno,
        control=control,
        on_notification=on_notification,
        setup_deadline=None if gate is not None else SETUP_DEADLINE,
    )
    if compiled.seccomp is not None:
        abi = arch_info(compiled.seccomp.arch)
        watch.native_arch, watch.native_nr_bit = abi.audit_arch, abi.nr_bit
    stack.callback(watch.close)
    try:
        relay = "tty_relay" not in compiled.ablate and not stdio.own_terminal
        _stdio(stdio, sup.output, watch, mine, theirs, (plan.host_uid, plan.host_gid), relay)
        theirs += [("errpipe", err_w), ("status", st_w)]
        if gate is not None:
            theirs.append(("gate", gate))
        channel = -1
        if plan.console or (plan.seccomp is not None and plan.seccomp.notify):
            ours, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            channel = ours.detach()
            if plan.seccomp is not None and plan.seccomp.notify:
                watch.notify_fd = channel  # the watch closes it
            else:
                mine.append(channel)
            theirs.append(("notify", child.detach()))
        # What the launcher's watchdog removes if we are killed: the staged files
        # before the lock (the sweep keys on the lock), the lock last.
        cleanup = {
            "cgroup_dirs": res.cgroup_dirs,
            "staged_dirs": [res.staged_dir] if res.staged_dir else [],
            "files": [str(res.lock.path)],
        }
        joins = [(f"cgroup{i}", fd) for i, fd in enumerate(res.cgroup_join)]
        q = client.spawn(plan, [*theirs, *joins], cleanup)
    finally:
        for _, fd in theirs:
            os.close(fd)
    # After everything else (runner.release): until then the launcher's watchdog
    # still removes the run's leaf, staged files and lock should we be killed.
    res.after.append(lambda: client.send("release", plan.run_id))
    reply = _await(q, ("spawned", "failed", "server_died"))
    if reply["op"] != "spawned":
        raise SandboxInternalError(f"launcher: {reply.get('error', reply['op'])}")
    outer.append(int(reply["pid"]))
    return Launched(watch=watch, outer_pid=outer[0], channel=channel)


CONSOLE_TIMEOUT = 10.0


def take_console(launched: Launched, timeout: float = CONSOLE_TIMEOUT) -> int:
    """The master of the run's console pty (``plan.console``), from its init: the
    first message on the handover channel. Call once the payload has reached its
    gate (it sent the master before that); ours to close.

    Raises:
        SandboxInternalError: no console came (the launcher's failure, when there
            is one, is on the errpipe), or what came is not a pty master.
    """
    if launched.channel < 0:
        raise SandboxInternalError("console: the run has no handover channel")
    return recv_console(launched.channel, timeout)


def recv_console(channel: int, timeout: float = CONSOLE_TIMEOUT) -> int:
    """One console message on a handover channel: the pty master it carries (checked
    to be a ptmx of some devpts instance), non-inheritable, ours to close.

    Raises:
        SandboxInternalError: none came in time, the channel ended, or it is no master.
    """
    import select

    from sandbox.launcher.protocol import CONSOLE_TAG
    from sandbox.runner.watch import recv_listener

    ready, _, _ = select.select([channel], [], [], timeout)
    if not ready:
        raise SandboxInternalError(f"console: none came from the container within {timeout:g} s")
    tag, fds = recv_listener(channel)
    if tag != CONSOLE_TAG or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise SandboxInternalError("console: the container's init sent no pty master")
    st = os.fstat(fds[0])
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(5, 2):
        os.close(fds[0])
        raise SandboxInternalError("console: what came is not a pty master")
    os.set_inheritable(fds[0], False)
    return fds[0]


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _stdio(
    stdio: Stdio,
    limit: int | None,
    watch: Watch,
    mine: list[int],
    theirs: list[tuple[str, int]],
    owner: tuple[int, int],
    relay_terminal: bool = True,
) -> None:
    """Child ends of stdin/stdout/stderr into ``theirs``; our ends into ``watch``/``mine``.

    The pipes made here are the run's: their inodes are given to the run's host
    ids, so the payload can reopen its own stdio (``/dev/stdin``, ``freopen``,
    ``> /dev/stdout``); a root-owned 0600 pipe is an unmapped owner inside, and
    the reopen is EACCES (issue 15 item 1). Fds the caller passes are its own,
    except the caller's terminal: the payload gets a pipe the watch relays
    (``runner.terminal``); ``relay_terminal`` is False only through the test
    hook (``--test-ablate tty_relay``), which hands the terminal over as it is.
    """

    def pipe() -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        if owner[0] >= 0:
            for fd in (r, w):
                os.fchown(fd, *owner)
        return r, w

    if isinstance(stdio.stdin, bytes):
        r, w = pipe()
        os.set_blocking(w, False)
        watch.stdin_fd, watch.stdin_data = w, memoryview(stdio.stdin)
        theirs.append(("stdin", r))
    elif isinstance(stdio.stdin, int):
        fd = 0 if stdio.stdin == STDIO_INHERIT else stdio.stdin
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            # A directory fd would hand the payload a handle on the host's tree.
            raise PolicyError("stdin is a directory: give a file, a pipe or a terminal")
        if relay_terminal and is_terminal(fd):
            theirs.append(("stdin", _relay_input(fd, watch, mine, pipe)))
        else:
            theirs.append(("stdin", os.dup(fd)))
    else:
        theirs.append(("stdin", os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)))
    for n, name, want in ((1, "stdout", stdio.stdout), (2, "stderr", stdio.stderr)):
        target = None if want is None else (n if want == STDIO_INHERIT else want)
        if target is None or limit is not None or (relay_terminal and is_terminal(target)):
            # Captured, forwarded through us so the output limit can be counted, or
            # the caller's terminal, which the payload must never hold (through our
            # own dup: the caller may close its fd once the run started).
            r, w = pipe()
            mine.append(r)
            if target is not None:
                target = os.dup(target)
                mine.append(target)
            watch.outs[r] = Out(n, target)
            theirs.append((name, w))
        else:
            theirs.append((name, os.dup(target)))


def _relay_input(
    tty: int, watch: Watch, mine: list[int], pipe: Callable[[], tuple[int, int]]
) -> int:
    """The payload's stdin for the caller's terminal ``tty``: a pipe the watch fills."""
    reader = reopen(tty)
    if reader < 0:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    mine.append(reader)
    r, w = pipe()
    os.set_blocking(w, False)
    watch.tty_reader, watch.tty_writer = reader, w  # the watch closes w at the end of input
    return r


def _await(
    q: queue.Queue[dict[str, Any]], ops: tuple[str, ...], timeout: float = SPAWN_TIMEOUT
) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while True:
        try:
            msg = q.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty as e:
            raise SandboxInternalError(f"the launcher did not answer ({ops})") from e
        if msg["op"] in ops:
            return msg


def _payload_pid(outer: int) -> int | None:
    """Host pid of the payload: the child of the container's init, the outer's child."""
    for init in child_pids(outer):
        kids = child_pids(init)
        if kids:
            return kids[0]
    return None

"""Watching one run from the supervisor: streams, limits, violations (parent side).

A single ``selectors`` loop per run handles, until the container's init has
reported and the outputs are drained:

- the **errpipe** (the ready mark, then data if a launcher step failed; EOF
  after the mark alone: the payload's execve succeeded, which starts the wall
  clock; EOF without it: the launcher died before execve);
- the **status pipe** (the payload's wait status and rusage, then any
  collected files of /box);
- **stdin** fed from bytes, **stdout/stderr** captured or forwarded while the
  output limit is counted;
- the **notify channel**: the container's init passes us the payload's
  seccomp listener (SCM_RIGHTS; init holds a copy and lets the payload go
  on, so nothing here waits on us); then each denied syscall arrives as a
  notification: a violation kills the run, an errno denial is answered and
  listed; a call in a foreign ABI (i386, x32) is always a violation. This
  listener is the only source of a SECURITY_VIOLATION;
- timers: wall clock, and the leaf's CPU usage polled every POLL_INTERVAL.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.launcher.protocol import (
    CONSOLE_TAG,
    EXEC_READY,
    PayloadStatus,
    decode_files,
    encode_failure,
)
from sandbox.runner.control import RunControl
from sandbox.runner.result import Violation
from sandbox.runner.verdict import KillReason
from sandbox.seccomp.tables import ARCHES, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT
from sandbox.syscalls import fdpass, notify

POLL_INTERVAL = 0.005
KILL_GRACE = 2.0  # after killing the payload, how long its init may take to report
SETUP_DEADLINE = 60.0  # from spawn to the payload's execve: a launcher stuck in setup is killed
DRAIN_AFTER_EXIT = 2.0
# seccomp_data.arch -> ABI name; x32 shares x86_64's and is told by X32_SYSCALL_BIT.
_ARCH_NAMES = {a.audit_arch: name for name, a in ARCHES.items() if not a.nr_bit}


def syscall_name(nr: int, arch: int) -> str:
    """Name of syscall ``nr`` in ABI ``arch`` (x32 numbers carry bit 30)."""
    from sandbox.seccomp.tables import table

    abi = _ARCH_NAMES.get(arch, "x86_64")
    if abi == "x86_64" and nr & X32_SYSCALL_BIT:
        abi = "x32"
    try:
        return table(abi).name(nr) or f"syscall_{nr}"
    except (KeyError, ValueError):
        return f"syscall_{nr}"


def recv_listener(sock: int) -> tuple[bytes, list[int]]:
    """The message on the notify channel and the fds it carries (init sends one: the listener)."""
    s = socket.socket(fileno=sock)
    try:
        return fdpass.recv_fds(s, 16, 4)
    finally:
        s.detach()  # the channel stays the Watch's to close


def arch_name(arch: int, nr: int = 0) -> str:
    """The ABI's name as the record shows it."""
    name = _ARCH_NAMES.get(arch, f"0x{arch:x}")
    return "x32" if name == "x86_64" and nr & X32_SYSCALL_BIT else name


@dataclass
class Out:
    """One output pipe: captured into ``buf`` or forwarded to ``forward_to``, counted."""

    stream: int
    forward_to: int | None
    buf: bytearray = field(default_factory=bytearray)


@dataclass
class Watch:
    """State and handlers of one run's wait loop (see module docstring)."""

    err_r: int
    status_r: int
    kill: Callable[[KillReason], None]
    # Backstop when the init does not report after a kill: end the whole launcher.
    kill_launcher: Callable[[], None] = lambda: None
    cpu_usage: Callable[[], float] | None = None
    wall_limit: float | None = None
    cpu_limit: float | None = None
    output_limit: int | None = None
    deny_errno: int | None = None  # answer denials with this errno (listed), else a violation
    # seccomp_data.arch of the filter's own ABI (and the x32 bit it must not carry):
    # a notification for any other ABI is a violation whatever the handler says.
    native_arch: int = AUDIT_ARCH_X86_64
    native_nr_bit: int = 0
    outs: dict[int, Out] = field(default_factory=dict)
    stdin_fd: int = -1
    stdin_data: memoryview | None = None
    # The caller's terminal, relayed (runner.terminal): typed input is read from
    # tty_reader and written to tty_writer, the payload's stdin pipe, closed at the
    # end of input.
    tty_reader: int = -1
    tty_writer: int = -1
    _tty_pending: bytearray = field(default_factory=bytearray)
    _tty_ended: bool = False
    notify_fd: int = -1
    listener: int = -1
    _no_listener: bool = False  # the notify channel ended without one
    control: RunControl | None = None
    # From spawn to execve; None while a start gate holds the payload (an OCI
    # container waits for ``start`` as long as its engine likes).
    setup_deadline: float | None = SETUP_DEADLINE
    # When set, every notification goes here instead (``sandbox learn``): the handler
    # must answer it (notify.answer_continue / answer_errno) itself, or return a
    # Violation, which is recorded and stops the run like a denied syscall.
    on_notification: Callable[[notify.Notification, int], Violation | None] | None = None
    # results
    exec_at: float | None = None
    ended_at: float | None = None
    failure: bytes = b""
    status: PayloadStatus | None = None
    files: dict[str, bytes | int] = field(default_factory=dict)
    killed_for: KillReason | None = None
    violation: Violation | None = None
    denied: list[Violation] = field(default_factory=list)
    out_total: int = 0
    _status_buf: bytearray = field(default_factory=bytearray)
    _err_buf: bytearray = field(default_factory=bytearray)
    _started: float = field(default_factory=time.monotonic)
    _killed_at: float | None = None
    _status_done: bool = False

    def captured(self, stream: int) -> bytes | None:
        """Captured bytes of stream 1 or 2 (None when not captured)."""
        for o in self.outs.values():
            if o.stream == stream and o.forward_to is None:
                return bytes(o.buf)
        return None

    def close(self) -> None:
        """Close what the watch still holds."""
        for fd in (self.stdin_fd, self.listener, self.notify_fd, self.tty_writer):
            if fd >= 0:
                os.close(fd)
        self.stdin_fd = self.listener = self.notify_fd = self.tty_writer = -1

    # ------------------------------------------------------------ loop ----
    def run(self) -> None:
        """Loop until init has reported and the outputs are drained (or timed out)."""
        # poll(2), not epoll: a handful of fds, and no epoll_create/epoll_ctl/close
        # syscalls per run, each a trip for the GIL while other threads run.
        sel = selectors.PollSelector()
        sel.register(self.err_r, selectors.EVENT_READ, self._on_err)
        sel.register(self.status_r, selectors.EVENT_READ, self._on_status)
        for fd in self.outs:
            sel.register(fd, selectors.EVENT_READ, self._on_output)
        if self.stdin_fd >= 0:
            sel.register(self.stdin_fd, selectors.EVENT_WRITE, self._on_stdin)
        if self.tty_reader >= 0 and self.tty_writer >= 0:
            sel.register(self.tty_reader, selectors.EVENT_READ, self._on_tty_input)
        if self.notify_fd >= 0:
            sel.register(self.notify_fd, selectors.EVENT_READ, self._on_notify_channel)
        elif self.listener >= 0:  # taken before the watch (OCI exec)
            sel.register(self.listener, selectors.EVENT_READ, self._on_notification)
        if self.control is not None:
            sel.register(self.control.wake_r, selectors.EVENT_READ, self._on_cancel)
        drain_until: float | None = None
        try:
            while sel.get_map():
                for key, _ in sel.select(self._timeout(drain_until)):
                    key.data(sel, key.fd)
                if self._status_done:
                    if drain_until is None:
                        drain_until = time.monotonic() + DRAIN_AFTER_EXIT
                    # The outputs, and the errpipe's end: a report read before
                    # the status's EOF decides the run only once it is whole.
                    waiting = [
                        k
                        for k in sel.get_map().values()
                        if k.data in (self._on_output, self._on_err)
                    ]
                    if not waiting or time.monotonic() >= drain_until:
                        break
                elif self.exec_at is not None and self.killed_for is None:
                    self._check_limits()
                elif (
                    self._killed_at is not None and time.monotonic() - self._killed_at >= KILL_GRACE
                ):
                    self._killed_at = None
                    self.kill_launcher()
                elif (
                    self.exec_at is None
                    and not self.failure
                    and self.killed_for is None
                    and self.setup_deadline is not None
                    and time.monotonic() - self._started >= self.setup_deadline
                ):
                    self.failure = encode_failure(
                        "setup",
                        errno.ETIMEDOUT,
                        f"the launcher did not reach execve within {self.setup_deadline:.0f} s",
                    )
                    self._stop("wall")
        finally:
            sel.close()

    def wall_elapsed(self, now: float | None = None) -> float | None:
        """Wall time charged since execve: paused time (RunControl.pause) is not."""
        if self.exec_at is None:
            return None
        now = time.monotonic() if now is None else now
        paused = self.control.paused_time(self.exec_at, now) if self.control is not None else 0.0
        return max(0.0, now - self.exec_at - paused)

    def _timeout(self, drain_until: float | None) -> float | None:
        now = time.monotonic()
        if drain_until is not None:
            return max(0.0, drain_until - now)
        if self.killed_for is not None:
            if self._killed_at is None:
                return None
            return max(0.0, self._killed_at + KILL_GRACE - now)
        if self.exec_at is None:
            if self.setup_deadline is None:
                return None
            return max(0.0, self._started + self.setup_deadline - now)
        timeout = None
        if self.wall_limit is not None:
            elapsed = self.wall_elapsed(now) or 0.0
            timeout = max(0.0, self.wall_limit - elapsed)
        if self.cpu_limit is not None and self.cpu_usage is not None:
            timeout = POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)
        return timeout

    def _stop(self, reason: KillReason) -> None:
        if self.killed_for is None:
            self.killed_for = reason
            self._killed_at = time.monotonic()
            self.kill(reason)

    def _check_limits(self) -> None:
        assert self.exec_at is not None
        if self.wall_limit is not None and (self.wall_elapsed() or 0.0) >= self.wall_limit:
            self._stop("wall")
        elif (
            self.cpu_limit is not None
            and self.cpu_usage is not None
            and self.cpu_usage() >= self.cpu_limit
        ):
            self._stop("time")

    # -------------------------------------------------------- handlers ----
    def _on_err(self, sel: selectors.BaseSelector, fd: int) -> None:
        data = os.read(fd, 4096)
        if data:
            self._err_buf += data
            return
        sel.unregister(fd)
        # EOF: only EXEC_READY, then nothing, is a good start (the protocol's docstring).
        buf = bytes(self._err_buf)
        ready = buf.startswith(EXEC_READY)
        record = buf[len(EXEC_READY) :] if ready else buf
        if record:
            self.failure = record
        elif ready:
            self.exec_at = time.monotonic()
            if self._no_listener:
                self._stop("violation")  # it runs, and nobody here would see its denials
        elif self.killed_for is None:
            self.failure = encode_failure(
                "setup",
                errno.EPROTO,
                "the launcher ended before the payload's execve without reporting a step",
            )

    def _on_status(self, sel: selectors.BaseSelector, fd: int) -> None:
        data = os.read(fd, 1 << 16)
        if data:
            self._status_buf += data
            return
        sel.unregister(fd)
        self.ended_at = time.monotonic()
        buf = bytes(self._status_buf)
        if len(buf) >= PayloadStatus.SIZE:
            self.status = PayloadStatus.decode(buf)
            self.files = decode_files(buf[PayloadStatus.SIZE :])
        self._status_done = True

    def _on_stdin(self, sel: selectors.BaseSelector, fd: int) -> None:
        data = self.stdin_data
        try:
            n = os.write(fd, data[:65536]) if data else 0
        except BrokenPipeError:
            n = len(data) if data else 0
        except BlockingIOError:
            n = 0
        self.stdin_data = data[n:] if data else None
        if not self.stdin_data:
            sel.unregister(fd)
            os.close(fd)  # EOF for the payload
            self.stdin_fd = -1

    def _on_tty_input(self, sel: selectors.BaseSelector, fd: int) -> None:
        """Typed input from the caller's terminal, for the payload's stdin (never blocks)."""
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # the terminal hung up: end of input
        sel.unregister(fd)  # read more once this is written
        if not data:  # ^D on the caller's terminal: the payload's end of input
            self._tty_ended = True
            if not self._tty_pending:
                self._close_tty_writer()
            return
        self._tty_pending += data
        sel.register(self.tty_writer, selectors.EVENT_WRITE, self._on_tty_output)

    def _on_tty_output(self, sel: selectors.BaseSelector, fd: int) -> None:
        try:
            n = os.write(fd, self._tty_pending)
        except BlockingIOError:
            return  # the payload is not reading: wait
        except OSError:  # EPIPE: nobody reads the payload's stdin any more
            n = len(self._tty_pending)
            self._tty_ended = True
        del self._tty_pending[:n]
        if self._tty_pending:
            return
        sel.unregister(fd)
        if self._tty_ended:
            self._close_tty_writer()
        else:
            sel.register(self.tty_reader, selectors.EVENT_READ, self._on_tty_input)

    def _close_tty_writer(self) -> None:
        if self.tty_writer >= 0:
            os.close(self.tty_writer)
            self.tty_writer = -1

    def _on_output(self, sel: selectors.BaseSelector, fd: int) -> None:
        data = os.read(fd, 1 << 16)
        if not data:
            sel.unregister(fd)
            return
        self.out_total += len(data)
        if self.output_limit is not None and self.out_total > self.output_limit:
            data = data[: max(0, len(data) - (self.out_total - self.output_limit))]
            self._stop("output")
        out = self.outs[fd]
        if out.forward_to is not None:
            try:
                os.write(out.forward_to, data)
            except BrokenPipeError:
                out.forward_to = None  # the reader went away: keep counting, drop the bytes
        else:
            out.buf.extend(data)

    def _on_cancel(self, sel: selectors.BaseSelector, fd: int) -> None:
        sel.unregister(fd)
        if self.control is not None and self.control.reason is not None:
            self._stop(self.control.reason)

    def _on_notify_channel(self, sel: selectors.BaseSelector, fd: int) -> None:
        """The payload's listener, from its init (SCM_RIGHTS, one message).

        A console's master (an OCI terminal) comes first on the same channel and
        is taken by the runtime before the watch runs; one left here is closed."""
        try:
            tag, fds = recv_listener(fd)
        except OSError:
            tag, fds = b"", []
        if tag == CONSOLE_TAG:
            for extra in fds:
                os.close(extra)
            return  # the listener comes next
        sel.unregister(fd)
        if len(fds) != 1:
            for extra in fds:
                os.close(extra)
            # Fail closed: nobody here would see its denials. Without the listener
            # init never acks, so the payload cannot reach execve: decided at the
            # errpipe's end, where init's own report of why (a failed handover) or
            # the payload's (it failed before its filter) is what the run says.
            # Killing now could take init before it reported.
            self._no_listener = True
            if self.exec_at is not None:
                self._stop("violation")
            return
        self.listener = fds[0]
        sel.register(self.listener, selectors.EVENT_READ, self._on_notification)

    def _foreign(self, n: notify.Notification) -> bool:
        """Whether a notification comes from another ABI than the filter's (i386, x32)."""
        if n.arch != self.native_arch:
            return True
        nr = n.nr & 0xFFFFFFFF
        if self.native_nr_bit:
            return not nr & self.native_nr_bit
        return X32_SYSCALL_BIT <= nr < 0xFFFFFFFF

    def _on_notification(self, sel: selectors.BaseSelector, fd: int) -> None:
        if notify.hung_up(fd):
            # Every task of the filter has exited. Checked first: on 6.1 the receive
            # ioctl would block for good here (6.18 returns ENOENT).
            sel.unregister(fd)
            return
        try:
            n = notify.recv(fd)
        except OSError:
            sel.unregister(fd)
            return
        if n is None:
            return
        if self._foreign(n):
            # Never continued or answered (learning included): a CONTINUE would
            # run the foreign call unfiltered. Recorded from the listener, the
            # one channel the payload cannot write: this is the verdict.
            if self.violation is None:
                self.violation = Violation(
                    syscall_name(n.nr, n.arch), n.nr, arch_name(n.arch, n.nr), n.args
                )
            self._stop("violation")
            return
        if self.on_notification is not None:
            refused = self.on_notification(n, fd)
            if refused is not None:
                if self.violation is None:
                    self.violation = refused
                self._stop("violation")
            return
        v = Violation(syscall_name(n.nr, n.arch), n.nr, arch_name(n.arch, n.nr), n.args)
        if self.deny_errno is not None:
            notify.answer_errno(fd, n.id, self.deny_errno)
            if len(self.denied) < 1000:
                self.denied.append(v)
            return
        if self.violation is None:
            self.violation = v
        self._stop("violation")

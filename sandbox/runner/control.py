"""RunControl: a handle on a run in flight, from another thread (library side).

Pause and resume use the leaf's freezer (v1 freezer.state, v2 cgroup.freeze);
the time a run spends paused is not charged as wall time (its limit and its
figure; issue 13 item 15). ``cancel`` wakes the run's watch loop through a pipe
and kills the run with a reason that becomes its verdict. Interactive pairs use
it to end one side a grace period after the other.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from sandbox.errors import SandboxError
from sandbox.runner.verdict import KillReason


class RunControl:
    """Pause, resume or cancel one run (thread-safe; usable before the run starts)."""

    def __init__(self) -> None:
        self.wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.started = threading.Event()
        self.finished = threading.Event()
        self.reason: KillReason | None = None
        self._freeze: Callable[[], None] | None = None
        self._thaw: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._paused_at: float | None = None  # time.monotonic() of the pause in force
        self._pauses: list[tuple[float, float]] = []  # (start, end) of the pauses that ended

    def attach(self, freeze: Callable[[], None] | None, thaw: Callable[[], None] | None) -> None:
        """Called by the supervisor once the run's leaf exists and the payload runs."""
        self._freeze, self._thaw = freeze, thaw
        self.started.set()

    def _need(self, fn: Callable[[], None] | None, what: str, timeout: float) -> Callable[[], None]:
        if not self.started.wait(timeout):
            raise SandboxError(f"cannot {what}: the run has not started")
        if fn is None:
            raise SandboxError(f"cannot {what}: this run has no freezer (cgroups off)")
        return fn

    def pause(self, timeout: float = 30.0) -> None:
        """Freeze every task of the run: no CPU used, no wall time charged, until resumed."""
        self._need(self._freeze, "pause", timeout)()
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic()

    def resume(self, timeout: float = 30.0) -> None:
        """Thaw a paused run."""
        thaw = self._need(self._thaw, "resume", timeout)
        with self._lock:
            if self._paused_at is not None:
                self._pauses.append((self._paused_at, time.monotonic()))
                self._paused_at = None
        thaw()

    def paused_time(self, since: float, now: float) -> float:
        """Seconds the run spent paused between ``since`` and ``now`` (time.monotonic())."""
        with self._lock:
            spans = list(self._pauses)
            if self._paused_at is not None:
                spans.append((self._paused_at, now))
        return sum(max(0.0, min(end, now) - max(start, since)) for start, end in spans)

    def cancel(self, reason: KillReason = "cancel") -> None:
        """Kill the run; ``reason`` decides its verdict (default: CANCELLED; "wall" makes
        it a wall-time limit, as an interactive pair's grace period does)."""
        if self.reason is None:
            self.reason = reason
        with self._lock:
            if self._wake_w < 0:
                return  # closed: the run is over, and the number may be another's now
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass

    def close(self) -> None:
        """Release the wake-up pipe, once: a second close (``RunHandle.wait`` twice) must
        not close a descriptor number another thread has opened since."""
        with self._lock:
            fds, self.wake_r, self._wake_w = (self.wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

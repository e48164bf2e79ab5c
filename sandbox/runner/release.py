"""The release stage: give back what the acquire and launch stages took, in reverse.

Supervisor side. The order is the reverse of acquisition (the run's fds, the
AppArmor hold, the cgroup leaf: kill what is left, rmdir; the staged files,
the id slot, the image pin, the run lock), then the launcher's record of the
run last, so that until everything is gone its watchdog would still remove
it, and a sweeper never takes a live run's resources. Each step runs even
when an earlier one failed; failures are logged and never raised over the
run's own result or error (STYLE B6.9). What a killed supervisor never
releases, the launcher's watchdog and the next supervisor's sweep remove.

:class:`Releaser` runs releases after the result went back to the caller
(issue 12: off the caller's path), on one thread, joined by
:meth:`Releaser.close` (the supervisor's close, interpreter exit) and by the
next acquire when too many are pending or a resource ran short.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque

from sandbox.runner.acquire import Resources
from sandbox.runner.pool import Foreground

log = logging.getLogger(__name__)
# Releases waiting at most; a run that would add one more waits for the oldest.
MAX_PENDING = 4


def release(res: Resources) -> None:
    """Release every resource of the run; log what could not be released."""
    try:
        res.stack.close()
    except Exception as e:  # never over the primary result: logged, then dropped
        _failed(res, e)
    for step in res.after:
        try:
            step()
        except Exception as e:
            _failed(res, e)


def _failed(res: Resources, e: Exception) -> None:
    log.warning(
        "run %s: release: %s: %s",
        res.plan.run_id or "?",
        type(e).__name__,
        e,
        extra={"run_id": res.plan.run_id},
    )


class Releaser:
    """Releases runs in the background, oldest first, on one daemon thread.

    ``submit`` never blocks on the release itself, only when ``limit``
    releases are pending already (the id slots, leaves and locks they hold are
    bounded that way). ``drain`` waits until all are done; ``close`` drains and
    stops the thread. A process that exits without ``close`` drains at exit.
    """

    def __init__(self, limit: int = MAX_PENDING, foreground: Foreground | None = None) -> None:
        self.limit = limit
        self._foreground = foreground
        self._cond = threading.Condition()
        self._queue: deque[Resources] = deque()
        self._busy = 0  # queued + in progress
        self._thread: threading.Thread | None = None
        self._closed = False
        _LIVE.add(self)

    def submit(self, res: Resources) -> None:
        """Release ``res`` soon, after the caller has its result."""
        with self._cond:
            if self._closed:
                inline = True
            else:
                inline = False
                while self._busy >= self.limit:
                    self._cond.wait()
                self._queue.append(res)
                self._busy += 1
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._work, daemon=True, name="sandbox-release"
                    )
                    self._thread.start()
                self._cond.notify_all()
        if inline:
            release(res)

    @property
    def pending(self) -> int:
        """Releases queued or in progress."""
        with self._cond:
            return self._busy

    def drain(self) -> None:
        """Wait until every submitted release is done."""
        with self._cond:
            while self._busy:
                self._cond.wait()

    def close(self) -> None:
        """Drain, then stop the thread; later submits release inline. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        _LIVE.discard(self)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return  # closed and empty
                res = self._queue.popleft()
            if self._foreground is not None:
                self._foreground.wait_idle()
            try:
                release(res)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


_LIVE: weakref.WeakSet[Releaser] = weakref.WeakSet()


@atexit.register
def _at_exit() -> None:
    """Interpreter exit: finish every pending release (daemon threads die unannounced)."""
    for r in list(_LIVE):
        r.close()

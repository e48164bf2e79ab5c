"""Cgroup leaves made ahead of their runs (supervisor side; root or a delegated cgroup).

Making a run's leaf is the largest step of the acquire stage (a mkdir, the
limits and a join fd in each of up to 8 v1 hierarchies, 0.7-1.3 ms here;
bench/RESULTS.md). The pool makes whole entries ahead, on one background
thread, for the cgroup requests runs have asked for: a run id, its run lock
(held from the start), the leaf with the request's limits written, and the
join fds. Each entry is taken by exactly one run and never returned: a run's
leaf is removed at its release as before, and the pool makes a new one.

Entries are keyed by the request itself, so a run only ever gets a leaf
whose limits were written for exactly its request; nothing is rewritten at
take time. An entry's leaf has had no task in it, so the run's accounting
starts from zero, as with a leaf made on its path.

Nothing outlives its owner: each entry holds its run lock, so the stale
sweep of another supervisor leaves it alone while we live and removes it
(lock free) once we die; before a leaf is made its directories and lock are
registered with the launcher (``hold``), whose watchdog removes them if the
supervisor is killed; :meth:`LeafPool.close` (the supervisor's close,
interpreter exit) removes what is still pooled. The boundary (``make``,
``discard``) is injected, so the pool is tested with fakes.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
E = TypeVar("E")

# Entries kept ready per request, and distinct requests kept at most (the
# least recently asked one's entries go when another one comes).
DEFAULT_SIZE = 2
DEFAULT_KEYS = 4
SIZE_ENV = "SANDBOX_LEAF_POOL"


def pool_size() -> int:
    """Entries per request a library Sandbox keeps (``$SANDBOX_LEAF_POOL``; 0: no pool)."""
    raw = os.environ.get(SIZE_ENV, "")
    try:
        return max(0, min(16, int(raw))) if raw else DEFAULT_SIZE
    except ValueError:
        log.warning("%s=%r: not a number; using %d", SIZE_ENV, raw, DEFAULT_SIZE)
        return DEFAULT_SIZE


class Foreground:
    """Counts runs in their setup (compile to launch); background work waits for none.

    Background threads (the pool's fill, the releases) share the GIL and two
    CPUs with a run being set up; they start a unit of work only when no run
    is in its setup, or after ``patience`` seconds, so they never starve.
    """

    def __init__(self, patience: float = 0.05) -> None:
        self.patience = patience
        self._n = 0
        self._cond = threading.Condition()

    @contextmanager
    def busy(self) -> Iterator[None]:
        """The block is a run's setup: background work waits for its end."""
        with self._cond:
            self._n += 1
        try:
            yield
        finally:
            with self._cond:
                self._n -= 1
                if not self._n:
                    self._cond.notify_all()

    def wait_idle(self) -> None:
        """Return once no run is in its setup (or after ``patience``)."""
        with self._cond:
            self._cond.wait_for(lambda: not self._n, self.patience)


@dataclass
class _Slot(Generic[E]):
    ready: list[E] = field(default_factory=list)
    failed: bool = False  # making an entry failed: runs make their own, as without a pool


class LeafPool(Generic[K, E]):
    """Entries made ahead per key, each taken once (see module docstring; thread-safe).

    Args:
        make: builds one entry for a key (the run id, lock, leaf, join fds); may
            raise, then the key is no longer pooled and its runs make their own.
        discard: gives back an entry nobody took (at close or eviction).
        size: entries kept ready per key.
        keys: distinct keys kept at most.
        foreground: when set, each entry is made once no run is in its setup.
    """

    def __init__(
        self,
        make: Callable[[K], E],
        discard: Callable[[E], None],
        size: int = DEFAULT_SIZE,
        keys: int = DEFAULT_KEYS,
        foreground: Foreground | None = None,
    ) -> None:
        self._make, self._discard = make, discard
        self._foreground = foreground
        self.size, self.max_keys = size, keys
        self._slots: OrderedDict[K, _Slot[E]] = OrderedDict()
        self._evicted: list[E] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.hits = self.misses = 0
        _LIVE.add(self)

    def take(self, key: K) -> E | None:
        """A ready entry for ``key``, now, or None (the caller makes its own).

        Either way the key is (re)filled in the background for the next run.
        """
        with self._cond:
            if self._closed or self.size <= 0:
                return None
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
                while len(self._slots) > self.max_keys:
                    _, old = self._slots.popitem(last=False)
                    self._evicted += old.ready
            self._slots.move_to_end(key)
            entry = slot.ready.pop() if slot.ready else None
            if entry is None:
                self.misses += 1
            else:
                self.hits += 1
            if not slot.failed:
                self._start()
                self._cond.notify_all()
            return entry

    def entries(self) -> list[E]:
        """Every entry ready now (for tests and leak checks)."""
        with self._cond:
            return [e for s in self._slots.values() for e in s.ready]

    def ready(self, key: K) -> int:
        """Entries ready for ``key`` now."""
        with self._cond:
            slot = self._slots.get(key)
            return len(slot.ready) if slot else 0

    def wait_filled(self, timeout: float = 10.0) -> bool:
        """Wait until every key that can be is filled (tests, benchmarks)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next_key() is None, timeout)

    def close(self) -> None:
        """Stop filling and discard every entry not taken. Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            left = [e for s in self._slots.values() for e in s.ready] + self._evicted
            self._slots.clear()
            self._evicted = []
        for entry in left:
            self._give_back(entry)
        _LIVE.discard(self)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._fill, daemon=True, name="sandbox-leaf-pool"
            )
            self._thread.start()

    def _next_key(self) -> K | None:
        """The most recently asked key that is short of entries (under the lock)."""
        for key in reversed(self._slots):
            slot = self._slots[key]
            if not slot.failed and len(slot.ready) < self.size:
                return key
        return None

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._evicted and self._next_key() is None:
                    self._cond.wait()
                if self._closed:
                    return
                evicted, self._evicted = self._evicted, []
                key = self._next_key()
            for entry in evicted:
                self._give_back(entry)
            if key is None:
                continue
            if self._foreground is not None:
                self._foreground.wait_idle()
            try:
                entry = self._make(key)
            except Exception as e:  # the run path makes its own and reports why
                log.debug("leaf pool: not pooling this request: %s: %s", type(e).__name__, e)
                with self._cond:
                    if key in self._slots:
                        self._slots[key].failed = True
                    self._cond.notify_all()
                continue
            with self._cond:
                slot = self._slots.get(key)
                kept = slot is not None and not self._closed
                if slot is not None and kept:
                    slot.ready.append(entry)
                self._cond.notify_all()
            if not kept:  # closed or evicted meanwhile
                self._give_back(entry)

    def _give_back(self, entry: E) -> None:
        try:
            self._discard(entry)
        except Exception as e:  # logged: the sweep or the watchdog removes it later
            log.warning("leaf pool: discard: %s: %s", type(e).__name__, e)


_LIVE: weakref.WeakSet[LeafPool[Any, Any]] = weakref.WeakSet()


def pooled_run_ids() -> set[str]:
    """Run ids of the entries this process's live pools keep ready (leak checks:
    a pooled leaf and its lock are the pool's, not a leftover of a run)."""
    return {
        rid
        for p in list(_LIVE)
        for e in p.entries()
        if isinstance(rid := getattr(e, "run_id", None), str)
    }


@atexit.register
def _at_exit() -> None:
    """Interpreter exit: remove what is still pooled (the fill thread is a daemon)."""
    for p in list(_LIVE):
        p.close()

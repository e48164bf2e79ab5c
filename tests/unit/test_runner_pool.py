"""The leaf pool (runner.pool), the background releases (runner.release) and the
acquirer's pooled entries on fake cgroupfs hosts (hybrid v1 and v2)."""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from cgroupfs_fake import FakeHost
from test_cgroups_leaf import LIMITS, layout_of

from sandbox.compile import CgroupRequest
from sandbox.errors import SetupError
from sandbox.runner import state
from sandbox.runner.acquire import Acquirer, Resources, pool_key
from sandbox.runner.pool import Foreground, LeafPool, pooled_run_ids
from sandbox.runner.release import Releaser, release


@dataclass
class Entry:
    key: str
    n: int
    run_id: str = ""


class Maker:
    """Records what it made and gave back; can be told to fail."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.made: list[Entry] = []
        self.discarded: list[Entry] = []
        self.fail = fail or set()
        self.lock = threading.Lock()

    def make(self, key: str) -> Entry:
        if key in self.fail:
            raise SetupError("cgroup", f"no leaf for {key}")
        with self.lock:
            e = Entry(key, len(self.made), f"run-{key}-{len(self.made)}")
            self.made.append(e)
        return e

    def discard(self, e: Entry) -> None:
        self.discarded.append(e)


def filled(pool: LeafPool, key: str, n: int) -> None:
    deadline = time.monotonic() + 5
    while pool.ready(key) < n:
        assert time.monotonic() < deadline, f"{key} never got {n} entries"
        time.sleep(0.002)


def test_a_miss_fills_in_the_background_and_each_entry_is_taken_once():
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=2)
    try:
        assert pool.take("a") is None  # nothing made yet: the run makes its own
        filled(pool, "a", 2)
        got = [pool.take("a") for _ in range(2)]
        assert all(isinstance(e, Entry) and e.key == "a" for e in got)
        assert got[0] is not got[1]
        filled(pool, "a", 2)  # refilled with new entries, never the taken ones
        assert not {id(e) for e in got} & {id(e) for e in pool.entries()}
        assert (pool.hits, pool.misses) == (2, 1)
    finally:
        pool.close()


def test_an_entry_never_goes_to_another_request():
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=1)
    try:
        pool.take("a")
        filled(pool, "a", 1)
        assert pool.take("b") is None
        filled(pool, "b", 1)
        a, b = pool.take("a"), pool.take("b")
        assert (a.key, b.key) == ("a", "b")
    finally:
        pool.close()


def test_a_request_whose_entry_cannot_be_made_is_not_pooled_or_retried():
    m = Maker(fail={"bad"})
    pool = LeafPool(m.make, m.discard, size=2)
    try:
        assert pool.take("bad") is None
        assert pool.wait_filled(5)
        assert pool.take("bad") is None
        assert pool.wait_filled(5)
        assert m.made == []
    finally:
        pool.close()


def test_the_least_recently_asked_request_is_evicted_and_given_back():
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=1, keys=1)
    try:
        pool.take("a")
        filled(pool, "a", 1)
        (a_entry,) = pool.entries()
        pool.take("b")
        filled(pool, "b", 1)
        deadline = time.monotonic() + 5
        while a_entry not in m.discarded:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert [e.key for e in pool.entries()] == ["b"]
    finally:
        pool.close()


def test_close_gives_back_everything_not_taken_and_stops():
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=3)
    pool.take("a")
    filled(pool, "a", 3)
    taken = pool.take("a")
    pool.close()
    assert taken not in m.discarded
    assert sorted(e.n for e in m.discarded) == sorted(e.n for e in m.made if e is not taken)
    assert pool.take("a") is None
    assert pool.entries() == []
    made = len(m.made)
    time.sleep(0.05)
    assert len(m.made) == made  # nothing is made after close


def test_pooled_run_ids_lists_the_live_pools_entries():
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=1)
    try:
        pool.take("k")
        filled(pool, "k", 1)
        assert pool.entries()[0].run_id in pooled_run_ids()
    finally:
        pool.close()
    assert not {e.run_id for e in m.made} & pooled_run_ids()


def test_the_fill_waits_while_a_run_is_set_up():
    fg = Foreground(patience=10)
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=1, foreground=fg)
    try:
        with fg.busy():
            pool.take("a")
            time.sleep(0.1)
            assert m.made == []  # not while the run is in its setup
        filled(pool, "a", 1)
    finally:
        pool.close()


def test_the_fill_does_not_starve_behind_runs():
    fg = Foreground(patience=0.02)
    m = Maker()
    pool = LeafPool(m.make, m.discard, size=1, foreground=fg)
    try:
        with fg.busy():
            pool.take("a")
            filled(pool, "a", 1)
    finally:
        pool.close()


# ------------------------------------------------------------ releases ----


def fake_resources(log: list[str], name: str, fail: bool = False) -> Resources:
    stack = ExitStack()
    stack.callback(log.append, f"{name}:lock")

    def leaf() -> None:
        if fail:
            raise OSError(16, "Device or resource busy")
        log.append(f"{name}:leaf")

    stack.callback(leaf)
    res = Resources(plan=None, states={}, lock=None, stack=stack)  # type: ignore[arg-type]
    res.after.append(lambda: log.append(f"{name}:launcher"))
    return res


def test_release_gives_back_in_reverse_and_tells_the_launcher_last():
    log: list[str] = []
    release(fake_resources(log, "r"))
    assert log == ["r:leaf", "r:lock", "r:launcher"]


def test_a_failed_step_neither_raises_nor_stops_the_rest(caplog):
    log: list[str] = []

    class Plan:
        run_id = "r1"

    res = fake_resources(log, "r", fail=True)
    res.plan = Plan()  # type: ignore[assignment]
    release(res)
    assert log == ["r:lock", "r:launcher"]
    assert "busy" in caplog.text


def test_background_releases_run_in_order_and_close_waits_for_them():
    log: list[str] = []
    gate = threading.Event()
    rel = Releaser(limit=8)
    blocker = fake_resources(log, "0")
    blocker.stack.callback(gate.wait)
    rel.submit(blocker)
    for i in range(1, 4):
        rel.submit(fake_resources(log, str(i)))  # returns at once
    assert rel.pending == 4
    assert "3:lock" not in log
    gate.set()
    rel.close()
    assert rel.pending == 0
    assert [x for x in log if x.endswith("launcher")] == [f"{i}:launcher" for i in range(4)]
    rel.submit(fake_resources(log, "late"))  # after close: inline
    assert log[-1] == "late:launcher"


def test_a_submit_waits_when_too_many_are_pending():
    log: list[str] = []
    gate = threading.Event()
    rel = Releaser(limit=1)
    first = fake_resources(log, "a")
    first.stack.callback(gate.wait)
    rel.submit(first)
    done = threading.Event()

    def second() -> None:
        rel.submit(fake_resources(log, "b"))
        done.set()

    t = threading.Thread(target=second)
    t.start()
    assert not done.wait(0.1)  # held back until the first one is released
    gate.set()
    assert done.wait(5)
    t.join()
    rel.close()
    assert log.index("a:launcher") < log.index("b:launcher")


# ------------------------------------------- the acquirer's pooled leaves ----


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    monkeypatch.setattr(state, "ensure_staging", lambda: tmp_path)
    return tmp_path


@pytest.mark.parametrize("kind", ["hybrid", "v2"])
def test_a_pooled_entry_is_held_with_the_launcher_before_its_leaf_exists(runtime, kind):
    own = {"memory": "/x"} if kind == "hybrid" else {"": "/y"}
    host = FakeHost(str(runtime / kind), kind, own=own)
    if kind == "v2":
        host.make_cgroup("", "/judge.service")
    acq = Acquirer(host=None)  # type: ignore[arg-type]
    acq._layout = layout_of(host, **({"parent": "/judge.service"} if kind == "v2" else {}))
    events: list[tuple[str, str, object]] = []

    def hold(run_id: str, cleanup: dict) -> None:
        existing = [d for d in cleanup["cgroup_dirs"] if os.path.exists(d)]
        events.append(("hold", run_id, (list(cleanup["cgroup_dirs"]), existing, cleanup["files"])))

    req = CgroupRequest(LIMITS, frozenset({"memory", "pids"}), False)
    pool = acq.make_pool(hold, lambda rid: events.append(("release", rid, None)), size=1)
    try:
        assert pool.take(pool_key(req)) is None
        assert pool.wait_filled(5)
        entry = pool.take(pool_key(req))
        assert entry is not None and entry.request == req
        (ev,) = [e for e in events if e[0] == "hold"][:1]
        dirs, existing, files = ev[2]
        assert ev[1] == entry.run_id and existing == []  # registered before any mkdir
        assert {d.path for d in entry.leaf.dirs} <= set(dirs)
        assert files == [str(entry.lock.path)]
        assert pool.wait_filled(5)  # the refill's entry too
        assert state.sweep(lambda rid: None) == []  # their locks are held: never swept
        assert len(entry.join) == len(entry.leaf.dirs)
        # the request's limits were written into this entry's own leaf when it was made
        mem = entry.leaf.placement["memory"].path
        limit = "memory.max" if kind == "v2" else "memory.limit_in_bytes"
        assert (os.path.join(mem, limit), str(64 << 20)) in host.io.writes
        assert entry.run_id in mem
        for fd in entry.join:
            os.close(fd)
        entry.leaf.remove()
        entry.lock.release()
        entry.forget()
    finally:
        pool.close()
    # what was still pooled is gone: leaf, lock, and the launcher's hold
    released = {e[1] for e in events if e[0] == "release"}
    held = {e[1] for e in events if e[0] == "hold"}
    assert held == released
    for dirpath, dirnames, _ in os.walk(host.root):
        assert not [d for d in dirnames if d.startswith("sbx-")], dirpath
    assert not list((runtime / "run" / "runs").glob("*.lock"))


def test_a_pooled_entry_of_another_request_is_never_used(runtime):
    host = FakeHost(str(runtime / "h"), "hybrid", own={"memory": "/x"})
    acq = Acquirer(host=None)  # type: ignore[arg-type]
    acq._layout = layout_of(host)
    a = CgroupRequest(LIMITS, frozenset({"memory"}), False)
    b = CgroupRequest(LIMITS, frozenset({"pids"}), False)
    assert pool_key(a) != pool_key(b)
    assert pool_key(a) == pool_key(CgroupRequest(LIMITS, frozenset({"memory"}), False))


def test_a_lock_swept_between_its_creation_and_its_flock_is_made_again(runtime, monkeypatch):
    """A concurrent sweep sees the new file unlocked for a moment and unlinks it."""
    real_flock = state.fcntl.flock
    swept: list[list[str]] = []
    calls = []

    def flock(fd: int, op: int) -> None:
        calls.append(op)
        if len(calls) == 1:  # the maker's first flock: another supervisor's sweep first
            swept.append(state.sweep(lambda rid: None))
        real_flock(fd, op)

    monkeypatch.setattr(state.fcntl, "flock", flock)
    lock = state.acquire_run_lock("race-1")
    monkeypatch.setattr(state.fcntl, "flock", real_flock)
    try:
        assert swept == [["race-1"]]  # the first file went
        assert os.stat(lock.path).st_ino == os.fstat(lock.fd).st_ino  # the one we hold is there
        assert state.sweep(lambda rid: None) == []
    finally:
        lock.release()

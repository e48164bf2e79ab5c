"""Helpers for the real-kernel cgroup tests (host and guest): the probe, joined
children, leaves that are always removed, and the no-stray-cgroup check.

A child is a plain fork: it joins the leaf itself through the join fds (v1
``tasks``, v2 ``cgroup.procs``; ``join_with_fds``, as the payload will) and execs
``tests/probes/cgprobe``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import resource
import select
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from sandbox.cgroups import CgroupLayout, CgroupLimits, Leaf, State, create, join_with_fds, sweep
from sandbox.cgroups.base import kill_loop, report
from sandbox.cgroups.v1 import V1Backend
from sandbox.cgroups.v2 import V2Backend

TESTS = Path(__file__).resolve().parent
PROBE_SRC = TESTS / "probes" / "cgprobe.c"
PROBE = TESTS / "probes" / "build" / "cgprobe"
# Leaves of this test process only: other sessions may create sbx-* leaves meanwhile.
PREFIX = f"sbxt{os.getpid()}-"
_ids = itertools.count()
_children: list[int] = []


def _ablate(names: set[str]) -> None:
    """CGTEST_ABLATE=memory,pids: pretend those controllers were applied while writing
    nothing, to show that their tests fail without them (freezer: no freezing, and
    kill by plain SIGKILL loop)."""
    for backend in (V1Backend, V2Backend):

        def apply(self, io, controller, leaf, limits, _orig=backend.apply):  # type: ignore[no-untyped-def]
            if controller in names:
                return report(controller, State.FULL, "ABLATED", leaf)
            return _orig(self, io, controller, leaf, limits)

        backend.apply = apply  # type: ignore[method-assign]
        if "freezer" in names:
            backend.set_frozen = lambda self, io, leaf, frozen: None  # type: ignore[method-assign]
            backend.is_frozen = lambda self, io, leaf: True  # type: ignore[method-assign]
            backend.kill = lambda self, io, leaf, deadline: kill_loop(io, leaf, deadline)  # type: ignore[method-assign]


if os.environ.get("CGTEST_ABLATE"):
    _ablate(set(os.environ["CGTEST_ABLATE"].split(",")))


def probe() -> str:
    """Path of the compiled probe (built on first use)."""
    if not PROBE.exists() or PROBE.stat().st_mtime < PROBE_SRC.stat().st_mtime:
        PROBE.parent.mkdir(parents=True, exist_ok=True)
        tmp = PROBE.with_suffix(f".{os.getpid()}")
        subprocess.run(["gcc", "-O1", "-Wall", "-o", str(tmp), str(PROBE_SRC)], check=True)
        tmp.rename(PROBE)
    return str(PROBE)


class Child:
    """A forked child that joined a leaf; its stdout is a pipe."""

    def __init__(self, pid: int, out: int) -> None:
        self.pid, self.out, self.buf, self.status = pid, out, b"", None

    def line(self, timeout: float = 60.0) -> str:
        """The next line of output (TimeoutError if none comes)."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.out], [], [], left)[0]:
                raise TimeoutError(f"child {self.pid}: no line, got {self.buf!r}")
            chunk = os.read(self.out, 4096)
            if not chunk:
                raise EOFError(f"child {self.pid} closed stdout, got {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode()

    def wait(self, timeout: float = 60.0) -> int:
        """Reap the child; returns the raw wait status."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
                _children.remove(self.pid)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"child {self.pid} still running")
            else:
                time.sleep(0.002)
        return self.status


def spawn(
    leaf: Leaf | None,
    *args: str,
    before_join: Callable[[], None] | None = None,
    fds: Sequence[int] | None = None,
    join_as: Callable[[], None] | None = None,
) -> Child:
    """Fork; the child joins ``leaf`` itself (writing "0" to each fd) and execs the probe."""
    own_fds = fds is None and leaf is not None
    join_fds = leaf.open_join_fds() if own_fds and leaf else list(fds or [])
    argv = [probe(), *args]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: nothing but the join and exec
        try:
            os.dup2(w, 1)
            # Ablate RLIMIT_NPROC so only the pids controller can bound forks: soft =
            # hard (raising hard needs CAP_SYS_RESOURCE, which this host withholds
            # even from root; uid 0 is exempt from RLIMIT_NPROC anyway).
            hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
            resource.setrlimit(resource.RLIMIT_NPROC, (hard, hard))
            if before_join:
                before_join()
            join_with_fds(join_fds, os.write)
            os.execv(argv[0], argv)
        except BaseException as exc:  # report, never return into pytest
            os.write(2, f"cgkit child: {exc!r}\n".encode())
        finally:
            os._exit(127)
    _children.append(pid)
    os.close(w)
    if own_fds:
        for fd in join_fds:
            os.close(fd)
    return Child(pid, r)


def reap_all() -> None:
    """Reap children left by a failed test (after their leaf was killed)."""
    for pid in list(_children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        _children.remove(pid)


def strays(layout: CgroupLayout) -> list[str]:
    """This process's test leaves still present in any hierarchy."""
    return [
        os.path.join(h.parent, e)
        for h in layout.hierarchies
        if h.parent
        for e in os.listdir(h.parent)
        if e.startswith(PREFIX)
    ]


@pytest.fixture
def make_leaf(layout: CgroupLayout) -> Iterator[Callable[..., Leaf]]:
    """Factory of leaves (prefix PREFIX) removed at teardown, whatever happened."""
    made: list[Leaf] = []

    def make(
        limits: CgroupLimits | None = None,
        required: frozenset[str] = frozenset(),
        lay: CgroupLayout | None = None,
    ) -> Leaf:
        leaf = create(
            lay or layout, str(next(_ids)), limits or CgroupLimits(), required, prefix=PREFIX
        )
        made.append(leaf)
        return leaf

    yield make
    for leaf in made:
        leaf.remove()
    reap_all()


@pytest.fixture(autouse=True)
def no_stray_cgroups(layout: CgroupLayout) -> Iterator[None]:
    """Fail a test that leaves a cgroup behind (and clean it up)."""
    assert not strays(layout), "leaves from an earlier test"
    yield
    left = strays(layout)
    if left:
        sweep(layout, PREFIX, lambda _: True)
        pytest.fail(f"stray cgroups after the test: {left}")

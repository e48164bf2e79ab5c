"""The backend contract shared by cgroup v1 and v2, and helpers both use.

A backend knows one hierarchy *version*; the leaf asks it, controller by
controller, to prepare the parent, apply a limit, read figures, freeze and
kill. v1 and v2 implement the same method names (nsjail's ``cgroup``/``cgroup2``
split, youki's ``CgroupManager``), so a hybrid host simply uses both.
Supervisor side; all I/O goes through :class:`~sandbox.cgroups.kernel.CgroupIO`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from sandbox.cgroups.detect import Hierarchy
from sandbox.cgroups.kernel import CgroupIO
from sandbox.cgroups.model import CgroupLimits, ControllerReport, State

Figures = dict[str, int | bool | str | None]
POLL = 0.001  # seconds between polls of a state the kernel reaches asynchronously


class CgroupBackend(Protocol):
    """What a leaf needs from one hierarchy version."""

    version: int
    #: The file the payload writes ``0`` to when it joins (see :func:`join_with_fds`).
    join_file: str

    def prepare_parent(self, io: CgroupIO, h: Hierarchy, controllers: set[str]) -> dict[str, str]:
        """Make ``controllers`` available to children of ``h.parent``; return the ones
        that cannot be, each with the reason and the fix."""
        ...

    def init_leaf(self, io: CgroupIO, h: Hierarchy, leaf: str, controllers: set[str]) -> None:
        """Initialise a new leaf before limits are written (v1 cpuset needs mems)."""
        ...

    def apply(
        self, io: CgroupIO, controller: str, leaf: str, limits: CgroupLimits
    ) -> ControllerReport:
        """Write the controller's limits into the leaf. Raises OSError."""
        ...

    def stats(self, io: CgroupIO, controller: str, leaf: str) -> Figures:
        """The controller's figures as CgroupStats field values."""
        ...

    def usage_file(self, leaf: str) -> str:
        """The file :meth:`parse_usage` reads (kept open for polling)."""
        ...

    def parse_usage(self, text: str) -> int:
        """CPU time of the leaf in ns from :meth:`usage_file`'s contents."""
        ...

    def set_frozen(self, io: CgroupIO, leaf: str, frozen: bool) -> None:
        """Ask the kernel to freeze or thaw the leaf (asynchronous)."""
        ...

    def is_frozen(self, io: CgroupIO, leaf: str) -> bool:
        """Whether every task of the leaf is frozen now."""
        ...

    def kill(self, io: CgroupIO, leaf: str, deadline: float) -> None:
        """SIGKILL every task of the leaf, and any it forks meanwhile."""
        ...


def report(controller: str, state: State, detail: str, leaf: str | None) -> ControllerReport:
    """Shorthand used by the backends."""
    return ControllerReport(controller, state, detail, leaf)


def flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.events, pids.events, oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def read_int(io: CgroupIO, path: str) -> int | None:
    """An integer file; ``max`` and a missing file read as None."""
    try:
        text = io.read(path).strip()
    except FileNotFoundError:
        return None
    return None if text == "max" else int(text)


def procs(io: CgroupIO, leaf: str) -> list[int]:
    """Pids in the leaf's cgroup.procs (zombies are not listed)."""
    try:
        return [int(p) for p in io.read(os.path.join(leaf, "cgroup.procs")).split()]
    except FileNotFoundError:
        return []


def wait_for(io: CgroupIO, done: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll ``done`` until true; TimeoutError naming ``what`` after ``deadline``."""
    while not done():
        if io.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        io.sleep(POLL)


def freeze_kill(io: CgroupIO, backend: CgroupBackend, leaf: str, deadline: float) -> None:
    """Kill every task of a leaf so that none can fork past the kill.

    Freeze (nothing runs, so nothing forks), SIGKILL every listed pid, thaw
    (frozen tasks die only once thawed), repeat until the leaf is empty.
    Pids are pinned with pidfds and re-checked against cgroup.procs before
    the signal, so a pid reused outside the leaf is never hit.
    """
    procs_file = os.path.join(leaf, "cgroup.procs")
    while procs(io, leaf):
        backend.set_frozen(io, leaf, True)
        try:
            wait_for(io, lambda: backend.is_frozen(io, leaf), deadline, f"{leaf} to freeze")
            io.kill_listed(procs(io, leaf), procs_file)
        finally:
            backend.set_frozen(io, leaf, False)
        if procs(io, leaf):
            if io.monotonic() > deadline:
                raise TimeoutError(f"tasks of {leaf} survive SIGKILL")
            io.sleep(POLL)


def kill_loop(io: CgroupIO, leaf: str, deadline: float) -> None:
    """SIGKILL listed pids until the leaf is empty (no freezer: a fork may race
    one round, never the loop; the pids limit bounds each round)."""
    procs_file = os.path.join(leaf, "cgroup.procs")
    while pids := procs(io, leaf):
        io.kill_listed(pids, procs_file)
        if procs(io, leaf):
            if io.monotonic() > deadline:
                raise TimeoutError(f"tasks of {leaf} survive SIGKILL")
            io.sleep(POLL)

"""A run's cgroup leaf: created under the delegated parent of every hierarchy it
needs, limited, joined by the payload itself, measured, killed and removed.

Supervisor side, except :func:`join_with_fds`, which the payload calls (pure:
it only uses the ``write`` it is given). Needs write access to the delegated
parents (see :mod:`sandbox.cgroups.detect`); never writes any pid into any
cgroup: the payload joins by itself, just before ``execve``, so the pages and
CPU time the launcher used stay charged where they were (memory.peak cannot
be reset on 6.1; STYLE B5 step 4).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from types import TracebackType

from sandbox.cgroups import place
from sandbox.cgroups.base import CgroupBackend, kill_loop, procs, wait_for
from sandbox.cgroups.detect import CgroupLayout, Hierarchy
from sandbox.cgroups.join import join_with_fds
from sandbox.cgroups.kernel import CgroupIO, is_busy
from sandbox.cgroups.model import (
    CONTROLLERS,
    CgroupLimits,
    CgroupStats,
    ControllerReport,
    State,
)
from sandbox.cgroups.v1 import V1Backend
from sandbox.cgroups.v2 import V2Backend
from sandbox.errors import SetupError, UnsupportedError

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "sbx-"
_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_BACKENDS: dict[int, CgroupBackend] = {1: V1Backend(), 2: V2Backend()}


@dataclass(frozen=True, slots=True)
class LeafDir:
    """The leaf's directory in one hierarchy."""

    hierarchy: Hierarchy
    path: str

    @property
    def backend(self) -> CgroupBackend:
        """v1 or v2, from the hierarchy."""
        return _BACKENDS[self.hierarchy.version]


class Leaf:
    """Handle on one run's leaf; use as a context manager to remove it at the end.

    Attributes:
        run_id: the run this leaf belongs to.
        name: directory name in each hierarchy (``prefix + run_id``).
        dirs: the leaf's directory per hierarchy, kill hierarchy first.
        report: one line per controller for the run record.
    """

    def __init__(
        self,
        layout: CgroupLayout,
        run_id: str,
        name: str,
        dirs: Sequence[LeafDir],
        placement: dict[str, LeafDir],
        report: Sequence[ControllerReport],
        made_parents: Sequence[str] = (),
    ) -> None:
        self.layout, self.run_id, self.name = layout, run_id, name
        self.dirs = tuple(dirs)
        self.placement = placement
        self.report = tuple(report)
        #: Directories made above the leaf for an engine's cgroup path (outermost
        #: first): removed after the leaf when nothing else is in them.
        self.made_parents = tuple(made_parents)
        self._usage: tuple[int, CgroupBackend, bool] | None = None  # fd, backend, ours to close
        self._kept: dict[str, int] = {}  # path -> fd, see keep_open
        self._removed = False

    def __repr__(self) -> str:
        return f"Leaf({self.name!r}, {[d.path for d in self.dirs]})"

    def __enter__(self) -> Leaf:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def _dir(self, controller: str) -> LeafDir:
        d = self.placement.get(controller)
        if d is None:
            why = self.layout.missing.get(controller, "not set up for this run")
            raise UnsupportedError("cgroups", f"{controller} is off: {why}")
        return d

    def open_join_fds(self) -> list[int]:
        """``O_WRONLY|O_CLOEXEC`` fds of each leaf directory's join file.

        That is ``cgroup.procs`` on v2 and ``tasks`` on v1 (``join_file``).

        Hand them to the payload for :func:`join_with_fds`; the caller closes
        its copies once the payload has been spawned.
        """
        fds: list[int] = []
        try:
            for d in self.dirs:
                fds.append(self.layout.io.open_write(os.path.join(d.path, d.backend.join_file)))
        except OSError:
            for fd in fds:
                self.layout.io.close(fd)
            raise
        return fds

    def cpu_usage_ns(self) -> int:
        """CPU time of all the leaf's tasks so far, in ns: one pread of a kept-open file.

        Not thread-safe against :meth:`remove` (which closes the file): stop
        polling first.

        Raises:
            UnsupportedError: CPU accounting is off. SetupError: the leaf was removed.
        """
        if self._removed:
            raise SetupError("cgroup", f"{self.name} was removed")
        if self._usage is None:
            d = self._dir("cpuacct")
            path = d.backend.usage_file(d.path)
            kept = self._kept.get(path)  # closed with the others (keep_open)
            fd = self.layout.io.open_read(path) if kept is None else kept
            self._usage = (fd, d.backend, kept is None)
        fd, backend, _ = self._usage
        return backend.parse_usage(self.layout.io.pread(fd, 256))

    def keep_open(self, controllers: Collection[str]) -> None:
        """Open now the files that ``stats(controllers)`` reads, so that it only
        re-reads them (a pread each; an open of a cgroupfs file costs more than
        its read, and the stats are on the way to the run's result).

        For a leaf made ahead of its run (``runner.pool``); the fds go with
        :meth:`remove`.
        """
        paths: list[str] = []
        for controller, d in self.placement.items():
            if controller in controllers:
                paths += (os.path.join(d.path, n) for n in self._stat_files(d, controller))
        try:
            for path in paths:
                if path not in self._kept:
                    self._kept[path] = self.layout.io.open_read(path)
        except OSError:
            self._close_kept()
            raise

    def _stat_files(self, d: LeafDir, controller: str) -> tuple[str, ...]:
        """The files the backend's stats read for ``controller`` in a leaf of ``d``'s
        hierarchy: found by one reading pass per hierarchy and controller."""
        key = (d.hierarchy, controller)
        names = _STAT_FILES.get(key)
        if names is None:
            seen = _Recording(self.layout.io)
            d.backend.stats(seen, controller, d.path)
            names = tuple(
                os.path.basename(p) for p in seen.paths if os.path.dirname(p) == d.path
            )
            _STAT_FILES[key] = names
        return names

    def _close_kept(self) -> None:
        kept, self._kept = self._kept, {}
        for fd in kept.values():
            self.layout.io.close(fd)

    def stats(self, controllers: Collection[str] | None = None) -> CgroupStats:
        """Every figure the placed controllers give (the rest stay None); with
        ``controllers``, only theirs (a run's record needs three of eight v1
        hierarchies, and each file read is on the way to its result).

        Read them after :meth:`kill` and before :meth:`remove`: the files go with
        the leaf.
        """
        figures: dict[str, object] = {}
        io = _Kept(self.layout.io, self._kept) if self._kept else self.layout.io
        for controller, d in self.placement.items():
            if controllers is None or controller in controllers:
                figures.update(d.backend.stats(io, controller, d.path))
        return CgroupStats(**figures)  # type: ignore[arg-type]

    def _freezer(self, frozen: bool, timeout: float) -> None:
        d, io = self._dir("freezer"), self.layout.io
        d.backend.set_frozen(io, d.path, frozen)
        deadline = io.monotonic() + timeout
        try:
            wait_for(
                io,
                lambda: d.backend.is_frozen(io, d.path) == frozen,
                deadline,
                f"{d.path} to {'freeze' if frozen else 'thaw'}",
            )
        except TimeoutError as exc:
            raise SetupError("cgroup-freeze", str(exc)) from None

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every task of the leaf; returns once all are frozen.

        Raises:
            UnsupportedError: the freezer is off. SetupError: timeout.
        """
        self._freezer(True, timeout)

    def thaw(self, timeout: float = 5.0) -> None:
        """Let the leaf's tasks run again."""
        self._freezer(False, timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every task, including ones forked meanwhile; returns when all are gone.

        v2: ``cgroup.kill``; v1: freeze, SIGKILL, thaw, repeat. Other hierarchies'
        directories are then emptied too (a task that failed half-way through
        joining is in some of them only).

        Raises:
            SetupError: tasks survive until ``timeout``.
        """
        io = self.layout.io
        deadline = io.monotonic() + timeout
        try:
            killer = self.placement.get("freezer")
            if killer is not None and io.exists(killer.path):
                killer.backend.kill(io, killer.path, deadline)
            for d in self.dirs:
                if d is not killer:
                    kill_loop(io, d.path, deadline)
        except TimeoutError as exc:
            raise SetupError("cgroup-kill", str(exc)) from None

    def is_empty(self) -> bool:
        """Whether no task is left in any of the leaf's directories."""
        return not any(procs(self.layout.io, d.path) for d in self.dirs)

    def _rmdir_empty(self) -> bool:
        """rmdir every directory, kill hierarchy last, while each is empty; False at
        the first that is not (EBUSY: a task is in it), which the caller kills.

        The usual end of a run: its init killed everything in its pid namespace
        before reporting, so the leaf is empty and reading each hierarchy's
        cgroup.procs first would only cost the run's release seven reads. The
        kernel refuses to remove a cgroup that holds a task, so nothing is lost
        by trying, and the freezer's directory goes last: while any other one
        is busy, the freezer still holds its tasks for the kill.
        """
        for d in reversed(self.dirs):
            try:
                self.layout.io.rmdir(d.path)
            except FileNotFoundError:
                continue
            except OSError:
                return False
        return True

    def remove(self, timeout: float = 10.0) -> None:
        """Kill what is left, wait until empty and rmdir every directory. Idempotent.

        Raises:
            SetupError: a directory could not be removed (the message names it).
        """
        if self._removed:
            return
        io = self.layout.io
        gone = self._rmdir_empty()
        if not gone:
            self.kill(timeout)
        deadline = io.monotonic() + timeout
        for d in () if gone else reversed(self.dirs):
            while True:
                try:
                    io.rmdir(d.path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    # EBUSY while the last tasks finish exiting: retry until the deadline.
                    if not is_busy(exc) or io.monotonic() > deadline:
                        raise SetupError(
                            "cgroup-remove", f"rmdir({d.path!r}): {exc.strerror}"
                        ) from exc
                    io.sleep(0.001)
        remove_parents(self.made_parents, io)
        if self._usage is not None:
            if self._usage[2]:
                io.close(self._usage[0])
            self._usage = None
        self._close_kept()
        self._removed = True
        log.debug("cgroup leaf removed", extra={"run_id": self.run_id})


# (hierarchy, controller) -> names of the files its stats read (Leaf.keep_open).
_STAT_FILES: dict[tuple[Hierarchy, str], tuple[str, ...]] = {}


class _Recording(CgroupIO):
    """Reads through ``io``, noting each path read (see :meth:`Leaf.keep_open`)."""

    def __init__(self, io: CgroupIO) -> None:
        self.io = io
        self.paths: list[str] = []

    def read(self, path: str) -> str:
        text = self.io.read(path)
        self.paths.append(path)
        return text

    def exists(self, path: str) -> bool:
        return self.io.exists(path)

    def entries(self, path: str) -> list[str]:
        return self.io.entries(path)


class _Kept(CgroupIO):
    """``io`` whose reads of the files kept open are preads of their fds."""

    def __init__(self, io: CgroupIO, kept: dict[str, int]) -> None:
        self.io, self.kept = io, kept

    def read(self, path: str) -> str:
        fd = self.kept.get(path)
        if fd is None:
            return self.io.read(path)
        return self.io.pread_all(fd)

    def exists(self, path: str) -> bool:
        return path in self.kept or self.io.exists(path)

    def entries(self, path: str) -> list[str]:
        return self.io.entries(path)


def _check_name(run_id: str, prefix: str) -> str:
    if not _RUN_ID.match(run_id) or not re.fullmatch(r"[A-Za-z0-9_.-]+", prefix):
        raise SetupError(
            "cgroup",
            f"run id {run_id!r} / prefix {prefix!r}: use letters, "
            "digits, '_', '.', '-' (at most 64)",
        )
    return prefix + run_id


def _off(controller: str, why: str, limits: CgroupLimits) -> ControllerReport:
    requested = {
        "memory": limits.memory is not None,
        "pids": limits.pids is not None,
        "cpu": limits.cpu_quota is not None or limits.cpu_weight is not None,
        "cpuset": limits.cpuset is not None,
        "io": bool(limits.io),
        "hugetlb": bool(limits.hugetlb),
        "devices": True,
        "net_cls": limits.net_classid is not None,
        "net_prio": bool(limits.net_prio),
    }.get(controller, False)
    return ControllerReport(
        controller, State.OFF, ("requested limit NOT enforced: " if requested else "") + why
    )


def _group(
    layout: CgroupLayout, needed: set[str], off: dict[str, str], limits: CgroupLimits
) -> dict[Hierarchy, set[str]]:
    """Controllers per hierarchy; unavailable ones go to ``off`` with the reason."""
    by_h: dict[Hierarchy, set[str]] = {}
    for c in CONTROLLERS:
        if c not in needed:
            continue
        h = layout.placement.get(c)
        if h is None:
            off[c] = layout.missing.get(c, "no hierarchy holds it")
        else:
            by_h.setdefault(h, set()).add(c)
    for h, ctrls in by_h.items():
        for c, why in _BACKENDS[h.version].prepare_parent(layout.io, h, ctrls).items():
            off[c] = why
            ctrls.discard(c)
    return {h: c for h, c in by_h.items() if c}


def _ordered(by_h: dict[Hierarchy, set[str]]) -> list[Hierarchy]:
    """The hierarchy that kills first (freezer), then by controller order."""
    rank = {c: i for i, c in enumerate(CONTROLLERS)}
    return sorted(by_h, key=lambda h: min(rank[c] for c in by_h[h]))


def _build(
    layout: CgroupLayout,
    name: str,
    by_h: dict[Hierarchy, set[str]],
    limits: CgroupLimits,
    required: set[str],
    off: dict[str, str],
    dirs: list[LeafDir],
    at: str | None = None,
) -> tuple[dict[str, LeafDir], list[ControllerReport]]:
    io, placement, reports = layout.io, {}, []
    for h in _ordered(by_h):
        assert h.parent is not None
        d = LeafDir(h, os.path.join(h.parent, name))
        try:
            io.mkdir(d.path)
        except FileExistsError:
            raise SetupError(
                "cgroup",
                f"linux.cgroupsPath {at!r}: {d.path} exists already (another container's "
                "cgroup, or a leftover: delete that container with --force)"
                if at is not None
                else f"{d.path} already exists: a leftover of an earlier "
                "run with this id? remove it with sweep()",
            ) from None
        dirs.append(d)
        d.backend.init_leaf(io, h, d.path, by_h[h])
        for c in sorted(by_h[h], key=CONTROLLERS.index):
            try:
                reports.append(d.backend.apply(io, c, d.path, limits))
                placement[c] = d
            except OSError as exc:
                if c in required:
                    raise SetupError(
                        "cgroup", f"{c}: writing its limits in {d.path} failed: {exc}"
                    ) from exc
                off[c] = f"writing its limits in {d.path} failed: {exc}"
    return placement, reports


def create(
    layout: CgroupLayout,
    run_id: str,
    limits: CgroupLimits,
    required: set[str] | frozenset[str] = frozenset(),
    *,
    prefix: str = DEFAULT_PREFIX,
    at: str | None = None,
) -> Leaf:
    """Make the run's leaf in every hierarchy it needs and write the limits.

    Args:
        layout: from :func:`~sandbox.cgroups.detect.detect`.
        run_id: unique per run (letters, digits, ``_.-``); the leaf is ``prefix + run_id``.
        limits: what to enforce.
        required: controllers that must be enforced (names from
            ``model.CONTROLLERS``); any other one that is unavailable is
            reported ``off`` with the reason (and logged at WARNING).
        at: an engine's cgroup path (``linux.cgroupsPath``, checked by
            :func:`~sandbox.cgroups.place.check_path`): the leaf is made exactly
            there in each hierarchy (:mod:`sandbox.cgroups.place`), not as
            ``prefix + run_id`` under the delegated parent.

    Raises:
        SetupError: a required controller is unavailable or its limits cannot be
            written, no hierarchy has a usable parent, or the leaf exists already.
            The message says how to fix it. Nothing is left behind.
    """
    name = _check_name(run_id, prefix)
    if unknown := set(required) - set(CONTROLLERS):
        raise SetupError(
            "cgroup",
            f"unknown controllers {sorted(unknown)}: use {', '.join(CONTROLLERS)} (io, not blkio)",
        )
    needed = set(limits.needs()) | set(required)
    off: dict[str, str] = {}
    made: list[str] = []
    if at is not None:
        try:
            at = place.check_path(at)
        except place.CgroupPathError as e:
            raise SetupError("cgroup", f"linux.cgroupsPath: {e}") from None
        wanted: dict[Hierarchy, set[str]] = {}
        for c in needed:
            if c in layout.placement:
                wanted.setdefault(layout.placement[c], set()).add(c)
        layout, name, made = place.prepare(layout, at, wanted)
    try:
        return _create(layout, run_id, name, limits, set(required), needed, off, made, at)
    except BaseException:
        remove_parents(made, layout.io)
        raise


def _create(
    layout: CgroupLayout,
    run_id: str,
    name: str,
    limits: CgroupLimits,
    required: set[str],
    needed: set[str],
    off: dict[str, str],
    made: list[str],
    at: str | None,
) -> Leaf:
    by_h = _group(layout, needed, off, limits)
    if missing := {c: off[c] for c in sorted(off) if c in required}:
        raise SetupError(
            "cgroup",
            "required controllers unavailable: "
            + "; ".join(f"{c}: {why}" for c, why in missing.items()),
        )
    if not by_h:
        raise SetupError(
            "cgroup",
            "no cgroup hierarchy has a usable parent for the run's "
            "leaf: "
            + ("; ".join(f"{c}: {w}" for c, w in off.items()) or "no cgroup filesystem is mounted"),
        )
    dirs: list[LeafDir] = []
    try:
        placement, reports = _build(layout, name, by_h, limits, required, off, dirs, at)
    except BaseException:
        for d in reversed(dirs):
            try:
                layout.io.rmdir(d.path)
            except OSError as exc:
                log.error("cgroup rollback: rmdir(%r): %s", d.path, exc.strerror)
        raise
    for c in ("net_cls", "net_prio"):
        if c not in needed:
            off[c] = (
                "mounted, nothing requested"
                if c in layout.placement
                else layout.missing.get(c, "unavailable")
            )
    for c, why in off.items():
        if c in needed:
            log.warning("cgroup controller %s off: %s", c, why, extra={"run_id": run_id})
        reports.append(_off(c, why, limits))
    order = {c: i for i, c in enumerate(CONTROLLERS)}
    reports.sort(key=lambda r: order[r.controller])
    return Leaf(layout, run_id, name, dirs, placement, reports, made)


def remove_parents(made: Sequence[str], io: CgroupIO) -> None:
    """rmdir the directories made above an engine-placed leaf, innermost first, while
    empty; one still holding a sibling's cgroup (EBUSY) or gone is left as it is.
    Never kills anything in them: only the leaf is ours."""
    for d in reversed(made):
        try:
            io.rmdir(d)
        except OSError as exc:
            log.debug("cgroup parent %s kept: %s", d, exc.strerror)


def sweep(layout: CgroupLayout, prefix: str, is_stale: Callable[[str], bool]) -> list[str]:
    """Remove leftover leaves ``prefix + run_id`` for which ``is_stale(run_id)``.

    Looks only in the delegated parents of ``layout``. Returns the run ids
    removed. Raises SetupError (from :meth:`Leaf.remove`) if one cannot be.
    """
    _check_name("x", prefix)
    found: dict[str, list[LeafDir]] = {}
    for h in layout.hierarchies:
        if h.parent is None:
            continue
        for entry in sorted(layout.io.listdir(h.parent)):
            if entry.startswith(prefix) and _RUN_ID.match(entry[len(prefix) :]):
                found.setdefault(entry[len(prefix) :], []).append(
                    LeafDir(h, os.path.join(h.parent, entry))
                )
    removed = []
    for run_id, dirs in sorted(found.items()):
        if not is_stale(run_id):
            continue
        placement = {c: d for c, h in layout.placement.items() for d in dirs if d.hierarchy == h}
        killer = placement.get("freezer")
        dirs.sort(key=lambda d: d is not killer)
        Leaf(layout, run_id, prefix + run_id, dirs, placement, ()).remove()
        removed.append(run_id)
        log.info("swept stale cgroup leaf %s%s", prefix, run_id, extra={"run_id": run_id})
    return removed


__all__ = [
    "DEFAULT_PREFIX",
    "Leaf",
    "LeafDir",
    "create",
    "join_with_fds",
    "remove_dirs",
    "remove_parents",
    "sweep",
]


def remove_dirs(dirs: Sequence[str], timeout: float = 5.0, io: CgroupIO | None = None) -> None:
    """Remove leaf directories known only by their paths, deepest first. Idempotent.

    For the launcher's watchdog, which holds no :class:`Leaf` once its client
    died: the same kill (pids pinned before the signal) and busy-retrying
    rmdir as :meth:`Leaf.remove`. A directory it cannot empty or remove is
    logged and left to the next supervisor's sweep.
    """
    io = io or CgroupIO()
    deadline = io.monotonic() + timeout
    for d in sorted(dirs, key=lambda p: -p.count("/")):
        try:
            _thaw(io, d)  # a paused container's tasks die only once thawed (v1)
            kill_loop(io, d, deadline)
            while True:
                try:
                    io.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if not is_busy(exc) or io.monotonic() > deadline:
                        raise
                    io.sleep(0.001)
        except (OSError, TimeoutError) as exc:
            log.warning("cgroup leaf %s left for the sweep: %s", d, exc)


def _thaw(io: CgroupIO, d: str) -> None:
    """Thaw a v1 freezer leaf (v2's cgroup.kill and SIGKILL reach frozen tasks)."""
    state = os.path.join(d, "freezer.state")
    try:
        if io.read(state).strip() != "THAWED":
            io.write(state, "THAWED")
    except OSError:
        pass

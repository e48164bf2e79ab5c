"""The acquire stage: the per-run resources a compiled, verified run needs (supervisor side).

In order, each registered for release in reverse: the run id and its run
lock (held for the run's life; a later supervisor's sweep removes what a
killed one left), the default image pinned for the run, a host id slot
(root) or the caller's own ids (rootless), the files staged for /box, the
cgroup leaf with its limits and the fds the payload joins it through, then,
once the fail-closed check has the cgroup layer's state, the AppArmor profile
loaded (held) for the run. The result is the final LaunchPlan and the
:class:`Resources` that ``runner.release`` gives back.

Needs root for slots, leaves and profile loads (or a delegated cgroup and the
rootless mode). Nothing here decides policy: the compile stage did.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

from sandbox import ablation, cgroups, enforce
from sandbox.cgroups import CgroupLayout
from sandbox.compile import CgroupRequest, CompiledRun
from sandbox.errors import PolicyError, SetupError
from sandbox.fs.hostpath import stage_source
from sandbox.fs.image import ensure as ensure_image
from sandbox.fs.ops import MountPlan
from sandbox.fs.staging import (
    DEFAULT_MODE,
    BoxFile,
    File,
    FileContent,
    Symlink,
    check_link_target,
    check_mode,
    check_name,
    order,
)
from sandbox.host import HostFacts
from sandbox.layers import Enforcement
from sandbox.paths import runtime_dir, staging_dir, state_dir
from sandbox.plan import LaunchPlan
from sandbox.runner import state
from sandbox.runner.accounting import RECORD_CONTROLLERS
from sandbox.runner.pool import Foreground, LeafPool

log = logging.getLogger(__name__)


@dataclass
class Resources:
    """What one run holds, released in reverse order by ``runner.release``."""

    plan: LaunchPlan  # the final plan: run id, host ids, staged files, cgroup join
    states: dict[str, Enforcement]  # the enforcement record, cgroups included
    lock: state.RunLock
    stack: ExitStack
    leaf: cgroups.Leaf | None = None
    cgroup_join: list[int] = field(default_factory=list)
    cgroup_dirs: list[str] = field(default_factory=list)
    staged_dir: str | None = None  # the run's private copies of bytes staged in /box
    # Run after the stack, last of all: the launcher forgets the run only once
    # everything it would remove for us is gone (runner.release).
    after: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class PooledLeaf:
    """A run id, its held lock, and a leaf made for one request ahead of its run."""

    run_id: str
    lock: state.RunLock
    request: CgroupRequest
    leaf: cgroups.Leaf
    join: list[int]
    forget: Callable[[], None]  # ends the launcher's hold on the run id


LeafPoolT = LeafPool["PoolKey", PooledLeaf]
# Register what a pooled entry must have removed should we die (the launcher's hold).
Hold = Callable[[str, dict[str, list[str]]], None]
Release = Callable[[str], None]


class Acquirer:
    """Acquires runs' resources on one host (the cgroup layout is detected once)."""

    def __init__(self, host: HostFacts) -> None:
        self.host = host
        self._layout: CgroupLayout | None = None
        self._aa_swept = False

    def cgroup_layout(self) -> CgroupLayout:
        """The host's hierarchies and delegated parents (detected once)."""
        if self._layout is None:
            self._layout = cgroups.detect()
        return self._layout

    def sweep(self) -> None:
        """Remove leaves, run locks and staged files of runs whose supervisor died.

        A run is dead when its lock is free, or gone: the launcher's watchdog
        removes the lock of a killed supervisor's run, so staged files are swept
        by their own name too (issue 13 item 5).
        """
        try:
            cgroups.sweep(self.cgroup_layout(), leaf_prefix(), run_is_stale)
        except SetupError as e:
            log.warning("sweep of stale cgroup leaves: %s", e)
        state.sweep(_remove_staged)
        state.sweep_orphans(".files", _remove_staged)

    def make_pool(
        self,
        hold: Hold,
        release: Release,
        size: int,
        keys: int = 4,
        foreground: Foreground | None = None,
    ) -> LeafPoolT:
        """A pool of leaves made ahead (``runner.pool``) for this host's runs.

        ``hold(run_id, cleanup)`` registers an entry's leaf directories and lock
        with the launcher before they exist, so that its watchdog removes them
        should we be killed; ``release(run_id)`` ends that once they are gone.
        """

        def make(key: PoolKey) -> PooledLeaf:
            return self._make_pooled(key, hold, release)

        return LeafPool(make, _discard_pooled, size, keys, foreground)

    def _make_pooled(self, key: PoolKey, hold: Hold, release: Release) -> PooledLeaf:
        req = key.request
        layout = self.cgroup_layout()
        run_id = state.new_run_id()
        lock = state.acquire_run_lock(run_id)
        name = leaf_prefix() + run_id
        # Every hierarchy it could be made in (a superset), before any exists.
        dirs = [os.path.join(h.parent, name) for h in layout.hierarchies if h.parent]
        try:
            hold(run_id, {"cgroup_dirs": dirs, "files": [str(lock.path)]})
        except BaseException:
            lock.release()
            raise
        forget = functools.partial(release, run_id)
        try:
            leaf = cgroups.create(
                layout, run_id, req.limits, set(req.required), prefix=leaf_prefix()
            )
        except BaseException:
            lock.release()
            forget()
            raise
        try:
            fds = leaf.open_join_fds()
        except BaseException:
            leaf.remove()
            lock.release()
            forget()
            raise
        try:
            leaf.keep_open(RECORD_CONTROLLERS)  # the record's reads: preads on the run's path
        except OSError as e:
            log.debug("leaf pool: the record's files not kept open: %s", e)
        return PooledLeaf(run_id, lock, req, leaf, fds, forget)

    def acquire(
        self,
        compiled: CompiledRun,
        files: tuple[tuple[str, FileContent], ...] = (),
        slot: int | None = None,
        pool: LeafPoolT | None = None,
    ) -> Resources:
        """Take every resource of one run; on failure, release what was taken and raise.

        ``slot``: a host uid of the slot range that the caller holds (``state.id_slot``)
        and keeps for the run, as isolate's boxes keep theirs; otherwise the run
        takes a free one.

        Raises:
            SetupError: a resource could not be made (state dir, slot, leaf, profile load).
            UnsupportedError: a required layer (cgroups) cannot be enforced here.
            PolicyError: a staged file's name, mode or host path is refused (a
                symlink on the way that a payload could have planted, not a
                regular file or a symlink).
        """
        stack = ExitStack()
        pooled = None
        if pool is not None and compiled.cgroup is not None and compiled.cgroup.path is None:
            pooled = pool.take(pool_key(compiled.cgroup))
            if pooled is not None and pooled.request != compiled.cgroup:  # never another's limits
                _discard_pooled(pooled)
                pooled = None
        try:
            return self._acquire(compiled, files, stack, slot, pooled)
        except BaseException:
            stack.close()
            raise

    def _acquire(
        self,
        compiled: CompiledRun,
        files: tuple[tuple[str, FileContent], ...],
        stack: ExitStack,
        held_slot: int | None = None,
        pooled: PooledLeaf | None = None,
    ) -> Resources:
        if pooled is None:
            run_id = state.new_run_id()
            lock = state.acquire_run_lock(run_id)
        else:  # the launcher's hold ends with the run's own record (runner.release)
            run_id, lock = pooled.run_id, pooled.lock
            stack.callback(pooled.forget)
        stack.callback(lock.release)
        if compiled.image is not None:
            spec, key = compiled.image
            _, image_lock = ensure_image(spec, state_dir(), key)  # pinned for the run
            stack.callback(os.close, image_lock)
        if self.host.is_root and held_slot is not None:  # a slot the caller holds (a box)
            host_ids = (held_slot, held_slot)
        elif self.host.is_root:  # a run slot of its own, never the caller's, never an identity map
            slot = stack.enter_context(state.id_slot())
            host_ids = (slot, slot)
        else:  # the caller's own ids: one uid and one gid are all it may map
            host_ids = (os.geteuid(), os.getegid())
        mounts = _with_staging(compiled)
        if files:
            mounts = replace(mounts, copy_in=_stage_files(files, run_id, stack))
        res = Resources(
            plan=compiled.plan,
            states=dict(compiled.states),
            lock=lock,
            stack=stack,
            staged_dir=str(_staged_dir(run_id)) if files else None,
        )
        if pooled is not None:
            self._take_leaf(pooled, compiled.policy.limits.memory, res)
        elif compiled.cgroup is not None:
            self._cgroups(compiled.cgroup, compiled.policy.limits.memory, run_id, res)
        # Warnings about degraded layers only now, when the run is sure to go ahead.
        enforce.check(compiled.policy, res.states, compiled.ablate, self.host)
        if compiled.apparmor is not None:
            self._apparmor(compiled, stack)
        plan = replace(
            compiled.plan,
            run_id=run_id,
            host_uid=host_ids[0],
            host_gid=host_ids[1],
            mounts=mounts,
            join_cgroup=bool(res.cgroup_join),
        )
        # Test hook only (--test-ablate): weakens the verified plan just before launch.
        res.plan = ablation.apply(plan, compiled.ablate)
        return res

    def _apparmor(self, compiled: CompiledRun, stack: ExitStack) -> None:
        from sandbox.apparmor import lifetime

        assert compiled.apparmor is not None
        if not self._aa_swept:
            lifetime.sweep()
            self._aa_swept = True
        held = lifetime.hold(compiled.apparmor)
        stack.callback(lifetime.release, held)

    def _cgroups(self, req: CgroupRequest, memory: int | None, run_id: str, res: Resources) -> None:
        try:
            leaf = cgroups.create(
                self.cgroup_layout(),
                run_id,
                req.limits,
                set(req.required),
                prefix=leaf_prefix(),
                at=req.path,
            )
        except SetupError as e:
            if not req.degradable:
                raise
            res.states["cgroups"] = Enforcement("off", str(e))
            return
        res.stack.callback(leaf.remove)
        fds = leaf.open_join_fds()
        res.stack.callback(_close_all, fds)
        res.leaf = leaf
        res.cgroup_join = fds
        res.cgroup_dirs = [d.path for d in leaf.dirs]
        res.states["cgroups"] = leaf_state(leaf, req, memory)

    def _take_leaf(self, pooled: PooledLeaf, memory: int | None, res: Resources) -> None:
        """A pooled leaf becomes the run's, released with it like one made on the path."""
        res.stack.callback(pooled.leaf.remove)
        res.stack.callback(_close_all, pooled.join)
        res.leaf = pooled.leaf
        res.cgroup_join = pooled.join
        res.cgroup_dirs = [d.path for d in pooled.leaf.dirs]
        res.states["cgroups"] = leaf_state(pooled.leaf, pooled.request, memory)

    def dry_cgroups(self, req: CgroupRequest, memory: int | None, run_id: str) -> Enforcement:
        """The cgroups layer's state for a request: its leaf made and removed at once.

        For ``sandbox doctor``: the same decision a run gets, from the same
        code. A leaf left by a killed doctor has no run lock, so the next
        supervisor's sweep removes it.
        """
        try:
            leaf = cgroups.create(
                self.cgroup_layout(), run_id, req.limits, set(req.required), prefix=leaf_prefix()
            )
        except SetupError as e:
            return Enforcement("off", str(e))
        try:
            return leaf_state(leaf, req, memory)
        finally:
            leaf.remove()


@dataclass(frozen=True, slots=True)
class PoolKey:
    """The pool's key of a request: its full text (limits, required controllers).

    Requests hold mappings (not hashable); equal text means equal values, and
    the take compares the requests themselves all the same.
    """

    text: str
    request: CgroupRequest = field(compare=False, hash=False)


def pool_key(req: CgroupRequest) -> PoolKey:
    """The key ``req``'s runs take pooled leaves by."""
    return PoolKey(repr(req), req)


def _discard_pooled(p: PooledLeaf) -> None:
    """Give back a pooled entry nobody took, in release order (the hold last)."""
    try:
        _close_all(p.join)
        p.leaf.remove()
        p.lock.release()
    finally:
        p.forget()


def leaf_state(leaf: cgroups.Leaf, req: CgroupRequest, memory: int | None) -> Enforcement:
    """The record's cgroups entry: full, or partial naming the controllers not in force."""
    wanted = set(req.required) | set(req.limits.needs())
    partial = [r for r in leaf.report if r.state != cgroups.State.FULL and r.controller in wanted]
    detail = "; ".join(f"{r.controller}: {r.state.value} ({r.detail})" for r in partial)
    enforced = ", ".join(r.controller for r in leaf.report if r.state == cgroups.State.FULL)
    charged = (
        "; memory counts the run's writes to /box and /tmp (tmpfs upper layer)"
        if memory is not None
        else ""
    )
    return Enforcement(
        "partial" if partial else "full", (detail or f"leaf {leaf.name}: {enforced}") + charged
    )


def _stage_files(
    files: tuple[tuple[str, FileContent], ...], run_id: str, stack: ExitStack
) -> tuple[BoxFile, ...]:
    """The plan's /box entries: bytes through a private temp dir, host paths inspected
    without following a planted symlink (see ``sandbox.fs.staging`` and ``hostpath``)."""
    entries: list[BoxFile] = []
    tmp = _staged_dir(run_id)
    stack.callback(shutil.rmtree, tmp, True)
    for i, (name, content) in enumerate(files):
        check_name(name)
        mode = content.mode if isinstance(content, File) else None
        if isinstance(content, File):
            content = content.content
        if isinstance(content, Symlink):
            entries.append(BoxFile(name, link=check_link_target(name, content.target)))
        elif isinstance(content, bytes):
            tmp.mkdir(mode=0o700, exist_ok=True)
            path = tmp / str(i)
            path.write_bytes(content)
            bits = DEFAULT_MODE if mode is None else check_mode(name, mode)
            entries.append(BoxFile(name, source=str(path), mode=bits))
        elif isinstance(content, str | os.PathLike):
            entries.append(stage_source(name, os.fspath(content), mode))
        else:
            raise PolicyError(
                f"file for /box/{name}: {type(content).__name__} is not bytes, a path, "
                "a File or a Symlink"
            )
    return order(entries)


def _with_staging(compiled: CompiledRun) -> MountPlan:
    """The compiled mount plan with the host's staging directory (made once per
    compiled run: a judge's runs of one program share it)."""
    staging = str(staging_dir())
    hit: tuple[str, MountPlan] | None = compiled._memo.get("mounts")
    if hit is None or hit[0] != staging:
        hit = compiled._memo["mounts"] = (staging, replace(compiled.plan.mounts, staging=staging))
    return hit[1]


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _staged_dir(run_id: str) -> Path:
    return runtime_dir() / "runs" / f"{run_id}.files"


def _remove_staged(run_id: str) -> None:
    """The sweep's removal of a dead run's staged files (its leaf goes with the cgroup sweep)."""
    shutil.rmtree(_staged_dir(run_id), ignore_errors=True)


def leaf_prefix() -> str:
    """``sbx-<tag>-``: the leaves of supervisors whose run locks live in this runtime
    directory (``tag``: its own random tag, :func:`state.leaf_tag`, kept beside them). A sweep looks
    only at its own tag: a supervisor with another runtime directory
    (``$SANDBOX_RUNTIME_DIR``, another judge, a private /run) cannot see those
    runs' locks, and once took their live leaves for stale."""
    return f"{cgroups.DEFAULT_PREFIX}{state.leaf_tag()}-"


def run_is_stale(run_id: str) -> bool:
    """A leaf's run is dead when its lock file is gone or nobody holds the lock."""
    path = runtime_dir() / "runs" / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True

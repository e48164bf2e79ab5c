"""Profile lifetime: load once per host, hold while a run uses it, remove when none does.

Supervisor side. Needs root: CAP_MAC_ADMIN to load and remove profiles, and
the lock directory is root-owned with mode 0700.

Why: removing a profile that tasks still use leaves those tasks *unconfined*
(the kernel redirects them to ``unconfined``; verified in the kvm-run guest),
and a stale ``exec <name>`` written by a child would also land on unconfined.
So a profile is removed only when no run holds it.

Protocol, one lock file per profile name (``<dir>/sbx_<hash>.lock``):

- **hold**: ``open(O_CREAT)`` → ``flock(LOCK_SH)`` (waits while a remover has
  ``LOCK_EX``) → check that the path still names the inode we locked (a remover
  unlinks it; then start again) → load the profile if the kernel lacks it →
  keep the fd open for the whole run.
- **release**: ``flock(LOCK_EX | LOCK_NB)``. If that fails another run holds
  the profile: close and leave. If it succeeds nobody does: check that no live
  task is confined by it, remove it from the kernel, *then* unlink the lock
  file (in this order, so a new holder either waits for us or finds the
  profile gone and loads it again), then close.
- **sweep**: the release path for every lock file and every ``sbx_`` profile
  in the kernel that nobody holds; run it when the supervisor starts.

Surviving a SIGKILLed supervisor: a flock belongs to the open file
description and the kernel drops it when the last fd to it closes, which
process death does. Lock fds are O_CLOEXEC and must never reach the payload:
a payload could ``flock(LOCK_UN)`` an inherited one and drop the hold.
"""

from __future__ import annotations

import enum
import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from sandbox.apparmor.render import NAME_RE, AppArmorArtifact
from sandbox.errors import SandboxInternalError, SetupError

log = logging.getLogger(__name__)

LOCK_DIR = Path("/run/sandbox/apparmor")
PROC = Path("/proc")
_MAX_RETRIES = 64


class ProfileStore(Protocol):
    """Where profiles live: the kernel (``parser.KernelProfiles``) or a test fake."""

    def is_loaded(self, name: str) -> bool:
        """Whether a profile of this name is loaded."""

    def names(self) -> set[str]:
        """All loaded profile names."""

    def load(self, text: str) -> None:
        """Load or replace the profile in ``text``."""

    def remove(self, name: str) -> None:
        """Remove the profile; a missing one is not an error."""


class Released(enum.StrEnum):
    """What :func:`release` did."""

    SHARED = "kept: another run holds it"
    REMOVED = "removed from the kernel"
    TASKS_ALIVE = "kept: tasks are still confined by it"
    ALREADY = "this hold was already released"


def _label_names(label: str) -> set[str]:
    """Profile names in an ``attr/current`` label like ``a//&:ns:b (enforce)``."""
    label = label.strip()
    if label.endswith(")") and " (" in label:
        label = label[: label.rfind(" (")]
    names = set()
    for part in label.split("//&"):
        part = part.lstrip("&")
        if part.startswith(":") and part.count(":") >= 2:  # :namespace:name
            part = part.split(":", 2)[2].removeprefix("//")
        names.add(part)
    return names


def confined_tasks(name: str, proc: Path = PROC) -> list[int]:
    """Pids (visible in ``proc``) whose AppArmor label includes profile ``name``."""
    pids = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        for attr in ("attr/apparmor/current", "attr/current"):
            try:
                label = (proc / entry.name / attr).read_text()
            except OSError:
                continue
            if name in _label_names(label):
                pids.append(int(entry.name))
            break
    return pids


@dataclass(slots=True)
class ProfileHold:
    """A run's hold on a loaded profile; a context manager that releases on exit."""

    name: str
    path: Path
    fd: int
    lifetime: Lifetime = field(repr=False)

    @property
    def is_held(self) -> bool:
        """True until released."""
        return self.fd >= 0

    def __enter__(self) -> ProfileHold:
        """The hold itself."""
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Release (removing the profile if this was the last holder)."""
        self.lifetime.release(self)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class Lifetime:
    """Hold, release and sweep profiles through lock files in ``lock_dir``.

    One ``lock_dir`` per host: every supervisor on the host must use the same
    one, or they cannot see each other's holds.
    """

    def __init__(
        self,
        store: ProfileStore,
        lock_dir: Path = LOCK_DIR,
        confined: Callable[[str], Sequence[int]] = confined_tasks,
    ) -> None:
        """Use this profile store, lock directory and confined-task scanner."""
        self.store = store
        self.lock_dir = lock_dir
        self.confined = confined

    def _ensure_dir(self) -> None:
        try:
            self.lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.lock_dir, follow_symlinks=False)
        except OSError as e:
            raise SetupError("apparmor", f"mkdir({str(self.lock_dir)!r}): {e.strerror}") from e
        if not os.path.isdir(self.lock_dir) or os.path.islink(self.lock_dir):
            raise SetupError("apparmor", f"{self.lock_dir} is not a directory")
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise SetupError(
                "apparmor",
                f"{self.lock_dir} must be owned by uid {os.geteuid()} with mode 0700 "
                f"(found uid {st.st_uid}, mode {st.st_mode & 0o7777:04o}); fix or remove it",
            )

    def _lock_path(self, name: str) -> Path:
        if not NAME_RE.match(name):
            raise SandboxInternalError(f"not a generated profile name: {name!r}")
        return self.lock_dir / f"{name}.lock"

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise SetupError("apparmor", f"open({str(path)!r}, O_CREAT): {e.strerror}") from e

    def hold(self, artifact: AppArmorArtifact) -> ProfileHold:
        """Take a shared hold on the artifact's profile, loading it if needed.

        Raises:
            SetupError: when the lock or the load fails (the hold is then released).
        """
        self._ensure_dir()
        path = self._lock_path(artifact.name)
        for _ in range(_MAX_RETRIES):
            fd = self._open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if _same_file(fd, path):
                    break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # a remover unlinked it while we waited: take the new file
        else:
            raise SetupError("apparmor", f"flock({str(path)!r}, LOCK_SH): kept losing the race")
        held = ProfileHold(name=artifact.name, path=path, fd=fd, lifetime=self)
        try:
            if not self.store.is_loaded(artifact.name):
                self.store.load(artifact.text)
                log.debug("apparmor: loaded %s", artifact.name)
        except BaseException as e:
            try:
                self.release(held)
            except SetupError as cleanup:
                e.add_note(f"while releasing after the failure: {cleanup}")
            raise
        return held

    def _remove_locked(self, name: str, fd: int, path: Path) -> Released:
        """With LOCK_EX held on ``fd``: remove the profile, then its lock file."""
        if not _same_file(fd, path):
            return Released.SHARED  # someone replaced the file: it is theirs now
        pids = self.confined(name)
        if pids:
            log.warning(
                "apparmor: profile %s has no holder but tasks %s are confined by it; keeping it",
                name,
                list(pids)[:10],
            )
            return Released.TASKS_ALIVE
        self.store.remove(name)
        path.unlink()
        log.debug("apparmor: removed %s", name)
        return Released.REMOVED

    def release(self, held: ProfileHold) -> Released:
        """Drop a hold; remove the profile if no other run holds it.

        Idempotent. Call it only after every task of the run has exited.

        Raises:
            SetupError: when the kernel refuses the removal.
        """
        if held.fd < 0:
            return Released.ALREADY
        fd, held.fd = held.fd, -1
        try:
            try:
                # Not atomic (flock(2)): our shared lock may go first. Harmless,
                # we are giving it up either way.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return Released.SHARED
            return self._remove_locked(held.name, fd, held.path)
        finally:
            os.close(fd)

    def sweep(self) -> tuple[str, ...]:
        """Remove generated profiles nobody holds (holders that died included).

        Returns the names removed.

        Raises:
            SetupError: when the lock directory or the kernel refuses.
        """
        self._ensure_dir()
        names = {p.name.removesuffix(".lock") for p in self.lock_dir.glob("sbx_*.lock")}
        names |= {n for n in self.store.names() if NAME_RE.match(n)}
        removed = []
        for name in sorted(n for n in names if NAME_RE.match(n)):
            path = self._lock_path(name)
            fd = self._open(path)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if self._remove_locked(name, fd, path) is Released.REMOVED:
                    removed.append(name)
            finally:
                os.close(fd)
        if removed:
            log.info("apparmor: swept %d unused profiles", len(removed))
        return tuple(removed)


def default_lifetime() -> Lifetime:
    """The host's lifetime manager: the kernel's profiles, locks in :data:`LOCK_DIR`."""
    from sandbox.apparmor.parser import KernelProfiles

    return Lifetime(KernelProfiles())


def hold(artifact: AppArmorArtifact, lifetime: Lifetime | None = None) -> ProfileHold:
    """Hold (and load if needed) the artifact's profile for one run. See :meth:`Lifetime.hold`."""
    return (lifetime or default_lifetime()).hold(artifact)


def release(held: ProfileHold) -> Released:
    """Release a hold. See :meth:`Lifetime.release`."""
    return held.lifetime.release(held)


def sweep(lifetime: Lifetime | None = None) -> tuple[str, ...]:
    """Remove generated profiles no run holds. See :meth:`Lifetime.sweep`."""
    return (lifetime or default_lifetime()).sweep()

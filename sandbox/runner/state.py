"""Per-run resources that outlive a process: run ids, run locks, id slots, the sweep.

Every per-run resource (cgroup leaf, lock file) carries the run id. A run
holds an exclusive flock on ``<runtime>/runs/<run_id>.lock`` for its whole
life; the kernel drops it when the holder dies, even by SIGKILL. The sweep
at start removes only the resources of runs whose lock is free. Id slots
(root mode) are the same idea: ``slots/<n>.lock`` held for the run gives it
host uid/gid ``base + n``, never shared with a concurrent run (isolate's boxes).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SetupError
from sandbox.paths import runtime_dir, staging_dir

UID_RANGE_ENV = "SANDBOX_UID_RANGE"
DEFAULT_UID_RANGE = (61000, 61999)


# Directories this process made or checked (owner, mode): they stay ours, since
# nobody else can rename or replace a directory of ours (its parent is ours, or
# sticky like /tmp), so a run does not check them again.
_CHECKED: set[tuple[str, int]] = set()


def _private_dir(path: Path) -> Path:
    uid = os.geteuid()
    if (str(path), uid) in _CHECKED:
        return path
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != uid or st.st_mode & 0o022:
        raise SetupError("state", f"{path} must be owned by uid {uid} and not group/world-writable")
    _CHECKED.add((str(path), uid))
    return path


def _recheck(path: Path) -> None:
    """Make and check ``path`` again (it was removed since :func:`_private_dir`)."""
    _CHECKED.discard((str(path), os.geteuid()))
    _private_dir(path)


def ensure_staging() -> Path:
    """Create the staging mount point (0755) if it is missing; returns it.

    It must exist on the host, and nothing else makes it on a fresh one.
    0755: the container's init (root of its user namespace only) must reach it.
    """
    path = staging_dir()
    if path.is_dir():
        return path
    if os.geteuid() != 0:
        _private_dir(runtime_dir())  # ours and 0700 before anything is made inside it
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.mkdir(mode=0o755, exist_ok=True)
        os.chmod(path, 0o755)  # noqa: S103 - mkdir applies the umask; a mount point only
    except OSError as e:
        raise SetupError("state", f"mkdir({str(path)!r}): {e.strerror}") from e
    return path


def new_run_id() -> str:
    """Sortable, unique, safe as a file and cgroup name."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


@dataclass
class RunLock:
    """The flock held for one run's life (see module docstring)."""

    run_id: str
    path: Path
    fd: int

    def release(self) -> None:
        """Unlink, then unlock: a sweeper never sees a free lock of a live run."""
        with suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)


_TAGS: dict[tuple[str, int, int], str] = {}
_TAG = re.compile(r"^[0-9a-f]{8}$")


def leaf_tag(runtime: Path | None = None) -> str:
    """This runtime directory's own random tag (``<runtime>/runs/leaf-tag``, made once).

    Supervisors whose run locks live in the same directory share it; one with
    another directory never has it, even at the same path (a private /run in
    a mount namespace, a container): a path's hash would be the same there.
    """
    where = _private_dir((runtime or runtime_dir()) / "runs")  # beside the locks it names
    st = where.stat()
    key = (str(where), st.st_dev, st.st_ino)
    if key in _TAGS:
        return _TAGS[key]
    path = where / "leaf-tag"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        # Whole or not at all: written beside it, then linked (a second supervisor
        # doing the same at once loses the link and reads the winner's).
        tmp = where / f"leaf-tag.{os.getpid()}.{secrets.token_hex(4)}"
        with open(tmp, "x") as f:
            f.write(secrets.token_hex(4))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as f:
        tag = f.read(64)
    if not _TAG.match(tag):
        raise SetupError("state", f"{path}: not a tag of 8 hex digits (remove it)")
    _TAGS[key] = tag
    return tag


def acquire_run_lock(run_id: str, runtime: Path | None = None) -> RunLock:
    """Create and lock ``runs/<run_id>.lock`` (and make sure the staging dir exists).

    Between the file's creation and the flock a concurrent sweep sees a free
    lock and unlinks it as a dead run's: the lock is then made again until the
    file at the path is the one we hold (a lock on an unlinked file would let
    the next sweep take the live run's leaf).
    """
    ensure_staging()
    runs = _private_dir((runtime or runtime_dir()) / "runs")
    path = runs / f"{run_id}.lock"
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # the directory went since it was checked: again
            _recheck(runs)
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return RunLock(run_id, path, fd)
        except FileNotFoundError:
            pass
        os.close(fd)  # swept meanwhile: make it again
    raise SetupError("state", f"{path}: removed by a sweep each time it was made")


def uid_range() -> tuple[int, int]:
    """The reserved host id range for run slots (``SANDBOX_UID_RANGE=first-last``)."""
    raw = os.environ.get(UID_RANGE_ENV)
    if not raw:
        return DEFAULT_UID_RANGE
    try:
        lo, hi = (int(x) for x in raw.split("-", 1))
    except ValueError as e:
        raise SetupError("slot", f"{UID_RANGE_ENV}={raw!r}: expected FIRST-LAST") from e
    if not 0 < lo <= hi < 2**31:
        raise SetupError("slot", f"{UID_RANGE_ENV}={raw!r}: bad range")
    return lo, hi


@contextmanager
def id_slot(runtime: Path | None = None, prefer: int | None = None) -> Iterator[int]:
    """Hold a free slot of the reserved range for the block; yields its host uid (= gid).

    ``prefer``: an index tried first (modulo the range), so a caller such as an
    isolate box gets the same uid run after run while that slot is free.
    """
    lo, hi = uid_range()
    slots = _private_dir((runtime or runtime_dir()) / "slots")
    n = hi - lo + 1
    start = prefer % n if prefer is not None else secrets.randbelow(n)
    for i in range(n):
        uid = lo + (start + i) % n
        try:
            fd = os.open(slots / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:  # the directory went since it was checked: again
            _recheck(slots)
            fd = os.open(slots / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)
        return
    raise SetupError("slot", f"all {n} id slots in {lo}-{hi} are busy; widen {UID_RANGE_ENV}")


def sweep_orphans(
    suffix: str, remove_run: Callable[[str], None], runtime: Path | None = None
) -> list[str]:
    """Remove ``runs/<run_id><suffix>`` entries whose run lock is free or gone.

    A run makes its lock (and holds it) before anything else of its own, and
    removes everything else before its lock: an entry without a held lock
    belongs to a dead run.
    """
    runs = (runtime or runtime_dir()) / "runs"
    swept: list[str] = []
    try:
        entries = list(os.scandir(runs))
    except FileNotFoundError:
        return swept
    for e in entries:
        if not e.name.endswith(suffix):
            continue
        run_id = e.name.removesuffix(suffix)
        try:
            fd = os.open(runs / f"{run_id}.lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # alive
            remove_run(run_id)
            swept.append(run_id)
        finally:
            if fd >= 0:
                os.close(fd)
    return swept


def sweep(remove_run: Callable[[str], None], runtime: Path | None = None) -> list[str]:
    """Remove leftovers of dead runs (their lock is free); returns the run ids swept."""
    runs = (runtime or runtime_dir()) / "runs"
    swept: list[str] = []
    try:
        entries = list(os.scandir(runs))
    except FileNotFoundError:
        return swept
    for e in entries:
        if not e.name.endswith(".lock"):
            continue
        try:
            fd = os.open(e.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # alive
        run_id = e.name.removesuffix(".lock")
        try:
            remove_run(run_id)
            os.unlink(e.path)
            swept.append(run_id)
        finally:
            os.close(fd)
    return swept

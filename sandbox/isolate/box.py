"""isolate's box: its directory from ``--init`` to ``--cleanup``, its lock, its directory rules.

Supervisor side, root (or the caller's own ids rootless). A box ``N`` is
``<root>/N`` (root: ``/var/local/lib/isolate``, isolate's own default, or
``SANDBOX_ISOLATE_ROOT``) holding ``box/`` (bound read-write at ``/box``) and
``tmp/`` (``tmp`` rules: ``/tmp`` by default). Its state lives in the runtime
directory (``isolate/N``, gone at reboot as isolate's lock files are): who
owns it and whether it was made with ``--cg``. One process manages a box at a
time (a flock on that file).

Before a run the box's tree is handed to the run's uid and after it back to
its owner, as isolate does (``chowntree``): the walk never follows a symlink,
never leaves the tree, and removes files that are neither regular nor
directories unless ``--special-files``; the payload is dead by then (every
process of the run is killed before the supervisor returns), so nothing
changes under the walk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.paths import runtime_dir

ROOT_ENV = "SANDBOX_ISOLATE_ROOT"
DEFAULT_ROOT = "/var/local/lib/isolate"


class BoxError(Exception):
    """A failure of the sandbox itself (isolate's ``die``: status XX, exit 2)."""


def box_root() -> Path:
    """Where boxes live: ``SANDBOX_ISOLATE_ROOT``, else isolate's default (root) or the
    user's cache."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path(DEFAULT_ROOT)
    return Path.home() / ".cache" / "sandbox" / "isolate"


@dataclass
class BoxState:
    """What ``--init`` recorded: the box's owner and its control-group mode."""

    owner_uid: int
    owner_gid: int
    cg: bool


class Box:
    """Box ``box_id``: its paths, its lock and its state file."""

    def __init__(self, box_id: int) -> None:
        self.box_id = box_id
        self.dir = box_root() / str(box_id)
        self.box = self.dir / "box"
        self.tmp = self.dir / "tmp"
        # One state file per box of this root (the lock isolate keeps per box id).
        root = hashlib.sha256(str(box_root().resolve()).encode()).hexdigest()[:12]
        self.state_path = runtime_dir() / "isolate" / f"{root}.{box_id}"
        self._lock_fd = -1

    @contextlib.contextmanager
    def locked(self, wait: bool) -> Iterator[BoxState | None]:
        """Hold the box for the block; yields its state (None: never initialised).

        Raises:
            BoxError: another process holds it (without ``wait``).
        """
        self.state_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.state_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise BoxError("This box is currently in use by another process") from None
            self._lock_fd = fd
            yield self._read_state(fd)
        finally:
            self._lock_fd = -1
            os.close(fd)

    def _read_state(self, fd: int) -> BoxState | None:
        raw = os.pread(fd, 4096, 0)
        if not raw:
            return None
        try:
            d = json.loads(raw)
            return BoxState(int(d["owner_uid"]), int(d["owner_gid"]), bool(d["cg"]))
        except (ValueError, KeyError, TypeError):
            raise BoxError(f"Lock file {self.state_path} has incompatible format") from None

    def write_state(self, state: BoxState | None) -> None:
        """Record (or with None, forget) the box's state; the lock must be held."""
        assert self._lock_fd >= 0
        os.ftruncate(self._lock_fd, 0)
        if state is not None:
            body = {"owner_uid": state.owner_uid, "owner_gid": state.owner_gid, "cg": state.cg}
            os.pwrite(self._lock_fd, json.dumps(body).encode(), 0)

    def remove_tree(self) -> None:
        """Delete the box directory, however deep the payload made it.

        coreutils' ``rm -rf`` walks with fts by fd, without recursion limit, never
        following a symlink nor leaving the file system; ``shutil.rmtree`` recursed
        in Python and died on a 1200-deep tree (RecursionError, box half-removed).

        Raises:
            BoxError: what rm said, when the box could not be removed.
        """
        if self.dir.is_symlink():
            self.dir.unlink()
        elif self.dir.exists():
            p = subprocess.run(
                ["rm", "-rf", "--one-file-system", "--", str(self.dir)],
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode != 0:
                why = (p.stderr.strip().splitlines() or ["rm failed"])[-1]
                raise BoxError(f"Cannot remove {self.dir}: {why}")

    def create(self, owner: tuple[int, int]) -> None:
        """A fresh box directory: ``box/`` owned by the caller, 0700 (isolate's init)."""
        root = box_root()
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise BoxError(
                f"{root} must be a directory of uid {os.geteuid()}, not group/world-writable"
            )
        self.dir.mkdir(mode=0o755)
        self.box.mkdir(mode=0o700)
        self.tmp.mkdir(mode=0o755)
        os.chown(self.box, *owner)


def chowntree(top: Path, uid: int, gid: int, *, keep_special: bool) -> None:
    """Give ``top`` and everything below it to ``uid:gid`` (never through a symlink).

    Files that are neither regular files nor directories are removed unless
    ``keep_special`` (isolate's default). Iterative: a deep tree costs no stack.
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        first = os.open(top, flags)
    except FileNotFoundError:
        return
    os.fchown(first, uid, gid)
    stack = [first]
    try:
        while stack:
            fd = stack.pop()
            try:
                for entry in os.scandir(fd):
                    _hand_over(fd, entry.name, uid, gid, keep_special, stack)
            finally:
                os.close(fd)
    finally:
        for fd in stack:
            os.close(fd)


def _hand_over(
    dirfd: int, name: str, uid: int, gid: int, keep_special: bool, stack: list[int]
) -> None:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        try:
            sub = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd
            )
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link: not followed
                return
            raise
        if os.fstat(sub).st_dev != st.st_dev:  # a mount point: never leave the tree
            os.close(sub)
            return
        os.fchown(sub, uid, gid)
        stack.append(sub)
    elif stat.S_ISREG(st.st_mode) or keep_special:
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
    else:
        os.unlink(name, dir_fd=dirfd)


__all__ = [
    "DEFAULT_ROOT",
    "ROOT_ENV",
    "Box",
    "BoxError",
    "BoxState",
    "box_root",
    "chowntree",
]

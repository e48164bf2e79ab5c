"""The flags every mount of a plan really gets, found by running the mount code on a fake kernel.

Pure (no syscalls): ``sandbox.fs.mounts`` is run, both halves, on a
:class:`~sandbox.syscalls.recording.RecordingSyscalls` that also follows
mount fds, so lint checks what the child *will* do, not what a comment says
it does. A change in ``fs/mounts.py`` that forgets ``MOUNT_ATTR_NODEV`` on a
tmpfs shows up here as a mount without ``nodev``.

Flags are the per-mount bits both APIs share: ``MOUNT_ATTR_RDONLY`` = ``MS_RDONLY``
(1), ``NOSUID`` (2), ``NODEV`` (4), ``NOEXEC`` (8). A clone of a host tree
(``open_tree``) starts from 0 here: the host mount's own flags can only add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.fs.mounts import attach, prepare_detached
from sandbox.fs.ops import MountPlan
from sandbox.syscalls.recording import RecordingSyscalls

RDONLY, NOSUID, NODEV, NOEXEC = 0x1, 0x2, 0x4, 0x8
_PER_MOUNT = RDONLY | NOSUID | NODEV | NOEXEC
_MS_REMOUNT, _MS_BIND = 32, 4096
_NAMES = ((RDONLY, "ro"), (NOSUID, "nosuid"), (NODEV, "nodev"), (NOEXEC, "noexec"))


@dataclass(frozen=True, slots=True)
class MountFlags:
    """One mount of the container as the payload will see it."""

    target: str  # path inside the container
    source: str  # "overlay", "tmpfs", "proc" or the host path of a bind
    flags: int

    @property
    def options(self) -> str:
        """``ro,nosuid,nodev`` style (``rw`` when not read-only)."""
        names = [n for bit, n in _NAMES if self.flags & bit]
        return ",".join(names if self.flags & RDONLY else ["rw", *names])

    def has(self, bit: int) -> bool:
        """Whether the mount carries this flag."""
        return bool(self.flags & bit)


@dataclass
class _Tracer(RecordingSyscalls):
    """RecordingSyscalls that also follows which fd is which mount, and where it lands."""

    _next: int = 1000
    _fs: dict[int, str] = field(default_factory=dict)
    _mnt: dict[int, tuple[str, int]] = field(default_factory=dict)
    _paths: dict[int, str] = field(default_factory=dict)
    mounted: dict[str, tuple[str, int]] = field(default_factory=dict)

    def _fd(self) -> int:
        self._next += 1
        return self._next

    def fork(self) -> int:
        # The trace is the parent's view (the idmap helper's child runs no mount code).
        self._record("fork")
        return 2

    def fsopen(self, fstype: str) -> int:
        self._record("fsopen", fstype)
        fd = self._fd()
        self._fs[fd] = fstype
        return fd

    def fsconfig(
        self, fd: int, cmd: Any, key: str | None = None, value: str | None = None
    ) -> None:
        self._record("fsconfig", fd, cmd, key, value)
        if key == "source" and value is not None:  # a private overlay names its host dir
            self._fs[fd] = value

    def fsmount(self, fd: int, attrs: int) -> int:
        self._record("fsmount", fd, attrs)
        mnt = self._fd()
        self._mnt[mnt] = (self._fs.get(fd, "?"), attrs & _PER_MOUNT)
        return mnt

    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        self._record("open_tree", dirfd, path, flags)
        fd = self._fd()
        # open_tree(fd, "", AT_EMPTY_PATH): the tree of what ``fd`` was opened on.
        self._mnt[fd] = (path or self._paths.get(dirfd, "?"), 0)
        return fd

    def openat(self, dirfd: int, path: str, flags: int, mode: int = 0) -> int:
        self._record("openat", dirfd, path, flags, mode)
        return self._fd()

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self._record("openat2", dirfd, path, flags, resolve)
        fd = self._fd()
        self._paths[fd] = path
        return fd

    def mount_setattr(
        self,
        fd: int,
        path: str,
        flags: int,
        attr_set: int,
        attr_clr: int = 0,
        userns_fd: int = 0,
    ) -> None:
        self._record("mount_setattr", fd, path, flags, attr_set, attr_clr, userns_fd)
        source, old = self._mnt[fd]
        self._mnt[fd] = (source, (old | attr_set) & ~attr_clr & _PER_MOUNT)

    def move_mount(
        self, from_fd: int, from_path: str, to_dirfd: int, to_path: str, flags: int
    ) -> None:
        self._record("move_mount", from_fd, from_path, to_dirfd, to_path, flags)
        self.mounted[to_path] = self._mnt[from_fd]

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: Any,
        data: str | None = None,
    ) -> None:
        self._record("mount", source, target, fstype, flags, data)
        flags = int(flags)
        if fstype in ("proc", "devpts"):
            self.mounted[target] = (fstype, flags & _PER_MOUNT)
        elif flags & _MS_REMOUNT:
            # A bind remount sets exactly the per-mount flags it is given.
            self.mounted[target] = (self._covering(target)[0], flags & _PER_MOUNT)
        elif flags & _MS_BIND and source is not None:
            # A new bind copies the flags of the mount it is taken from.
            self.mounted[target] = self._covering(source)

    def _covering(self, path: str) -> tuple[str, int]:
        best = ""
        for t in self.mounted:
            if (path == t or path.startswith(t.rstrip("/") + "/")) and len(t) > len(best):
                best = t
        return self.mounted.get(best, ("?", 0))


def trace(plan: MountPlan) -> tuple[MountFlags, ...]:
    """Every mount the child makes for ``plan``, with its final flags, sorted by target."""
    sc = _Tracer()
    detached = prepare_detached(plan, sc, (1, 1))
    attach(plan, detached, sc)
    staging = plan.staging
    out = []
    for target, (source, flags) in sc.mounted.items():
        if target != staging and not target.startswith(staging + "/"):
            continue
        inside = target[len(staging) :] or "/"
        out.append(MountFlags(inside, source, flags))
    return tuple(sorted(out, key=lambda m: m.target))

"""The mount plan (pure): what the container's file system is made of.

A plan is data (after bwrap's SetupOp list): an overlay root over read-only
lower layers with a per-run tmpfs upper, host binds re-flagged read-only,
extra tmpfs, a minimal /dev, /proc of the new pid namespace, and the
overlay subtrees that stay writable while the root itself is read-only.
``plan_mounts`` validates the policy's paths against the host and names the
problem when one is wrong; ``sandbox.fs.mounts`` applies a plan in the child.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sandbox.errors import PolicyError
from sandbox.fs.staging import BoxFile
from sandbox.paths import STAGING

if TYPE_CHECKING:  # the launcher imports this module: no pydantic at run time
    from sandbox.policy.frozen import Filesystem

_OCTAL = re.compile(r"\\([0-7]{3})")  # mountinfo's escapes of space, tab, newline, backslash
# Top-level directories that are symlinks into /usr on a merged-usr host.
MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
FORBIDDEN_TARGETS = ("/", "/proc", "/dev")
DEV_NODES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9))
DEV_LINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("shm", "/tmp"),
)


@dataclass(frozen=True, slots=True)
class UpperEntry:
    """A directory created in the upper layer before the overlay is mounted."""

    path: str  # relative to the root, no leading slash
    mode: int
    owner: Literal["root", "payload"]
    # An empty file, not a directory: the mount point of a single-file bind
    # (a bind of a file needs a file to land on; issue 15 item 9).
    file: bool = False


@dataclass(frozen=True, slots=True)
class BindMount:
    """A host path bound in; re-flagged (ro unless writable, nosuid, nodev) with its submounts.

    ``idmap``: a writable bind the launcher (as root) idmaps to the owner of its
    source, read from the source it opens (so never a stale one): the run's
    host ids read and write there as that owner, files the payload writes are
    the owner's, not a run slot's, and the next run (another slot) can
    overwrite them (issue 15 item 11).

    ``private``: a read-only directory with no submount is not bound but
    mounted as a read-only overlay of its own over it, so the run's files are
    inodes of the run's own: a lock it takes (flock, fcntl, OFD) reaches no
    other run and not the host (issue 13 item 7). Submounts would not show
    through an overlay, so a tree that has some stays a bind.
    """

    source: str
    target: str
    writable: bool
    exec: bool
    idmap: bool = False
    private: bool = False


@dataclass(frozen=True, slots=True)
class TmpfsMount:
    """An empty tmpfs owned by the payload."""

    target: str
    size: int
    mode: int = 0o755


@dataclass(frozen=True, slots=True)
class DevptsMount:
    """A devpts instance of the container's own at /dev/pts, with /dev/ptmx -> pts/ptmx.

    Always ``newinstance`` (the launcher passes it whatever was asked, and checks
    that the mounted instance is not the host's), nosuid and noexec; mounted by
    the container's init inside the run's user namespace, so ``gid``/``uid``
    must be ids mapped there (None: the opener's, the kernel's default).
    """

    mode: int = 0o600  # of each new pty's slave
    ptmxmode: int = 0o000  # of pts/ptmx (the kernel's default: nobody opens it)
    gid: int | None = None
    uid: int | None = None
    max: int | None = None  # at most this many ptys in the instance

    def options(self) -> str:
        """The mount(2) data string (the same in both launchers)."""
        out = [f"newinstance,ptmxmode={self.ptmxmode:04o},mode={self.mode:04o}"]
        if self.gid is not None:
            out.append(f"gid={self.gid}")
        if self.uid is not None:
            out.append(f"uid={self.uid}")
        if self.max is not None:
            out.append(f"max={self.max}")
        return ",".join(out)


@dataclass(frozen=True, slots=True)
class MountPlan:
    """Everything the child needs to build the root, in the order it is applied."""

    lowers: tuple[str, ...]
    upper_size: int
    upper_inodes: int
    upper_entries: tuple[UpperEntry, ...]
    binds: tuple[BindMount, ...]
    tmpfs: tuple[TmpfsMount, ...]
    writable: tuple[str, ...]
    proc_subset_pid: bool
    dev_nodes: tuple[tuple[str, int, int], ...] = DEV_NODES
    dev_links: tuple[tuple[str, str], ...] = DEV_LINKS
    program: tuple[str, str] | None = None  # (host path, file name in /box)
    # Files and symlinks placed in /box for the payload, owned by it (files first,
    # links last; see sandbox.fs.staging)
    copy_in: tuple[BoxFile, ...] = ()
    # Both True in every real run; False only through the test hook
    # (sandbox.ablation): the lower layer bound read-write as the root,
    # binds without nosuid.
    overlay: bool = True
    nosuid: bool = True
    proc_masks: bool = True  # False only through the test hook
    # False: the whole root stays writable (writes still land in the per-run
    # upper layer; an OCI bundle whose root.readonly is false).
    read_only_root: bool = True
    # Where the child assembles the root (an empty directory of the host; only
    # ever mounted on inside the run's own mount namespaces).
    staging: str = STAGING
    # Rootless: every mount is made inside the run's user namespace (overlay
    # with userxattr, /dev nodes bound from the host instead of mknod'd).
    rootless: bool = False
    # A devpts instance of the run's own (an OCI bundle's devpts mount), or none.
    devpts: DevptsMount | None = None


def _trusted_link(link: str, st: os.stat_result) -> bool:
    """A symlink only root could have put there (and nobody else can swap).

    Root's only, also for a rootless caller: there the payload's files are the
    caller's own on the host, so a link the caller owns may be the payload's.
    """
    if st.st_uid != 0:
        return False
    parent = os.stat(os.path.dirname(link) or "/")
    if parent.st_uid != 0:
        return False
    # Group/other-writable parents are fine only when sticky (/tmp): nobody else may
    # rename or replace an entry they do not own there.
    return not parent.st_mode & 0o022 or bool(parent.st_mode & stat.S_ISVTX)


def checked_source(path: str, max_links: int = 40, what: str = "bind source") -> str:
    """The real path of a bind source, refusing symlinks another user could have planted.

    Binds are made by root: a symlink an earlier run's payload left in a shared
    writable tree must not redirect a later bind to any host path. The launcher
    then opens the result without following symlinks at all (``openat2``), so
    nothing swapped in after this check is followed either.

    Raises:
        PolicyError: naming the symlink and why it is not trusted, or the
            component that does not exist.
    """
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part in (".", ""):
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        here = "/" + "/".join([*done, part])
        try:
            st = os.lstat(here)
        except OSError as e:
            raise PolicyError(f"{what} {path!r}: {here}: {e.strerror}") from None
        if not stat.S_ISLNK(st.st_mode):
            done.append(part)
            continue
        links += 1
        if links > max_links or not _trusted_link(here, st):
            raise PolicyError(
                f"{what} {path!r}: {here} is a symlink that a user other than root could have "
                "placed (or changed); name the real path instead"
            )
        target = os.readlink(here)
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p] + parts
    return "/" + "/".join(done)


def has_submounts(path: str, mountinfo: str = "/proc/self/mountinfo") -> bool:
    """Whether any mount of this namespace lies strictly below ``path`` (a real path)."""
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return True  # unknown: keep the bind, which carries submounts
    prefix = path.rstrip("/") + "/"
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # \040: space
            if point.startswith(prefix):
                return True
    return False


def private_bind(b: BindMount) -> BindMount:
    """``b`` as a private read-only overlay where that keeps its meaning (see BindMount)."""
    if b.writable or not os.path.isdir(b.source) or has_submounts(b.source):
        return b
    return replace(b, private=True)


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def host_binds(fs: Filesystem, root: Path = Path("/")) -> list[BindMount]:
    """Host directories of the default image: ``host_dirs`` plus non-merged-usr dirs."""
    if fs.rootfs:
        return []
    for d in fs.host_dirs:
        if not os.path.isdir(d):
            raise PolicyError(f"filesystem.host_dirs: {d!r} is not a directory on this host")
    dirs = list(fs.host_dirs)
    for link in MERGED_USR:
        p = root / link
        if p.is_dir() and not p.is_symlink() and f"/{link}" not in dirs:
            dirs.append(f"/{link}")
    return [private_bind(BindMount(checked_source(d), d, writable=False, exec=True)) for d in dirs]


def plan_mounts(
    fs: Filesystem, image_dir: str | None, program: tuple[str, str] | None, root: Path = Path("/")
) -> MountPlan:
    """Build the mount plan for a policy's file system section.

    Raises:
        PolicyError: a bind source that does not exist, a target that would
            cover /, /proc or /dev, or a target inside a host bind that is missing there.
    """
    lowers = tuple(fs.rootfs) if fs.rootfs else (image_dir or "",)
    for layer in lowers:
        if not os.path.isdir(layer):
            raise PolicyError(f"filesystem.rootfs: lower layer {layer!r} is not a directory")
    hbinds = host_binds(fs, root)
    binds: list[BindMount] = list(hbinds)
    for b in fs.binds:
        if not os.path.exists(b.source):
            if b.optional:
                continue
            raise PolicyError(f"bind source {b.source!r} does not exist")
        binds.append(
            private_bind(
                BindMount(checked_source(b.source), b.target, b.writable, b.exec, idmap=b.writable)
            )
        )
    targets = [b.target for b in binds] + [t.target for t in fs.tmpfs]
    # Binds of a single file land on an empty file the plan creates.
    file_targets = {b.target for b in binds if os.path.isfile(b.source)}
    for t in targets:
        if any(_under(t, f) for f in FORBIDDEN_TARGETS[1:]) or t == "/":
            raise PolicyError(f"mount target {t!r} would cover /, /proc or /dev")
    for bm in binds:
        if bm in hbinds:
            continue
        for h in hbinds:
            if _under(bm.target, h.target) and not os.path.exists(
                os.path.join(root, bm.target[1:])
            ):
                raise PolicyError(
                    f"bind target {bm.target!r} lies inside the host's {h.target} (read-only) "
                    "and does not exist there; choose a target outside it"
                )
    entries: dict[str, UpperEntry] = {}

    def add(path: str, mode: int, owner: Literal["root", "payload"]) -> None:
        for parent in _parents(path)[:-1]:
            entries.setdefault(parent, UpperEntry(parent, 0o755, "root"))
        entries[path.strip("/")] = UpperEntry(path.strip("/"), mode, owner)

    for d in ("proc", "dev"):
        add(d, 0o755, "root")
    for w in fs.writable:
        if any(_under(w, h.target) for h in hbinds):
            raise PolicyError(f"writable path {w!r} lies inside a read-only host bind")
        add(
            w,
            0o1777 if w in ("/tmp", "/var/tmp") else 0o755,
            "root" if w in ("/tmp", "/var/tmp") else "payload",
        )
    if "/box" not in fs.writable:
        add("/box", 0o755, "root")
    for t in targets:
        if not any(_under(t, h.target) for h in hbinds):
            if t in file_targets:
                entries[t.strip("/")] = UpperEntry(t.strip("/"), 0o644, "root", file=True)
            else:
                entries.setdefault(t.strip("/"), UpperEntry(t.strip("/"), 0o755, "root"))
            for parent in _parents(t)[:-1]:
                entries.setdefault(parent, UpperEntry(parent, 0o755, "root"))
    ordered = tuple(sorted(entries.values(), key=lambda e: (e.path.count("/"), e.path)))
    return MountPlan(
        lowers=lowers,
        upper_size=fs.disk,
        upper_inodes=fs.disk_inodes,
        upper_entries=ordered,
        binds=tuple(sorted(binds, key=lambda b: b.target.count("/"))),
        tmpfs=tuple(TmpfsMount(t.target, t.size) for t in fs.tmpfs),
        writable=tuple(fs.writable),
        proc_subset_pid=fs.proc == "pid",
        program=program,
    )

"""Apply a MountPlan in the launcher child, in two halves.

1. ``prepare_detached`` runs as root in the *initial* user namespace, before
   ``unshare(CLONE_NEWUSER)``: it creates the per-run tmpfs upper, the overlay
   root, the /dev tmpfs and clones of the host binds as **detached** mounts
   (fsopen/fsmount/open_tree) and sets their flags with mount_setattr,
   recursively (bind ignores flags on the first mount; mount_setattr with
   AT_RECURSIVE covers submounts too). An overlay mounted inside a user
   namespace would need ``userxattr`` and breaks on a tmpfs upper before 6.6,
   so it is made here and moved in. Overlayfs takes private clones of its
   layers (``clone_private_mount``), which kernels before 6.15 (6.1 included)
   refuse for a mount outside the caller's mount namespace, a detached one
   included ("overlayfs: failed to clone upperpath", EINVAL). There the upper
   tmpfs is attached while the overlay is made, in a scratch mount namespace
   of this process: private, still owned by the initial user namespace,
   and left at ``unshare`` (nothing of it is ever visible on the host). The
   upper is attached on ``STAGING``, which the supervisor creates
   (``runner.state.ensure_staging``). From 6.15 on (db04662e2f4f, "fs: allow
   detached mounts in clone_private_mount()", ``detached_layers``) the upper
   stays detached: no namespace to copy and tear down and no umount, each of
   which waits for an expedited RCU grace period on the run's critical path.
   The upper's fd is kept open by init until the run's status is written:
   closing the last fd of a detached mount unmounts it (a grace period
   again), better waited for once the supervisor has its answer.
2. ``attach`` runs in the container's init (PID 1 of the new pid namespace,
   so /proc shows that namespace): stops propagation, moves the detached
   mounts under the staging directory, mounts /proc, makes the root read-only
   except the writable subtrees, then ``pivot_root(".", ".")`` and detaches
   the old root (runc's pivotRoot; never chroot alone).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from sandbox.fs.mountopts import join_lowerdirs
from sandbox.fs.ops import MountPlan
from sandbox.fs.staging import parents
from sandbox.syscalls.api import Syscalls
from sandbox.syscalls.consts import (
    AT_FDCWD,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    CloneFlag,
    MoveMount,
    OpenTree,
    UmountFlag,
)
from sandbox.syscalls.consts import FsconfigCmd as C
from sandbox.syscalls.consts import MountAttr as A
from sandbox.syscalls.consts import MountFlag as M

_CLONE = OpenTree.OPEN_TREE_CLONE | OpenTree.OPEN_TREE_CLOEXEC | OpenTree.AT_RECURSIVE
_SETATTR = OpenTree.AT_EMPTY_PATH | OpenTree.AT_RECURSIVE
_BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV


@dataclass
class DetachedMounts:
    """Fds of the detached mounts made before the user namespace exists."""

    root: int = -1
    dev: int = -1
    upper: int = -1  # the per-run upper tmpfs: init keeps it until the status is written
    binds: list[tuple[str, int]] = field(default_factory=list)
    tmpfs: list[tuple[str, int]] = field(default_factory=list)
    others: list[int] = field(default_factory=list)  # fds to close once attached
    dev_nodes: list[tuple[str, int]] = field(default_factory=list)  # rootless: host nodes

    def all_fds(self) -> list[int]:
        """Every fd held, for closing."""
        return [
            fd
            for fd in (
                self.root,
                self.dev,
                self.upper,
                *(f for _, f in self.binds),
                *(f for _, f in self.dev_nodes),
                *(f for _, f in self.tmpfs),
                *self.others,
            )
            if fd >= 0
        ]


def _tmpfs(
    sc: Syscalls,
    size: int,
    inodes: int,
    mode: int,
    attrs: int,
    owner: tuple[int, int] | None = None,
) -> int:
    fs = sc.fsopen("tmpfs")
    sc.fsconfig(fs, C.FSCONFIG_SET_STRING, "size", str(size))
    sc.fsconfig(fs, C.FSCONFIG_SET_STRING, "nr_inodes", str(inodes))
    sc.fsconfig(fs, C.FSCONFIG_SET_STRING, "mode", f"{mode:o}")
    if owner is not None:
        sc.fsconfig(fs, C.FSCONFIG_SET_STRING, "uid", str(owner[0]))
        sc.fsconfig(fs, C.FSCONFIG_SET_STRING, "gid", str(owner[1]))
    sc.fsconfig(fs, C.FSCONFIG_CMD_CREATE)
    mnt = sc.fsmount(fs, attrs)
    sc.close(fs)
    return mnt


def prepare_detached(
    plan: MountPlan, sc: Syscalls, host_ids: tuple[int, int], detached_layers: bool = False
) -> DetachedMounts:
    """Make every mount of the plan as a detached mount (root, initial user namespace).

    ``detached_layers``: this kernel's overlayfs takes a detached upper (6.15+),
    so no scratch mount namespace is needed (module docstring).
    """
    out = DetachedMounts()
    staging = plan.staging
    scratch = not detached_layers
    if scratch and not plan.rootless:
        # The scratch mount namespace (module docstring), private before anything
        # is mounted in it, so no mount propagates back to the host's peers.
        # (Rootless, we already are in the run's own user and mount namespaces.)
        sc.unshare(CloneFlag.CLONE_NEWNS)
    if scratch:
        sc.mount(None, "/", None, M.MS_REC | M.MS_PRIVATE)
    upper = _tmpfs(sc, plan.upper_size, plan.upper_inodes, 0o755, 0)
    out.upper = upper
    if scratch:
        # Attached for clone_private_mount (see above) until the overlay exists;
        # the lowers are opened after the unshare, so they are in this namespace too.
        _move(sc, upper, staging)
    sc.mkdirat(upper, "upper", 0o755)
    sc.mkdirat(upper, "work", 0o700)
    for e in plan.upper_entries:
        if e.file:  # a single-file bind's mount point
            made = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            sc.close(sc.openat(upper, f"upper/{e.path}", made, e.mode))
        else:
            sc.mkdirat(upper, f"upper/{e.path}", e.mode)
        sc.fchmodat(upper, f"upper/{e.path}", e.mode)  # mkdir applies the umask
        if e.owner == "payload" and not plan.rootless:  # rootless: ours = the payload's
            sc.fchownat(upper, f"upper/{e.path}", *host_ids)
    if plan.program is not None or plan.copy_in:
        _stage_box(plan, sc, upper, None if plan.rootless else host_ids)
    lowers = []
    for layer in plan.lowers:
        fd = _open_source(sc, layer, os.O_DIRECTORY)
        out.others.append(fd)
        lowers.append(f"/proc/self/fd/{fd}")
    if plan.overlay:
        ovl = sc.fsopen("overlay")
        sc.fsconfig(ovl, C.FSCONFIG_SET_STRING, "lowerdir", join_lowerdirs(lowers))
        sc.fsconfig(ovl, C.FSCONFIG_SET_STRING, "upperdir", f"/proc/self/fd/{upper}/upper")
        sc.fsconfig(ovl, C.FSCONFIG_SET_STRING, "workdir", f"/proc/self/fd/{upper}/work")
        if plan.rootless:  # trusted.* xattrs need CAP_SYS_ADMIN in the initial namespace
            sc.fsconfig(ovl, C.FSCONFIG_SET_FLAG, "userxattr")
        sc.fsconfig(ovl, C.FSCONFIG_CMD_CREATE)
        out.root = sc.fsmount(ovl, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NODEV)
        sc.close(ovl)
    else:  # test hook only: the lower layer itself, read-write
        out.root = sc.open_tree(AT_FDCWD, plan.lowers[0], _CLONE)
        sc.mount_setattr(out.root, "", _SETATTR, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NODEV)
    empty = None
    for b in plan.binds:
        attrs = A.MOUNT_ATTR_NODEV | (A.MOUNT_ATTR_NOSUID if plan.nosuid else 0)
        if not b.writable:
            attrs |= A.MOUNT_ATTR_RDONLY
        if not b.exec:
            attrs |= A.MOUNT_ATTR_NOEXEC
        if b.private:
            if empty is None:
                sc.mkdirat(upper, "empty", 0o555)  # beside upper/ and work/: never seen
                empty = f"/proc/self/fd/{upper}/empty"
            fd = _private_overlay(sc, b.source, empty, attrs, plan.rootless)
        else:
            src_fd = _open_source(sc, b.source)
            fd = sc.open_tree(src_fd, "", _CLONE | OpenTree.AT_EMPTY_PATH)
            st = sc.fstat(src_fd)
            sc.close(src_fd)
            sc.mount_setattr(fd, "", _SETATTR, attrs)
            owner = (st.st_uid, st.st_gid)  # what is bound, as it is now
            if b.idmap and b.writable and not plan.rootless and owner != host_ids:
                _idmap(sc, fd, owner, host_ids)
        out.binds.append((b.target, fd))
    for t in plan.tmpfs:
        fd = _tmpfs(
            sc, t.size, 1 << 16, t.mode, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NODEV, owner=host_ids
        )
        out.tmpfs.append((t.target, fd))
    out.dev = _tmpfs(sc, 1 << 16, 64, 0o755, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NOEXEC)
    for name, major, minor in plan.dev_nodes:
        if plan.rootless:
            # No mknod outside the initial user namespace: an empty file to bind
            # the host's node onto (bwrap does the same).
            sc.close(sc.openat(out.dev, name, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666))
            node = _open_source(sc, f"/dev/{name}")
            fd = sc.open_tree(node, "", _CLONE | OpenTree.AT_EMPTY_PATH)
            sc.close(node)
            # A device bind keeps whatever flags the host's /dev has: set ours (it
            # must stay a device, so no nodev; never set-id, never executable).
            sc.mount_setattr(fd, "", _SETATTR, A.MOUNT_ATTR_NOSUID | A.MOUNT_ATTR_NOEXEC)
            out.dev_nodes.append((name, fd))
            continue
        sc.mknodat(out.dev, name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        sc.fchmodat(out.dev, name, 0o666)
    for name, target in plan.dev_links:
        sc.symlinkat(target, out.dev, name)
    if plan.devpts is not None:
        sc.mkdirat(out.dev, "pts", 0o755)  # init mounts the run's own devpts here
    if scratch:  # the overlay holds its own private clone of the upper: detach ours
        sc.umount2(staging, UmountFlag.MNT_DETACH)
    return out


def _idmap(sc: Syscalls, fd: int, owner: tuple[int, int], host_ids: tuple[int, int]) -> None:
    """Idmap a detached writable bind: the run's host ids act there as the source's owner.

    The mapping lives in a user namespace made for it: a child unshares one,
    we write ``owner host 1`` as its uid and gid maps, keep a handle on it and
    let the child go. On the mount, on-disk ``owner`` reads as the run's host
    id and the run's writes are stored as ``owner`` (mount_setattr(2),
    MOUNT_ATTR_IDMAP; Linux 5.12+). A file system that cannot idmap (EINVAL,
    EOPNOTSUPP: tmpfs before 6.3, 9p) keeps the run's own ids: the one
    tolerated failure, which changes ownership, not what the payload may do.
    """
    ready_r, ready_w = sc.pipe(True)  # blocking: the reads below wait
    hold_r, hold_w = sc.pipe(True)
    pid = sc.fork()
    if pid == 0:
        try:
            sc.close(ready_r)
            sc.close(hold_w)
            sc.unshare(CloneFlag.CLONE_NEWUSER)
            sc.write(ready_w, b"r")
            sc.read(hold_r, 1)  # until the parent is done with us
        finally:
            sc.exit(0)
    ns = -1
    try:
        sc.close(ready_w)
        sc.close(hold_r)
        if not sc.read(ready_r, 1):  # EOF: the helper died before its unshare
            raise OSError(71, "idmap helper: no user namespace")  # EPROTO
        sc.write_file(f"/proc/{pid}/uid_map", f"{owner[0]} {host_ids[0]} 1\n".encode())
        sc.write_file(f"/proc/{pid}/setgroups", b"deny")
        sc.write_file(f"/proc/{pid}/gid_map", f"{owner[1]} {host_ids[1]} 1\n".encode())
        ns = sc.openat(AT_FDCWD, f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        sc.close(ready_r)
        sc.close(hold_w)
        sc.wait4(pid)
    try:
        sc.mount_setattr(fd, "", _SETATTR, A.MOUNT_ATTR_IDMAP, 0, ns)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
    finally:
        sc.close(ns)


def _private_overlay(sc: Syscalls, source: str, empty: str, attrs: int, rootless: bool) -> int:
    """A read-only overlay over host dir ``source`` alone: the same files, inodes of the run's own.

    Locks live on the inode a file is opened through, and a bind shares the
    host's: a run holding flock on /usr/bin/env blocked every other run and
    the host (issue 13 item 7). Through an overlay each run locks its own.
    Overlayfs wants two layers when it has no upper: the second is an empty
    directory of the run's upper tmpfs (attached here, as the root overlay's
    layers must be on 6.1).
    """
    src = _open_source(sc, source, os.O_DIRECTORY)
    try:
        ovl = sc.fsopen("overlay")
        sc.fsconfig(ovl, C.FSCONFIG_SET_STRING, "source", source)
        sc.fsconfig(
            ovl, C.FSCONFIG_SET_STRING, "lowerdir", join_lowerdirs([f"/proc/self/fd/{src}", empty])
        )
        if rootless:
            sc.fsconfig(ovl, C.FSCONFIG_SET_FLAG, "userxattr")
        sc.fsconfig(ovl, C.FSCONFIG_CMD_CREATE)
        fd = sc.fsmount(ovl, attrs)
        sc.close(ovl)
        return fd
    finally:
        sc.close(src)


def _stage_box(plan: MountPlan, sc: Syscalls, upper: int, owner: tuple[int, int] | None) -> None:
    """The program copy and the staged files, written beneath a /box fd of the new upper.

    Every source is a host path opened without following any symlink
    (``copy_into``: a payload of an earlier run may have shaped it); every
    destination is opened beneath /box with no symlink, magic link or mount
    crossing. Directories come first, files next, symlinks last (the plan's
    order), so nothing written here passes through a link made here.
    ``owner``: the payload's host ids (None rootless: ours are the payload's).
    """
    box = sc.openat2(upper, "upper/box", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _BENEATH)
    try:
        if plan.program is not None:
            src, name = plan.program
            sc.copy_into(src, box, name, 0o555, None)  # root's: read-only for the payload
        made: set[str] = set()
        for f in plan.copy_in:
            for d in parents(f.name):
                if d not in made:
                    _mkdir_payload(sc, box, d, owner)
                    made.add(d)
            if f.link is None:
                sc.copy_into(f.source, box, f.name, f.mode, owner)
            else:
                sc.symlinkat(f.link, box, f.name)
                if owner is not None:
                    sc.fchownat(box, f.name, *owner)  # the link itself (AT_SYMLINK_NOFOLLOW)
    finally:
        sc.close(box)


def _mkdir_payload(sc: Syscalls, box: int, name: str, owner: tuple[int, int] | None) -> None:
    try:
        sc.mkdirat(box, name, 0o755)
    except FileExistsError:
        return  # e.g. /box/sub made by the plan's own entries
    sc.fchmodat(box, name, 0o755)  # mkdir applies the umask
    if owner is not None:
        sc.fchownat(box, name, *owner)


def _open_source(sc: Syscalls, path: str, flags: int = 0) -> int:
    """O_PATH fd of a host source, resolved without following any symlink.

    The planner resolved the caller's path once, after checking that no symlink
    on it lies where another user could have planted it; here no symlink is
    followed at all, so nothing swapped in since (e.g. by an earlier run's
    payload in a shared writable bind) can redirect the bind to another tree.
    """
    return sc.openat2(
        AT_FDCWD,
        path,
        os.O_PATH | os.O_CLOEXEC | flags,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )


# A full /proc (proc = "full") shows more of the host than a payload needs: the
# same masks as runc's and youki's defaults. Files get /dev/null over them,
# directories are made read-only; entries this kernel lacks are skipped.
PROC_MASKED = (
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "sysrq-trigger",
    "latency_stats",
    "kmsg",
    "kallsyms",
    "acpi",
    "scsi",
    "asound",
)
PROC_READ_ONLY = ("sys", "bus", "fs", "irq")


def _mask_proc(sc: Syscalls, proc: str, null: str) -> None:
    for name in PROC_MASKED:
        path = f"{proc}/{name}"
        try:
            if sc.fstat_path(path).st_mode & 0o170000 == 0o040000:  # a directory
                sc.mount(path, path, None, M.MS_BIND)
                sc.mount(
                    None,
                    path,
                    None,
                    M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC,
                )
                sc.mount(
                    "tmpfs",
                    path,
                    "tmpfs",
                    M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC,
                    "size=0",
                )
            else:
                sc.mount(null, path, None, M.MS_BIND)
                sc.mount(
                    None,
                    path,
                    None,
                    M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC,
                )
        except FileNotFoundError:
            continue  # not on this kernel
    for name in PROC_READ_ONLY:
        path = f"{proc}/{name}"
        try:
            sc.mount(path, path, None, M.MS_BIND | M.MS_REC)
        except FileNotFoundError:
            continue
        sc.mount(
            None,
            path,
            None,
            M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC,
        )


def _move(sc: Syscalls, fd: int, target: str) -> None:
    sc.move_mount(fd, "", AT_FDCWD, target, MoveMount.MOVE_MOUNT_F_EMPTY_PATH)


DEVPTS_SUPER_MAGIC = 0x1CD1


def mount_devpts(plan: MountPlan, sc: Syscalls) -> None:
    """The run's own devpts instance on the staging /dev/pts (container init, in the
    run's user namespace), or the run fails.

    ``newinstance`` is always passed; since Linux 4.7 every devpts mount is a new
    instance anyway, and the check after the mount holds on any kernel: the
    instance must not be the host's /dev/pts (seen here, before pivot_root), else
    the payload would reach the host's ptys (and their input) through it.
    """
    assert plan.devpts is not None
    target = plan.staging + "/dev/pts"
    sc.mount("devpts", target, "devpts", M.MS_NOSUID | M.MS_NOEXEC, plan.devpts.options())
    ours = sc.fstat_path(target)
    try:
        host = sc.fstat_path("/dev/pts")
    except FileNotFoundError:
        return  # the host has none in our view: nothing to be confused with
    if ours.st_dev == host.st_dev:
        raise OSError(errno.EEXIST, "devpts: the mount is the host's instance, not a new one")


def attach(plan: MountPlan, mnt: DetachedMounts, sc: Syscalls) -> None:
    """Assemble the root under the staging directory and pivot into it (container init)."""
    staging = plan.staging
    # Stop propagation both ways before anything is mounted (youki rootfs.rs, runc).
    sc.mount(None, "/", None, M.MS_REC | M.MS_SLAVE)
    _move(sc, mnt.root, staging)
    # The root becomes read-only below; the writable trees are binds of the same
    # overlay without MS_RDONLY, so writes still land in the per-run upper layer.
    for w in plan.writable if plan.overlay else ():
        sc.mount(staging + w, staging + w, None, M.MS_BIND)
    mounts = [*mnt.binds, *mnt.tmpfs]
    for target, fd in sorted(mounts, key=lambda m: m[0].count("/")):
        _move(sc, fd, staging + target)
    _move(sc, mnt.dev, staging + "/dev")
    for name, fd in mnt.dev_nodes:
        _move(sc, fd, f"{staging}/dev/{name}")
    if plan.devpts is not None:
        mount_devpts(plan, sc)
    sc.mount(
        "proc",
        staging + "/proc",
        "proc",
        M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC,
        "subset=pid" if plan.proc_subset_pid else None,
    )
    if not plan.proc_subset_pid and plan.proc_masks:
        _mask_proc(sc, staging + "/proc", staging + "/dev/null")
    if plan.overlay and plan.read_only_root:  # without the overlay (test hook) or with a
        # writable root (OCI root.readonly = false), writes land in the upper layer
        sc.mount(
            None, staging, None, M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV
        )
    for fd in mnt.all_fds():
        if fd != mnt.upper:  # init keeps it until the status is written (module docstring)
            sc.close(fd)
    # pivot_root(".", ".") stacks the old root under the new one; detaching it
    # leaves the host tree unreachable (runc pivotRoot, bwrap, nsjail).
    sc.chdir(staging)
    sc.pivot_root(".", ".")
    sc.umount2(".", UmountFlag.MNT_DETACH)
    sc.chdir("/")

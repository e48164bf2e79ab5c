"""Kernel constants with kernel spelling, as IntFlag/IntEnum so they print by name.

``str(MountFlag.MS_BIND | MountFlag.MS_REC)`` gives ``MS_BIND|MS_REC``, which is
what errors and the recording fake show (runc's stringifyMountFlags).
"""

from __future__ import annotations

import enum
import errno
import platform
from collections.abc import Iterator, Mapping


class _Flag(enum.IntFlag):
    def __str__(self) -> str:
        if self.value == 0:
            return "0"
        names = [
            m.name
            for m in type(self)
            if m.value and (self.value & m.value) == m.value and m.value & (m.value - 1) == 0
        ]
        rest = self.value
        for m in type(self):
            if m.name in names:
                rest &= ~m.value
        if rest:
            names.append(hex(rest))
        return "|".join(n for n in names if n)


class CloneFlag(_Flag):
    """Namespace flags for unshare(2)/clone(2) (linux/sched.h)."""

    CLONE_NEWTIME = 0x00000080
    CLONE_NEWNS = 0x00020000
    CLONE_NEWCGROUP = 0x02000000
    CLONE_NEWUTS = 0x04000000
    CLONE_NEWIPC = 0x08000000
    CLONE_NEWUSER = 0x10000000
    CLONE_NEWPID = 0x20000000
    CLONE_NEWNET = 0x40000000


class MountFlag(_Flag):
    """mount(2) flags (linux/mount.h)."""

    MS_RDONLY = 1
    MS_NOSUID = 2
    MS_NODEV = 4
    MS_NOEXEC = 8
    MS_REMOUNT = 32
    MS_BIND = 4096
    MS_MOVE = 8192
    MS_REC = 16384
    MS_PRIVATE = 1 << 18
    MS_SLAVE = 1 << 19
    MS_STRICTATIME = 1 << 24


class UmountFlag(_Flag):
    """umount2(2) flags."""

    MNT_FORCE = 1
    MNT_DETACH = 2


class MountAttr(_Flag):
    """MOUNT_ATTR_* for fsmount(2)/mount_setattr(2)."""

    MOUNT_ATTR_RDONLY = 0x1
    MOUNT_ATTR_NOSUID = 0x2
    MOUNT_ATTR_NODEV = 0x4
    MOUNT_ATTR_NOEXEC = 0x8
    MOUNT_ATTR_IDMAP = 0x00100000
    MOUNT_ATTR_NOSYMFOLLOW = 0x00200000


class OpenTree(_Flag):
    """open_tree(2) flags."""

    OPEN_TREE_CLONE = 1
    OPEN_TREE_CLOEXEC = 0o2000000
    AT_SYMLINK_NOFOLLOW = 0x100
    AT_EMPTY_PATH = 0x1000
    AT_RECURSIVE = 0x8000


class MoveMount(_Flag):
    """move_mount(2) flags."""

    MOVE_MOUNT_F_EMPTY_PATH = 0x4
    MOVE_MOUNT_T_EMPTY_PATH = 0x40


class FsconfigCmd(enum.IntEnum):
    """fsconfig(2) commands."""

    FSCONFIG_SET_FLAG = 0
    FSCONFIG_SET_STRING = 1
    FSCONFIG_CMD_CREATE = 6


class Prctl(enum.IntEnum):
    """prctl(2) options used by the launcher."""

    PR_SET_PDEATHSIG = 1
    PR_GET_DUMPABLE = 3
    PR_SET_DUMPABLE = 4
    PR_CAPBSET_READ = 23
    PR_CAPBSET_DROP = 24
    PR_SET_SECUREBITS = 28
    PR_SET_CHILD_SUBREAPER = 36
    PR_SET_NO_NEW_PRIVS = 38
    PR_GET_NO_NEW_PRIVS = 39
    PR_CAP_AMBIENT = 47


PR_CAP_AMBIENT_CLEAR_ALL = 4


class SeccompFlag(_Flag):
    """seccomp(2) SECCOMP_SET_MODE_FILTER flags."""

    SECCOMP_FILTER_FLAG_TSYNC = 1
    SECCOMP_FILTER_FLAG_LOG = 2
    SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
    SECCOMP_FILTER_FLAG_NEW_LISTENER = 8


class CloseRange(_Flag):
    """close_range(2) flags."""

    CLOSE_RANGE_UNSHARE = 2
    CLOSE_RANGE_CLOEXEC = 4


SECCOMP_SET_MODE_FILTER = 1
AT_FDCWD = -100  # the *at(2) calls' "relative to the working directory" (linux/fcntl.h)
# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2

# Syscall numbers without a glibc wrapper in Debian 12's glibc 2.36, per arch.
_NR = {
    "x86_64": {
        "pivot_root": 155,
        "seccomp": 317,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "pidfd_open": 434,
        "close_range": 436,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
        "landlock_create_ruleset": 444,
        "landlock_add_rule": 445,
        "landlock_restrict_self": 446,
        "capset": 126,
        "capget": 125,
        "clone3": 435,
        "openat2": 437,
    },
    "aarch64": {
        "pivot_root": 41,
        "seccomp": 277,
        "open_tree": 428,
        "move_mount": 429,
        "fsopen": 430,
        "fsconfig": 431,
        "fsmount": 432,
        "pidfd_open": 434,
        "close_range": 436,
        "pidfd_getfd": 438,
        "mount_setattr": 442,
        "landlock_create_ruleset": 444,
        "landlock_add_rule": 445,
        "landlock_restrict_self": 446,
        "capset": 91,
        "capget": 90,
        "clone3": 435,
        "openat2": 437,
    },
}


class _NoNumbers(Mapping[str, int]):
    """The syscall numbers of an architecture this table lacks: every lookup refuses.

    Guessing (another arch's numbers) would issue the wrong syscalls, so a
    run on such a machine fails closed, naming the architecture.
    """

    def __init__(self, arch: str) -> None:
        self.arch = arch

    def __getitem__(self, name: str) -> int:
        raise OSError(
            errno.ENOSYS,
            f"{name}: no syscall number for architecture {self.arch!r} "
            f"(sandbox knows {', '.join(_NR)}); add it to sandbox/syscalls/consts.py",
        )

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


ARCH = platform.machine()
NR: Mapping[str, int] = _NR.get(ARCH) or _NoNumbers(ARCH)

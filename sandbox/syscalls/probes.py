"""Host probes: what this kernel offers, asked of the kernel itself (supervisor side).

Read-only questions (the Landlock ABI, whether a file system type can be
mounted) cost one raw syscall each, so the host probe stays light; the
rootless-overlay probe forks a child that tries it in namespaces of its own
and leaves nothing behind. The Syscalls boundary used by the launcher is
``sandbox.syscalls.linux``; nothing here changes the caller's state.
"""

from __future__ import annotations

import ctypes
import functools
import os
from typing import Any

from sandbox.syscalls.consts import NR, CloneFlag, MountFlag


@functools.cache
def _syscall() -> Any:
    """libc's syscall(2), bound on first use."""
    fn = ctypes.CDLL(None, use_errno=True).syscall
    fn.restype = ctypes.c_long
    return fn


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel, 0 when unavailable."""
    r: int = _syscall()(
        ctypes.c_long(NR["landlock_create_ruleset"]), None, ctypes.c_long(0), ctypes.c_long(1)
    )
    return max(r, 0)


def filesystem_available(fstype: str) -> bool:
    """Whether ``fsopen(fstype)`` works (root: autoloads the module as a mount would)."""
    fd: int = _syscall()(ctypes.c_long(NR["fsopen"]), fstype.encode(), ctypes.c_long(1))
    if fd < 0:
        return False
    os.close(fd)
    return True


def userns_overlay_probe(mountpoint: str = "/tmp") -> tuple[bool, str]:
    """Can an overlay with a tmpfs upper be mounted inside a new user namespace?

    What a rootless run would need (root runs build the overlay outside the
    user namespace). A forked child unshares a user and a mount namespace,
    maps its own ids to 0, mounts a private tmpfs on ``mountpoint`` (in its
    own namespace only) and an overlay with ``userxattr`` on it; the kernel's
    answer comes back as the exit status. Leaves nothing behind: the
    namespaces die with the child. Returns ``(works, detail)``.
    """
    r, w = os.pipe2(os.O_CLOEXEC)
    uid, gid = os.geteuid(), os.getegid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        step = "unshare(CLONE_NEWUSER|CLONE_NEWNS)"
        try:
            from sandbox.syscalls.linux import LinuxSyscalls

            os.close(r)
            sc = LinuxSyscalls()
            sc.unshare(CloneFlag.CLONE_NEWUSER | CloneFlag.CLONE_NEWNS)
            step = "write uid_map/gid_map"
            sc.write_file("/proc/self/setgroups", b"deny")
            sc.write_file("/proc/self/uid_map", f"0 {uid} 1".encode())
            sc.write_file("/proc/self/gid_map", f"0 {gid} 1".encode())
            step = "mount tmpfs"
            sc.mount(None, "/", None, MountFlag.MS_REC | MountFlag.MS_PRIVATE)
            sc.mount("tmpfs", mountpoint, "tmpfs", MountFlag(0), "size=1m")
            for d in ("l", "u", "w", "m"):
                os.mkdir(f"{mountpoint}/{d}")
            step = "mount overlay (userxattr, tmpfs upper)"
            sc.mount(
                "overlay",
                f"{mountpoint}/m",
                "overlay",
                MountFlag(0),
                f"lowerdir={mountpoint}/l,upperdir={mountpoint}/u,workdir={mountpoint}/w,userxattr",
            )
            os._exit(0)
        except OSError as e:
            os.write(w, f"{step}: {e.strerror or e}".encode()[:512])
        finally:
            os._exit(1)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return True, "overlay with a tmpfs upper mounts inside a user namespace"
    return False, why or f"probe child ended with status {status:#x}"

"""Looking at a task blocked in a seccomp notification: its memory, fds, root and ids.

Supervisor side (``sandbox learn``), root. A notification carries only the
syscall's registers; a path or a socket address is a pointer into the task's
memory. We read it with process_vm_readv(2) (PTRACE_MODE_ATTACH_REALCREDS:
root has it over the run's slot uid), and the caller must then check the
notification id with ``notify.id_valid``: if the id is still valid, the task
is still blocked in that very syscall, so the pid was not reused and what we
read belonged to it (seccomp_unotify(2), "Design goals; use of
SECCOMP_USER_NOTIF_FLAG_CONTINUE"). Another thread of the task can still
change the memory after we read it: the record is then wrong, never the
enforcement, which a learned profile leaves to Landlock and the filter.

Paths are resolved *inside the task's root* with openat2(RESOLVE_IN_ROOT |
RESOLVE_NO_MAGICLINKS) on ``/proc/PID/root``: a symlink the payload planted
(``/box/x -> /etc/shadow``) resolves inside the container, never on the
host, and /proc magic links are refused. Opened O_PATH (no open side
effects: FIFOs and devices are not opened), and a file's first bytes are read
only when it is a regular file. The kernel prints the resulting fd's path
relative to the container's root, which is the name a rule needs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from dataclasses import dataclass

from sandbox.syscalls.consts import NR, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

PAGE = os.sysconf("SC_PAGE_SIZE")
PATH_MAX = 4096


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_readv = _libc.process_vm_readv
_readv.restype = ctypes.c_ssize_t
_readv.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.c_ulong,
]


def read_memory(pid: int, addr: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``addr`` in ``pid``; fewer when a page is not mapped."""
    if addr == 0 or size <= 0:
        return b""
    buf = ctypes.create_string_buffer(size)
    local = _Iovec(ctypes.cast(buf, ctypes.c_void_p), size)
    remote = _Iovec(addr, size)
    n = _readv(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    if n < 0:
        return b""
    return buf.raw[:n]


def read_string(pid: int, addr: int, limit: int = PATH_MAX) -> bytes | None:
    """The NUL-terminated string at ``addr`` (without the NUL), or None when unreadable.

    Read a page at a time, so a string ending just before an unmapped page is
    still found.
    """
    out = b""
    while len(out) < limit:
        chunk = min(limit - len(out), PAGE - (addr + len(out)) % PAGE)
        data = read_memory(pid, addr + len(out), chunk)
        if not data:
            return None
        nul = data.find(b"\0")
        if nul >= 0:
            return out + data[:nul]
        out += data
        if len(data) < chunk:
            return None
    return None


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def cwd(pid: int) -> str | None:
    """The task's working directory, as seen inside its root."""
    return _link(f"/proc/{pid}/cwd")


def fd_path(pid: int, fd: int) -> str | None:
    """What the task's ``fd`` refers to (``/usr/lib/...``, ``pipe:[N]``...), or None."""
    return _link(f"/proc/{pid}/fd/{fd}")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A path resolved inside a task's root: its canonical name and its type."""

    path: str  # canonical (symlinks resolved) or, when missing, the lexical path
    kind: str  # "file", "dir", "other" (device, fifo, socket), "missing", "unresolvable"


def _openat2(dirfd: int, path: bytes, flags: int, resolve: int) -> int:
    how = _OpenHow(flags, 0, resolve)
    r: int = _syscall(
        ctypes.c_long(NR["openat2"]),
        ctypes.c_long(dirfd),
        ctypes.c_char_p(path),
        ctypes.byref(how),
        ctypes.c_size_t(ctypes.sizeof(how)),
    )
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"openat2({path!r}): {os.strerror(e)}")
    return r


def _open_in_root(pid: int, path: str, flags: int) -> int:
    root = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _openat2(
            root, os.fsencode(path), flags | os.O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
        )
    finally:
        os.close(root)


def resolve(pid: int, path: str, *, follow: bool = True) -> Resolved:
    """Resolve an absolute inside path in ``pid``'s root (``follow=False``: like lstat)."""
    flags = os.O_PATH | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = _open_in_root(pid, path, flags)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return Resolved(path, "missing")
        return Resolved(path, "unresolvable")
    try:
        name = _link(f"/proc/self/fd/{fd}")
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if name is None or not name.startswith("/") or name.endswith(" (deleted)"):
        return Resolved(path, "unresolvable")
    kind = "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
    if stat.S_ISLNK(mode):
        kind = "symlink"
    return Resolved(name, kind)


def read_head(pid: int, path: str, size: int = 512) -> bytes | None:
    """The first bytes of a regular file inside ``pid``'s root, or None."""
    try:
        fd = _open_in_root(pid, path, os.O_PATH)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        rd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return os.pread(rd, size, 0)
    except OSError:
        return None
    finally:
        os.close(rd)


@dataclass(frozen=True, slots=True)
class Creds:
    """A task's ids (as seen from the host's pid namespace) and effective capabilities."""

    uids: tuple[int, ...]  # real, effective, saved, fs
    gids: tuple[int, ...]
    groups: tuple[int, ...]
    cap_eff: int
    nice: int = 0


OVERFLOW_ID = 65534


def _id_map(pid: int, which: str) -> list[tuple[int, int, int]]:
    """(inside, outside, count) lines of the task's uid_map/gid_map, outside = our view."""
    try:
        with open(f"/proc/{pid}/{which}") as f:
            return [tuple(int(x) for x in line.split()) for line in f if line.strip()]  # type: ignore[misc]
    except (OSError, ValueError):
        return []


def _inside(host_id: int, id_map: list[tuple[int, int, int]]) -> int:
    for inside, outside, count in id_map:
        if outside <= host_id < outside + count:
            return inside + host_id - outside
    return OVERFLOW_ID


def creds(pid: int) -> Creds | None:
    """The task's ids *inside its user namespace* and its effective capabilities.

    ``/proc/PID/status`` shows ids as the reader's namespace sees them (the run
    slot's host uid); the task's own uid_map translates them back, so they can
    be compared with the ids a syscall passes (chown(path, 0, 0)).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        values[key] = rest.split()
    umap, gmap = _id_map(pid, "uid_map"), _id_map(pid, "gid_map")
    try:
        return Creds(
            uids=tuple(_inside(int(x), umap) for x in values["Uid"]),
            gids=tuple(_inside(int(x), gmap) for x in values["Gid"]),
            groups=tuple(_inside(int(x), gmap) for x in values.get("Groups", [])),
            cap_eff=int(values["CapEff"][0], 16),
            nice=int(fields[16]),
        )
    except (KeyError, ValueError, IndexError):
        return None


__all__ = [
    "Creds",
    "Resolved",
    "creds",
    "cwd",
    "fd_path",
    "read_head",
    "read_memory",
    "read_string",
    "resolve",
]

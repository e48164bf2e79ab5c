"""Turn one syscall seen while learning into what it used: files, addresses, capabilities.

Supervisor side. Pure apart from the ``TaskView`` it is given, which reads the
blocked task's memory, fds and root (``LiveTask`` wraps
``sandbox.syscalls.taskmem``; the unit tests use a fake). Nothing here
answers the notification: ``observe`` does, after checking that the
notification id is still valid (the TOCTOU check that makes what was read
here belong to the blocked task).

What is decoded, and why it is enough for Landlock:

- ``open``/``openat``/``openat2``/``creat``: read/write/list by the access
  mode and the type of the file (O_PATH needs no right);
- ``execve``/``execveat``: EXECUTE on the file *and* on what the kernel opens
  for it without a syscall of its own: the ELF interpreter (PT_INTERP) and a
  script's ``#!`` interpreter, recursively;
- ``mmap`` with PROT_EXEC of a file: code the program maps (shared
  libraries), which AppArmor mediates (``m``) and Landlock does not;
- directory changes (mkdir, unlink, rename, link, symlink, truncate, mknod):
  recorded as writes, which the base's writable trees decide;
- ``socket``/``connect``/``bind``/``sendto``: families, addresses, ports.

stat, access, readlink and chdir need no Landlock right and are not decoded.
"""

from __future__ import annotations

import posixpath
import struct
from collections.abc import Callable
from typing import Protocol

from sandbox.learn import capinfer
from sandbox.learn.events import CapEvent, Event, FileEvent, NetEvent
from sandbox.learn.record import Access, NetUse
from sandbox.syscalls import taskmem
from sandbox.syscalls.consts import AT_FDCWD
from sandbox.syscalls.taskmem import Creds, Resolved

AT_EMPTY_PATH = 0x1000
O_ACCMODE = 0o3
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_TRUNC = 0o1000
O_PATH = 0o10000000
PROT_EXEC = 0x4
MAP_ANONYMOUS = 0x20
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
MAX_INTERPRETERS = 4


class TaskView(Protocol):
    """Read-only access to a task blocked in a notification (see ``LiveTask``)."""

    def read_string(self, pid: int, addr: int) -> bytes | None: ...
    def read_memory(self, pid: int, addr: int, size: int) -> bytes: ...
    def cwd(self, pid: int) -> str | None: ...
    def fd_path(self, pid: int, fd: int) -> str | None: ...
    def resolve(self, pid: int, path: str, follow: bool = True) -> Resolved: ...
    def read_head(self, pid: int, path: str, size: int) -> bytes | None: ...
    def creds(self, pid: int) -> Creds | None: ...


class LiveTask:
    """``TaskView`` on the real kernel (``sandbox.syscalls.taskmem``)."""

    def read_string(self, pid: int, addr: int) -> bytes | None:
        return taskmem.read_string(pid, addr)

    def read_memory(self, pid: int, addr: int, size: int) -> bytes:
        return taskmem.read_memory(pid, addr, size)

    def cwd(self, pid: int) -> str | None:
        return taskmem.cwd(pid)

    def fd_path(self, pid: int, fd: int) -> str | None:
        return taskmem.fd_path(pid, fd)

    def resolve(self, pid: int, path: str, follow: bool = True) -> Resolved:
        return taskmem.resolve(pid, path, follow=follow)

    def read_head(self, pid: int, path: str, size: int) -> bytes | None:
        return taskmem.read_head(pid, path, size)

    def creds(self, pid: int) -> Creds | None:
        return taskmem.creds(pid)


def s32(value: int) -> int:
    """A register holding a C int, as the int."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


class Decoder:
    """Decodes one syscall of task ``pid`` into events (see the module docstring)."""

    def __init__(self, task: TaskView) -> None:
        self.task = task
        self._by_name: dict[str, Callable[[int, tuple[int, ...], str], list[Event]]] = {
            "open": lambda p, a, n: self._open(p, AT_FDCWD, a[0], a[1], n),
            "openat": lambda p, a, n: self._open(p, a[0], a[1], a[2], n),
            "openat2": self._openat2,
            "creat": lambda p, a, n: self._open(p, AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, n),
            "execve": lambda p, a, n: self._exec(p, AT_FDCWD, a[0], 0, n),
            "execveat": lambda p, a, n: self._exec(p, a[0], a[1], a[4], n),
            "mmap": self._mmap,
            "socket": self._socket,
            "connect": lambda p, a, n: self._sockaddr(p, a[1], a[2], n),
            "bind": lambda p, a, n: self._sockaddr(p, a[1], a[2], n),
            "sendto": lambda p, a, n: self._sockaddr(p, a[4], a[5], n),
        }
        for name, where in _CHANGES.items():
            self._by_name[name] = self._changes(where)

    def decode(self, pid: int, name: str, args: tuple[int, ...]) -> list[Event]:
        """Events for one syscall; [] for syscalls with nothing to decode."""
        fn = self._by_name.get(name)
        events = fn(pid, args, name) if fn is not None else []
        events += capinfer.infer(name, args, lambda: self.task.creds(pid), _port(events))
        return events

    # ---------------------------------------------------------------- paths ----
    def path_at(self, pid: int, dirfd: int, addr: int, flags: int = 0) -> str | None:
        """The absolute inside path a (dirfd, path) pair names, or None when unknown."""
        raw = self.task.read_string(pid, addr) if addr else b""
        if raw is None:
            return None
        try:
            path = raw.decode()
        except UnicodeDecodeError:
            return None  # not representable in a TOML profile; nothing to learn from it
        if path.startswith("/"):
            return path
        if not path and not flags & AT_EMPTY_PATH:
            return None
        fd = s32(dirfd)
        base = self.task.cwd(pid) if fd == AT_FDCWD else self.task.fd_path(pid, fd)
        if base is None or not base.startswith("/") or base.endswith(" (deleted)"):
            return None
        return posixpath.join(base, path) if path else base

    def _where(self, pid: int, path: str, follow: bool) -> Resolved:
        """Canonical name and type; a missing final component is named in its parent."""
        res = self.task.resolve(pid, path, follow)
        if res.kind != "missing":
            return res
        lexical = posixpath.normpath(path)
        parent = self.task.resolve(pid, posixpath.dirname(lexical) or "/")
        if parent.kind == "dir":
            return Resolved(posixpath.join(parent.path, posixpath.basename(lexical)), "missing")
        return Resolved(lexical, "missing")

    # ------------------------------------------------------------- handlers ----
    def _open(self, pid: int, dirfd: int, addr: int, flags: int, via: str) -> list[Event]:
        if flags & O_PATH:
            return []
        path = self.path_at(pid, dirfd, addr)
        if path is None:
            return []
        res = self._where(pid, path, follow=True)
        out: list[Event] = []
        if res.kind == "missing":
            access: Access = "create" if flags & O_CREAT else "missing"
            return [FileEvent(res.path, access, path, via)]
        if res.kind == "unresolvable":
            return []
        if res.kind == "dir":
            return [FileEvent(res.path, "list", path, via)]
        mode = flags & O_ACCMODE
        if mode in (0, O_RDWR):
            out.append(FileEvent(res.path, "read" if res.kind == "file" else "other", path, via))
        if mode in (O_WRONLY, O_RDWR) or flags & O_TRUNC:
            out.append(FileEvent(res.path, "write", path, via))
        return out

    def _openat2(self, pid: int, a: tuple[int, ...], via: str) -> list[Event]:
        how = self.task.read_memory(pid, a[2], 8)
        if len(how) < 8:
            return []
        return self._open(pid, a[0], a[1], struct.unpack("=Q", how)[0], via)

    def _exec(self, pid: int, dirfd: int, addr: int, flags: int, via: str) -> list[Event]:
        path = self.path_at(pid, dirfd, addr, flags)
        return [] if path is None else self._exec_chain(pid, path, via, 0)

    def _exec_chain(self, pid: int, path: str, via: str, depth: int) -> list[Event]:
        res = self.task.resolve(pid, path)
        if res.kind != "file":
            return [FileEvent(res.path, "missing", path, via)] if res.kind == "missing" else []
        out: list[Event] = [FileEvent(res.path, "exec", path, via)]
        head = self.task.read_head(pid, res.path, 4096) or b""
        interp = elf_interpreter(head) or shebang(head)
        if interp and depth < MAX_INTERPRETERS:
            out += self._exec_chain(pid, interp, f"interpreter of {res.path}", depth + 1)
        return out

    def _mmap(self, pid: int, a: tuple[int, ...], via: str) -> list[Event]:
        fd = s32(a[4])
        if not a[2] & PROT_EXEC or a[3] & MAP_ANONYMOUS or fd < 0:
            return []
        path = self.task.fd_path(pid, fd)
        if path is None or not path.startswith("/") or path.startswith("/memfd:"):
            return []
        res = self.task.resolve(pid, path.removesuffix(" (deleted)"))
        if res.kind != "file":
            return []
        return [FileEvent(res.path, "map_exec", path, via)]

    def _changes(self, where: tuple[tuple[int, int], ...]) -> Callable[..., list[Event]]:
        def decode(pid: int, a: tuple[int, ...], via: str) -> list[Event]:
            out: list[Event] = []
            for dir_arg, path_arg in where:
                dirfd = AT_FDCWD if dir_arg < 0 else a[dir_arg]
                path = self.path_at(pid, dirfd, a[path_arg])
                if path is not None:
                    res = self._where(pid, path, follow=False)
                    out.append(FileEvent(res.path, "write", path, via))
            return out

        return decode

    def _socket(self, pid: int, a: tuple[int, ...], via: str) -> list[Event]:
        return [NetEvent(NetUse("socket", s32(a[0]), type=s32(a[1]) & 0xF))]

    def _sockaddr(self, pid: int, addr: int, size: int, via: str) -> list[Event]:
        if not addr or not size:
            return []
        data = self.task.read_memory(pid, addr, min(size, 128))
        use = parse_sockaddr(via, data)
        return [NetEvent(use)] if use is not None else []


# Syscalls that change directories: ((dirfd argument or -1 for cwd, path argument), ...)
_CHANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "mkdir": ((-1, 0),),
    "mkdirat": ((0, 1),),
    "rmdir": ((-1, 0),),
    "unlink": ((-1, 0),),
    "unlinkat": ((0, 1),),
    "rename": ((-1, 0), (-1, 1)),
    "renameat": ((0, 1), (2, 3)),
    "renameat2": ((0, 1), (2, 3)),
    "link": ((-1, 1),),
    "linkat": ((2, 3),),
    "symlink": ((-1, 1),),
    "symlinkat": ((1, 2),),
    "truncate": ((-1, 0),),
    "mknod": ((-1, 0),),
    "mknodat": ((0, 1),),
}


def _port(events: list[Event]) -> int | None:
    for e in events:
        if isinstance(e, NetEvent) and e.use.port is not None:
            return e.use.port
    return None


def parse_sockaddr(op: str, data: bytes) -> NetUse | None:
    """A sockaddr's family, address and port (AF_INET, AF_INET6, AF_UNIX)."""
    if len(data) < 2:
        return None
    family = struct.unpack_from("=H", data)[0]
    if family == AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        return NetUse(op, family, ".".join(str(b) for b in data[4:8]), port)
    if family == AF_INET6 and len(data) >= 24:
        port = struct.unpack_from(">H", data, 2)[0]
        words = struct.unpack_from(">8H", data, 8)
        return NetUse(op, family, ":".join(f"{w:x}" for w in words), port)
    if family == AF_UNIX:
        raw = data[2:]
        if raw[:1] == b"\0":
            name = "@" + raw[1:].split(b"\0", 1)[0].decode(errors="replace")
        else:
            name = raw.split(b"\0", 1)[0].decode(errors="replace")
        return NetUse(op, family, name)
    return NetUse(op, family)


def elf_interpreter(head: bytes) -> str | None:
    """PT_INTERP of a 64-bit little-endian ELF file's first bytes, or None."""
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return None
    phoff = struct.unpack_from("<Q", head, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    for i in range(min(phnum, 64)):
        off = phoff + i * phentsize
        if off + 56 > len(head):
            return None
        p_type = struct.unpack_from("<I", head, off)[0]
        if p_type == 3:  # PT_INTERP
            p_offset = struct.unpack_from("<Q", head, off + 8)[0]
            p_filesz = struct.unpack_from("<Q", head, off + 32)[0]
            raw = head[p_offset : p_offset + p_filesz].split(b"\0", 1)[0]
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                return None
            return text if text.startswith("/") else None
    return None


def shebang(head: bytes) -> str | None:
    """The interpreter of a ``#!`` script (the first word after ``#!``), or None."""
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    if not words:
        return None
    try:
        text = words[0].decode()
    except UnicodeDecodeError:
        return None
    return text if text.startswith("/") else None


__all__ = [
    "CapEvent",
    "Decoder",
    "Event",
    "FileEvent",
    "LiveTask",
    "NetEvent",
    "TaskView",
    "elf_interpreter",
    "parse_sockaddr",
    "shebang",
]

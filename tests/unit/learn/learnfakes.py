"""Fakes for the learning pipeline: a task's memory and root, answers, a scripted program."""

from __future__ import annotations

import itertools
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandbox.learn.runs import Handler, Outcome
from sandbox.policy.load import LoadedProfile
from sandbox.seccomp.actions import SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.reference import syscall_ret
from sandbox.seccomp.tables import table
from sandbox.syscalls.notify import Notification
from sandbox.syscalls.taskmem import Creds, Resolved

X86_64 = 0xC000003E
PID = 4242


def nr(name: str) -> int:
    n = table("x86_64").nr(name)
    assert n is not None, name
    return n


@dataclass
class FakeTask:
    """Memory is a dict addr -> bytes; the root a dict path -> kind (symlinks: links)."""

    memory: dict[int, bytes] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # canonical path -> kind
    links: dict[str, str] = field(default_factory=dict)  # path -> canonical target
    heads: dict[str, bytes] = field(default_factory=dict)
    fds: dict[int, str] = field(default_factory=dict)
    cwd_path: str = "/box"
    ids: Creds = field(default_factory=lambda: Creds((1000,) * 4, (1000,) * 4, (), 0))
    _addr: itertools.count[int] = field(default_factory=lambda: itertools.count(0x1000, 0x1000))

    def put(self, data: bytes) -> int:
        addr = next(self._addr)
        self.memory[addr] = data
        return addr

    def string(self, text: str) -> int:
        return self.put(text.encode() + b"\0")

    def read_string(self, pid: int, addr: int) -> bytes | None:
        data = self.memory.get(addr)
        return None if data is None else data.split(b"\0", 1)[0]

    def read_memory(self, pid: int, addr: int, size: int) -> bytes:
        return self.memory.get(addr, b"")[:size]

    def cwd(self, pid: int) -> str | None:
        return self.cwd_path

    def fd_path(self, pid: int, fd: int) -> str | None:
        return self.fds.get(fd)

    def resolve(self, pid: int, path: str, follow: bool = True) -> Resolved:
        path = posixpath.normpath(path)
        if follow:
            path = self.links.get(path, path)
        kind = self.files.get(path)
        return Resolved(path, kind) if kind else Resolved(path, "missing")

    def read_head(self, pid: int, path: str, size: int) -> bytes | None:
        return self.heads.get(path)

    def creds(self, pid: int) -> Creds | None:
        return self.ids


@dataclass
class FakeAnswer:
    """Records answers; ``invalid`` ids fail the TOCTOU check."""

    answers: list[tuple[str, int, int]] = field(default_factory=list)
    invalid: set[int] = field(default_factory=set)

    def cont(self, listener: int, nid: int) -> None:
        self.answers.append(("continue", nid, 0))

    def errno(self, listener: int, nid: int, err: int) -> None:
        self.answers.append(("errno", nid, err))

    def valid(self, listener: int, nid: int) -> bool:
        return nid not in self.invalid


_ids = itertools.count(1)


def notif(name: str, *args: int) -> Notification:
    full = tuple(args) + (0,) * (6 - len(args))
    return Notification(next(_ids), PID, nr(name), X86_64, 0, full)


Call = tuple[str, tuple[int, ...]]


@dataclass
class ScriptedProgram:
    """A ``Runner`` standing for a program: ``script(stdin)`` lists its syscalls.

    Learning runs feed each call to the handler. Enforced runs evaluate each call
    against the profile's resolved seccomp section (an errno answer is coped
    with, anything else but ALLOW kills), then each file the program needs
    against its path rules (a missing grant: exit 1, EACCES on stderr).
    """

    script: Callable[[bytes | None], list[Call]]
    files_needed: Callable[[bytes | None], list[tuple[str, str]]] = lambda _s: []
    output: Callable[[bytes | None], bytes] = lambda s: b"ok\n"
    endless: bool = False
    runs: list[str] = field(default_factory=list)
    walls: list[float | None] = field(default_factory=list)  # each run's wall-time limit

    def run(
        self,
        profile: LoadedProfile,
        stdin: bytes | None,
        *,
        ablate: frozenset[str] = frozenset(),
        on_notification: Handler | None = None,
    ) -> Outcome:
        calls = self.script(stdin)
        self.walls.append(profile.policy.limits.wall_time)
        if on_notification is not None:
            self.runs.append("learn")
            for name, args in calls:
                refused = on_notification(notif(name, *args), 3)
                if refused is not None:
                    return Outcome("SECURITY_VIOLATION", None, 9, b"", b"", refused.syscall)
            if self.endless:
                return Outcome("WALL_TIME_LIMIT", None, 9, b"", b"")
            return Outcome("OK", 0, None, self.output(stdin), b"")
        self.runs.append("enforce")
        spec = resolve(profile.policy.seccomp)
        for name, args in calls:
            ret = syscall_ret(spec, name, args + (0,) * (6 - len(args)))
            if ret & SECCOMP_RET_ACTION_FULL == SECCOMP_RET_ERRNO:
                continue  # the program copes with the errno (clone3 -> clone)
            if ret != SECCOMP_RET_ALLOW:
                return Outcome("SECURITY_VIOLATION", None, 9, b"", b"", name)
        fs = profile.policy.filesystem
        grants = {"read": fs.read_paths, "exec": fs.exec_paths, "list": fs.list_paths}
        for kind, path in self.files_needed(stdin):
            if not any(path == p or path.startswith(p + "/") for p in grants[kind]):
                return Outcome("OK", 1, None, b"", f"{path}: EACCES\n".encode())
        return Outcome("OK", 0, None, self.output(stdin), b"")


def calls(*items: Call | str) -> list[Call]:
    return [(c, ()) if isinstance(c, str) else c for c in items]


def sequence(*names: str) -> Sequence[Call]:
    return [(n, ()) for n in names]

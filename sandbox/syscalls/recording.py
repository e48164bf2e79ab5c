"""RecordingSyscalls: a fake kernel that records every call, for unit tests.

Shipped in the package (not hidden in tests/) so library users can unit-test
their integrations too. It can be told to fail the n-th call of a syscall
(youki's ``set_ret_err_times``); ``execve`` and ``exit`` raise instead of
returning, so a test can run the whole launcher sequence to its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sandbox.syscalls.api import WaitResult

_FD_RETURNING = {
    "fsopen",
    "fsmount",
    "open_tree",
    "openat",
    "openat2",
    "landlock_create_ruleset",
    "pidfd_getfd",
    "pty_peer",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded syscall: its kernel name and arguments."""

    name: str
    args: tuple[Any, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(str(a) for a in self.args)})"


class ExecCalled(Exception):
    """Raised by the fake ``execve``: the sequence reached its end."""

    def __init__(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        super().__init__(path)
        self.path, self.argv, self.env = path, list(argv), dict(env)


class ExitCalled(Exception):
    """Raised by the fake ``exit``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class RecordingSyscalls:
    """Records calls; returns fds from a counter; forks follow the child (returns 0)."""

    calls: list[Call] = field(default_factory=list)
    fork_results: list[int] = field(default_factory=list)
    read_results: list[bytes] = field(default_factory=list)
    listdir_results: dict[str, list[str]] = field(default_factory=dict)  # path -> names
    _failures: dict[str, tuple[int, int]] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _fds: Iterable[int] = field(default_factory=lambda: itertools.count(100))

    def fail_on(self, name: str, errno: int, nth: int = 1) -> None:
        """Make the ``nth`` call of ``name`` raise ``OSError(errno)``."""
        self._failures[name] = (nth, errno)

    def names(self) -> list[str]:
        """The recorded syscall names, in order."""
        return [c.name for c in self.calls]

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append(Call(name, args))
        n = self._counts.get(name, 0) + 1
        self._counts[name] = n
        fail = self._failures.get(name)
        if fail and fail[0] == n:
            import os

            raise OSError(fail[1], f"{name}: {os.strerror(fail[1])} (injected)")

    def __getattr__(self, name: str) -> Any:
        from sandbox.syscalls.api import Syscalls

        if name.startswith("_") or name not in Syscalls.__dict__:
            raise AttributeError(name)

        def method(*args: Any) -> Any:
            self._record(name, *args)
            if name in _FD_RETURNING:
                return next(iter(self._fds))
            if name in ("pipe", "socketpair"):
                return (next(iter(self._fds)), next(iter(self._fds)))
            if name == "recv_fd":
                return (b"C", next(iter(self._fds)))
            if name == "fork":
                return self.fork_results.pop(0) if self.fork_results else 0
            if name == "wait4":
                return WaitResult(pid=args[0], status=0)
            if name == "read":
                return self.read_results.pop(0) if self.read_results else b"\x01"
            if name == "write":
                return len(args[1])
            if name in ("fstat", "fstat_path"):
                import os
                import zlib

                # A path's file system is its own (st_dev from the path): two paths on
                # one device read as two devices unless a test says otherwise.
                dev = zlib.crc32(args[0].encode()) if name == "fstat_path" else 0
                return os.stat_result((0o100644, 0, dev, 1, 0, 0, 0, 0, 0, 0))
            if name == "listdir":
                return list(self.listdir_results.get(args[0], []))
            if name in ("getpid", "getppid"):
                return 1
            if name in ("prctl", "setsid", "seccomp_set_filter"):
                return 0
            return None

        return method

    def execve(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
        self._record("execve", path, tuple(argv))
        raise ExecCalled(path, argv, env)

    def exit(self, code: int) -> NoReturn:
        self._record("exit", code)
        raise ExitCalled(code)

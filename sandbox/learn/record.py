"""What learning runs saw: syscalls with the argument values that matter, files, network,
capabilities, refusals, and how each run ended (pure data, supervisor side).

One ``Record`` accumulates over every input of a learning round; each entry
remembers which runs (1-based input numbers) needed it, so the generated
profile can say so. The record is bounded: a payload that opens a million
distinct paths fills it up, and the record is then marked incomplete instead
of growing without end (learning runs untrusted code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sandbox.seccomp.setid import MODE_ARG, SETID_BITS

# Argument values recorded per syscall: (argument index, mask applied to it).
# clone's flags and ioctl's request and prctl's option are C ints or the kernel
# uses their low 32 bits only; socket families are compared in full, like the
# reviewed groups do (seccomp_policies/groups/*.toml).
TRACKED: dict[str, tuple[int, int]] = {
    "clone": (0, 0xFFFFFFFF),
    "socket": (0, 0xFFFFFFFFFFFFFFFF),
    "socketpair": (0, 0xFFFFFFFFFFFFFFFF),
    "ioctl": (1, 0xFFFFFFFF),
    "prctl": (0, 0xFFFFFFFF),
    "personality": (0, 0xFFFFFFFFFFFFFFFF),
    # The mode's set-uid and set-gid bits (fs_read's and fs_write's rules):
    # a learned profile keeps them refused, as its base does.
    **{name: (arg, SETID_BITS) for name, arg in MODE_ARG.items()},
}

MAX_FILES = 20000
MAX_VALUES = 256
MAX_REFUSALS = 1000

Treatment = Literal["allowed", "beyond", "errno", "withheld"]
Access = Literal["read", "write", "create", "list", "exec", "map_exec", "missing", "other"]


@dataclass
class SyscallUse:
    """One syscall the program made, and what the base would have done with it.

    ``treatment``: ``allowed`` (the base allows it: recorded, let through),
    ``beyond`` (the base's default would refuse it: learning lets it through
    and the profile adds it), ``errno`` (the base answers an errno: answered
    the same while learning, and kept in the profile), ``withheld`` (beyond
    the base, and a call verify flags as dangerous: answered EPERM while
    learning and in the profile, unless ``--allow-dangerous``; ``note`` says
    which rule).
    """

    name: str
    treatment: Treatment
    errno: int = 0
    count: int = 0
    runs: set[int] = field(default_factory=set)
    values: dict[int, set[int]] = field(default_factory=dict)  # allowed value -> runs
    refused_values: dict[int, int] = field(default_factory=dict)  # value -> errno answered
    note: str = ""


@dataclass
class FileUse:
    """A path (canonical, inside the container) and how the program used it."""

    path: str
    access: set[str] = field(default_factory=set)
    runs: set[int] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)  # the names used, when not canonical
    via: set[str] = field(default_factory=set)  # syscalls, or "ELF interpreter of X"


@dataclass
class Refusal:
    """An operation refused while learning, as the base refuses it (never learned)."""

    syscall: str
    reason: str
    runs: set[int] = field(default_factory=set)
    count: int = 0
    example: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NetUse:
    """A socket created or an address used: ``op`` is socket, connect, bind or sendto."""

    op: str
    family: int
    address: str = ""
    port: int | None = None
    type: int | None = None


@dataclass
class RunInfo:
    """How one learning run ended."""

    index: int
    label: str
    verdict: str
    exit_code: int | None
    signal: int | None
    complete: bool
    note: str = ""


@dataclass
class Record:
    """Everything one learning round saw, over all inputs."""

    syscalls: dict[str, SyscallUse] = field(default_factory=dict)
    files: dict[str, FileUse] = field(default_factory=dict)
    refused: dict[tuple[str, str], Refusal] = field(default_factory=dict)
    caps: dict[str, set[str]] = field(default_factory=dict)  # CAP_X -> evidence
    net: dict[NetUse, set[int]] = field(default_factory=dict)
    runs: list[RunInfo] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    dropped: int = 0  # notifications whose id went invalid before we recorded them

    @property
    def complete(self) -> bool:
        """Every run ended by itself and nothing was left out."""
        return not self.incomplete and all(r.complete for r in self.runs)

    def _full(self, what: str) -> None:
        note = f"record full: more than the limit of distinct {what}; the rest was not recorded"
        if note not in self.incomplete:
            self.incomplete.append(note)

    def syscall(
        self, name: str, run: int, treatment: Treatment, errno: int = 0, note: str = ""
    ) -> SyscallUse:
        """Count one use of ``name``; returns its entry."""
        use = self.syscalls.get(name)
        if use is None:
            use = self.syscalls[name] = SyscallUse(name, treatment, errno, note=note)
        use.count += 1
        use.runs.add(run)
        return use

    def value(self, name: str, run: int, value: int, refused_errno: int = 0) -> None:
        """An argument value of a tracked syscall: allowed, or refused with an errno."""
        use = self.syscalls[name]
        if len(use.values) + len(use.refused_values) >= MAX_VALUES and (
            value not in use.values and value not in use.refused_values
        ):
            self._full(f"{name} argument values ({MAX_VALUES})")
            return
        if refused_errno:
            use.refused_values[value] = refused_errno
        else:
            use.values.setdefault(value, set()).add(run)

    def file(self, path: str, access: Access, run: int, *, asked: str = "", via: str = "") -> None:
        """``path`` was used with ``access`` in ``run``."""
        use = self.files.get(path)
        if use is None:
            if len(self.files) >= MAX_FILES:
                self._full(f"paths ({MAX_FILES})")
                return
            use = self.files[path] = FileUse(path)
        use.access.add(access)
        use.runs.add(run)
        if asked and asked != path and len(use.asked) < 8:
            use.asked.add(asked)
        if via and len(use.via) < 8:
            use.via.add(via)

    def refusal(self, syscall: str, reason: str, run: int, args: tuple[int, ...] = ()) -> None:
        """An operation the base refuses was refused."""
        key = (syscall, reason)
        entry = self.refused.get(key)
        if entry is None:
            if len(self.refused) >= MAX_REFUSALS:
                self._full(f"refusals ({MAX_REFUSALS})")
                return
            entry = self.refused[key] = Refusal(syscall, reason, example=args)
        entry.runs.add(run)
        entry.count += 1

    def cap(self, cap: str, evidence: str) -> None:
        """Capability ``cap`` would have been needed (its syscall failed with EPERM)."""
        ev = self.caps.setdefault(cap, set())
        if len(ev) < 8:
            ev.add(evidence)

    def network(self, use: NetUse, run: int) -> None:
        """A socket or an address the program used."""
        if use not in self.net and len(self.net) >= MAX_REFUSALS:
            self._full(f"network uses ({MAX_REFUSALS})")
            return
        self.net.setdefault(use, set()).add(run)


__all__ = [
    "MAX_FILES",
    "MAX_VALUES",
    "TRACKED",
    "Access",
    "FileUse",
    "NetUse",
    "Record",
    "Refusal",
    "RunInfo",
    "SyscallUse",
]

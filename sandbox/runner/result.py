"""Typed results of a run: verdict, enforcement record, accounting (frozen dataclasses)."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.layers import Enforcement


class Verdict(enum.StrEnum):
    """What happened to the program, as a judge shows it."""

    OK = "OK"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    TIME_LIMIT = "TIME_LIMIT"
    WALL_TIME_LIMIT = "WALL_TIME_LIMIT"
    MEMORY_LIMIT = "MEMORY_LIMIT"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SECURITY_VIOLATION = "SECURITY_VIOLATION"
    SPAWN_ERROR = "SPAWN_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"


@dataclass(frozen=True, slots=True)
class Violation:
    """A denied syscall recorded by the supervisor (never inferred from an exit status)."""

    syscall: str
    nr: int
    arch: str
    args: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Accounting figures. ``memory_peak`` is the run's memory figure: the cgroup leaf's
    peak, all the run's processes, none of the launcher's pages. (There is no
    ``max_rss``: wait4's figure carries the launcher's pre-exec pages across execve,
    16 MiB for ``sh -c echo``, so it said nothing about the payload.)"""

    cpu_time: float | None = None
    cpu_user: float | None = None
    cpu_system: float | None = None
    wall_time: float | None = None
    memory_peak: int | None = None
    oom_killed: bool = False
    csw_voluntary: int | None = None
    csw_forced: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    rchar: int | None = None
    wchar: int | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """The run record (``--meta``): verdict, exit, identity, enforcement and usage."""

    verdict: Verdict
    exit_code: int | None
    signal: int | None
    policy_digest: str
    profile: str
    run_id: str
    host_uid: int | None
    id_mode: str
    enforcement: dict[str, Enforcement]
    usage: Usage = field(default_factory=Usage)
    violation: Violation | None = None
    denied: tuple[Violation, ...] = ()
    message: str = ""
    stdout: bytes | None = None
    stderr: bytes | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    # collect= names that were not returned, and why (never dropped silently)
    collect_errors: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    verification: str = ""  # hash of the verification report the run was admitted on
    # The limits the run was held to (the policy's, overrides included; unset ones left out).
    limits: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> int:
        """Shell-style status: the exit code, or 128+N when killed by signal N."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 125

    def record(self) -> dict[str, Any]:
        """The JSON run record (flat usage keys, as the CLI's --meta writes it)."""
        rec: dict[str, Any] = {
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "status": self.status,
            "policy_digest": self.policy_digest,
            "verification": self.verification,
            "profile": self.profile,
            "run_id": self.run_id,
            "host_uid": self.host_uid,
            "id_mode": self.id_mode,
            "enforcement": {k: asdict(v) for k, v in self.enforcement.items()},
            "violation": asdict(self.violation) if self.violation else None,
            "denied": [asdict(d) for d in self.denied],
            "message": self.message,
            "collect_errors": dict(self.collect_errors),
            "notes": list(self.notes),
            "limits": dict(self.limits),
        }
        rec.update(asdict(self.usage))
        return rec

    def to_json(self) -> str:
        """The record as indented JSON."""
        return json.dumps(self.record(), indent=2, sort_keys=False)

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
    CANCELLED = "CANCELLED"  # ended by the caller (RunHandle.cancel), not by a limit


# Verdicts for which the sandbox ended the program (or would have): a CLI run that
# ends with one of them never exits 0.
ENDED_BY_SANDBOX = frozenset(
    {
        Verdict.TIME_LIMIT,
        Verdict.WALL_TIME_LIMIT,
        Verdict.MEMORY_LIMIT,
        Verdict.OUTPUT_LIMIT,
        Verdict.SECURITY_VIOLATION,
        Verdict.CANCELLED,
    }
)


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

    # Status of a run that never started (SPAWN_ERROR: 127 not found, 126 cannot
    # execute, 125 the sandbox failed); None for a run that did.
    failure_status: int | None = None

    @property
    def status(self) -> int:
        """Shell-style status: the exit code, or 128+N when killed by signal N."""
        if self.signal is not None:
            return 128 + self.signal
        if self.exit_code is not None:
            return self.exit_code
        return self.failure_status if self.failure_status is not None else 125

    @property
    def cli_status(self) -> int:
        """``sandbox exec``'s exit status: :attr:`status`, except that a run the sandbox
        ended (a limit, a violation, a cancel) never reads as success: 128+N of the
        signal that ended it, 137 (SIGKILL's) when the program was not signalled."""
        if self.verdict in ENDED_BY_SANDBOX and self.signal is None:
            return 137
        return self.status

    def summary(self) -> str:
        """One line saying why the run ended: ``TIME_LIMIT: CPU time 1.01 s > limit 1 s``."""
        return f"{self.verdict.value}: {_reason(self)}"

    @classmethod
    def failure(
        cls,
        verdict: Verdict,
        *,
        profile: str,
        policy_digest: str,
        message: str,
        status: int,
        enforcement: dict[str, Enforcement] | None = None,
        limits: dict[str, Any] | None = None,
    ) -> RunResult:
        """The result of a run that never started, with every key a record has."""
        return cls(
            verdict=verdict,
            exit_code=None,
            signal=None,
            policy_digest=policy_digest,
            profile=profile,
            run_id="",
            host_uid=None,
            id_mode="",
            enforcement=dict(enforcement or {}),
            message=message,
            limits=dict(limits or {}),
            failure_status=status,
        )

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


def _size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n} bytes"


def _signal_name(sig: int) -> str:
    import signal

    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _reason(r: RunResult) -> str:
    """Why the run ended, in words, from the verdict, the figures and the limits."""
    lim, u = r.limits, r.usage
    v = r.verdict
    if v is Verdict.TIME_LIMIT:
        cpu = f"{u.cpu_time:.3f} s" if u.cpu_time is not None else "?"
        return f"CPU time {cpu}, limit {lim.get('cpu_time', '?')} s"
    if v is Verdict.WALL_TIME_LIMIT:
        wall = f"{u.wall_time:.3f} s" if u.wall_time is not None else "?"
        return f"wall time {wall}, limit {lim.get('wall_time', '?')} s"
    if v is Verdict.MEMORY_LIMIT:
        peak = f", peak {_size(u.memory_peak)}" if u.memory_peak is not None else ""
        cap = _size(lim["memory"]) if "memory" in lim else "?"
        return f"memory limit {cap} reached (out-of-memory kill{peak})"
    if v is Verdict.OUTPUT_LIMIT:
        if r.signal == 25:  # SIGXFSZ: RLIMIT_FSIZE
            return f"file size limit {_size(lim.get('file_size', 0))} (SIGXFSZ)"
        return f"output limit {_size(lim['output']) if 'output' in lim else '?'} reached"
    if v is Verdict.SECURITY_VIOLATION:
        return r.message or "denied syscall"
    if v is Verdict.CANCELLED:
        return "cancelled by the caller"
    if v is Verdict.RUNTIME_ERROR:
        if r.signal is not None:
            return f"killed by {_signal_name(r.signal)}"
        return f"exited with status {r.exit_code}"
    if v is Verdict.OK:
        return "exited with status 0"
    return r.message or "the sandbox failed"

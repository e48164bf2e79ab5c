"""A run record as ioi/isolate reports it: the meta file, the status line, the exit status.

Used by the isolate front end (``sandbox.isolate``) and by ``sandbox exec
--meta-format isolate``. Pure. isolate's contract, as its manual and CMS's use of it have it:

- keys ``time`` and ``time-wall`` (seconds), ``max-rss`` and ``cg-mem`` (KiB;
  both the run's cgroup peak here, ``cg-mem`` only with ``--cg``),
  ``csw-voluntary``, ``csw-forced``, ``exitcode`` or ``exitsig``, ``killed``,
  ``cg-oom-killed``, ``status``, ``message`` (plus ``verdict``, ours: parsers
  ignore keys they do not know);
- every run that is not OK has a ``status`` with the precedence XX > TO > SG > RE:
  a sandbox failure is XX; a CPU or wall timeout is TO (never SG with signal 9;
  no ``exitsig`` then), and the wall one's message says "wall"; a fatal signal
  is SG (an out-of-memory kill adds ``cg-oom-killed``); a non-zero exit is RE;
- the exit status is 0 for OK, 1 for any other finished run and 2 only when
  the sandbox itself failed (XX); any other status breaks the client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The sandbox ended these (isolate's "killed"); an out-of-memory kill is the kernel's.
KILLED_BY_US = (
    "TIME_LIMIT",
    "WALL_TIME_LIMIT",
    "OUTPUT_LIMIT",
    "SECURITY_VIOLATION",
    "CANCELLED",
)


@dataclass
class Outcome:
    """The meta lines, the status line for stderr and the exit status of one run."""

    lines: list[tuple[str, Any]] = field(default_factory=list)
    status: str | None = None  # RE, SG, TO, XX; None: OK
    message: str = ""
    exit_code: int = 0

    def put(self, key: str, value: Any) -> None:
        """Add a key (a None value is left out)."""
        if value is not None:
            self.lines.append((key, value))

    def text(self) -> str:
        """The meta file: one ``key:value`` per line."""
        return "".join(f"{k}:{v}\n" for k, v in self.lines)


def outcome(record: dict[str, Any], *, time_limit: float | None = None, cg: bool = True) -> Outcome:
    """isolate's view of a run record (see the module docstring).

    ``time_limit``: isolate's ``-t``: a run whose CPU time went past it is TO even
    when it ended by itself inside ``--extra-time``.
    """
    out = Outcome()
    verdict = record.get("verdict", "INTERNAL_ERROR")
    if verdict in ("SPAWN_ERROR", "INTERNAL_ERROR"):
        return failure(str(record.get("message") or "the sandbox failed"))
    cpu, wall = record.get("cpu_time"), record.get("wall_time")
    peak = record.get("memory_peak")
    out.put("time", f"{cpu:.3f}" if cpu is not None else None)
    out.put("time-wall", f"{wall:.3f}" if wall is not None else None)
    out.put("max-rss", peak // 1024 if peak is not None else None)
    out.put("csw-voluntary", record.get("csw_voluntary"))
    out.put("csw-forced", record.get("csw_forced"))
    if cg:
        out.put("cg-mem", peak // 1024 if peak is not None else None)
    if record.get("oom_killed"):
        out.put("cg-oom-killed", 1)
    sig, code = record.get("signal"), record.get("exit_code")
    timed_out = verdict == "TIME_LIMIT" or (
        time_limit is not None and cpu is not None and cpu > time_limit
    )
    if verdict in KILLED_BY_US:
        out.put("killed", 1)
    if verdict == "WALL_TIME_LIMIT":
        out.status, out.message = "TO", "Time limit exceeded (wall clock)"
    elif timed_out:
        out.status, out.message = "TO", "Time limit exceeded"
    elif verdict == "CANCELLED":
        out.put("exitsig", sig if sig is not None else 9)
        out.status, out.message = "SG", "Interrupted"
    elif sig is not None:
        out.put("exitsig", sig)
        out.status, out.message = "SG", f"Caught fatal signal {sig}"
        if verdict == "SECURITY_VIOLATION" and record.get("message"):
            out.message += f" ({record['message']})"
    else:
        out.put("exitcode", code if code is not None else 0)
        if code:
            out.status, out.message = "RE", f"Exited with error status {code}"
        elif verdict not in ("OK", "RUNTIME_ERROR"):
            # A limit the sandbox enforced ended a program that then exited 0.
            out.status, out.message = "SG", f"{verdict}: killed by the sandbox"
    out.put("status", out.status)
    out.put("message", out.message or None)
    out.put("verdict", verdict)
    out.exit_code = 0 if out.status is None else 1
    return out


def failure(message: str) -> Outcome:
    """A failure of the sandbox itself: status XX, exit 2."""
    out = Outcome(status="XX", message=message.splitlines()[0] if message else "", exit_code=2)
    out.put("status", "XX")
    out.put("message", out.message)
    return out


def isolate_meta(record: dict[str, Any]) -> str:
    """The run record rendered as an isolate meta file (``--meta-format isolate``)."""
    return outcome(record).text()


__all__ = ["Outcome", "failure", "isolate_meta", "outcome"]

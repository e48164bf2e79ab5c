"""Verdict classification: a pure function of what the supervisor observed.

A security violation comes only from the supervisor's own record (a seccomp
notification or a bad-arch kill it saw), never from an exit status: a program
can send itself SIGSYS. Limits the supervisor enforced itself (CPU polling,
wall clock, output caps) are known by the reason it killed the run.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Literal

from sandbox.runner.result import Verdict

KillReason = Literal["time", "wall", "output", "violation", "memory", "cancel"]


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the verdict depends on."""

    spawn_failed: bool = False
    status: int | None = None  # raw wait status of the payload; None if never reported
    killed_for: KillReason | None = None
    violation: bool = False
    oom_killed: bool = False
    cpu_time: float | None = None
    cpu_limit: float | None = None
    file_size_limit: int | None = None  # RLIMIT_FSIZE, when the profile sets one


def exit_and_signal(status: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) of a raw wait status."""
    if status is None:
        return None, None
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


def classify(o: Observation) -> Verdict:
    """Map an observation to a verdict (first matching rule wins)."""
    if o.spawn_failed:
        return Verdict.SPAWN_ERROR
    if o.violation or o.killed_for == "violation":
        return Verdict.SECURITY_VIOLATION
    if o.killed_for == "time":
        return Verdict.TIME_LIMIT
    if o.killed_for == "wall":
        return Verdict.WALL_TIME_LIMIT
    if o.killed_for == "cancel":
        return Verdict.CANCELLED
    if o.killed_for == "output":
        return Verdict.OUTPUT_LIMIT
    if o.oom_killed or o.killed_for == "memory":
        return Verdict.MEMORY_LIMIT
    if o.status is None:
        return Verdict.INTERNAL_ERROR
    code, sig = exit_and_signal(o.status)
    # Signals prove nothing on their own: a program can send itself any of them.
    # The kernel's SIGXCPU comes past RLIMIT_CPU, set above the CPU limit, so the
    # CPU figure is what tells a time limit; a SIGXFSZ can be the kernel's only
    # when there is a file size limit.
    if o.cpu_limit is not None and o.cpu_time is not None and o.cpu_time >= o.cpu_limit:
        return Verdict.TIME_LIMIT
    if sig == signal.SIGXFSZ and o.file_size_limit is not None:
        return Verdict.OUTPUT_LIMIT
    if code == 0:
        return Verdict.OK
    return Verdict.RUNTIME_ERROR

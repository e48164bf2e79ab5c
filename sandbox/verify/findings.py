"""``Finding``: one verification result, with an id, a severity and the fix.

Pure data shared by every verify stage (compile checks, simulation, lint).
Severity ``error`` blocks a run; ``warning`` is reported. Ids are stable so
that reports can be diffed and findings suppressed by id; the ranges are
SBX1xx lint, SBX2xx seccomp simulation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Severity = Literal["error", "warning"]

# id -> one-line title, for reports and documentation.
SIMULATION_IDS: Mapping[str, str] = MappingProxyType(
    {
        "SBX201": "the compiled BPF does not do what the policy says for a syscall",
        "SBX202": "the compiled BPF would be refused by the kernel",
        "SBX203": "a foreign ABI is not killed (bad-arch action is not KILL_PROCESS)",
        "SBX204": "the artifact was not built from this spec (key mismatch)",
    }
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found before anything runs."""

    id: str  # "SBX201"
    severity: Severity
    layer: str  # "seccomp", "apparmor", ...
    message: str  # what is wrong, naming the syscall/path/capability and arch
    fix: str  # what to do about it

    @property
    def is_blocking(self) -> bool:
        """Errors refuse the run; warnings are only reported."""
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.id} {self.severity} [{self.layer}] {self.message} (fix: {self.fix})"


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that refuse a run."""
    return [f for f in findings if f.is_blocking]

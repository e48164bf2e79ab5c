"""``Finding``: one verification result, with an id, a severity and the fix.

Pure data shared by every verify stage (compile checks, simulation, lint).
Severity ``error`` blocks a run; ``warning`` is reported. Ids are stable so
that reports can be diffed and findings suppressed by id; the ranges are
SBX1xx lint (titles in ``lint.RULES``), SBX2xx seccomp simulation, SBX3xx
compile checks.
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
        "SBX203": "a foreign ABI does not go to the supervisor (bad-arch action is not USER_NOTIF)",
        "SBX204": "the artifact was not built from this spec (key mismatch)",
    }
)

COMPILE_IDS: Mapping[str, str] = MappingProxyType(
    {
        "SBX301": "the seccomp filter does not build for the host's ABI",
        "SBX302": "the seccomp filter does not build for a foreign x86 ABI",
        "SBX303": "the AppArmor profile cannot be rendered",
        "SBX304": "apparmor_parser refuses the generated AppArmor profile",
        "SBX305": "a required layer cannot be enforced on this host: exec would refuse",
        "SBX306": "the mount plan cannot be built",
        "SBX307": "the cgroup limits are invalid",
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
    subject: str = ""  # the syscall, capability, path or rule it is about (for diffs)

    @property
    def is_blocking(self) -> bool:
        """Errors refuse the run; warnings are only reported."""
        return self.severity == "error"

    def __str__(self) -> str:
        return f"{self.id} {self.severity} [{self.layer}] {self.message} (fix: {self.fix})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (the report's ``findings`` entries)."""
        return {
            "id": self.id,
            "severity": self.severity,
            "layer": self.layer,
            "subject": self.subject,
            "message": self.message,
            "fix": self.fix,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> Finding:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: for a missing or mistyped field or an unknown severity.
        """
        values = {k: raw.get(k) for k in ("id", "severity", "layer", "subject", "message", "fix")}
        if not all(isinstance(v, str) for v in values.values()):
            raise ValueError(f"malformed finding {dict(raw)!r}")
        if values["severity"] not in ("error", "warning"):
            raise ValueError(f"unknown severity {values['severity']!r}")
        return cls(**values)  # type: ignore[arg-type]


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that refuse a run."""
    return [f for f in findings if f.is_blocking]

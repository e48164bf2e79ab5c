"""What a learning session asks for and what it found (``LearnOptions``, ``LearnResult``).

Pure data, plus the report: the status lines the profile's header and the CLI
print, and the JSON written by ``sandbox learn --report``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.learn.record import Record
from sandbox.learn.rules import Derived, Unit
from sandbox.learn.runs import Outcome
from sandbox.verify.findings import Finding, blocking


@dataclass(frozen=True)
class LearnOptions:
    """What to learn: the command, the base, the inputs, and how."""

    argv: tuple[str, ...]
    base: str = "strict"
    inputs: tuple[tuple[str, bytes | None], ...] = (("(no input)", None),)
    minimize: bool = False
    wall_time: float | None = None
    name: str = "learned"
    extends: str | None = None  # how the written profile names the base (default: ``base``)
    files: tuple[tuple[str, str], ...] = ()  # (name in /box, where from): for the header only
    # Learn what verify flags as dangerous (lint's danger class: any capability,
    # sync, native AIO...) instead of answering it EPERM and never granting it.
    allow_dangerous: bool = False


@dataclass
class LearnResult:
    """Everything ``learn`` found, and the profile text to write."""

    text: str
    record: Record
    derived: Derived
    kept: list[Unit]
    removed: list[Unit] = field(default_factory=list)
    minimize_runs: int | None = None
    minimize_trials: int = 0
    reference: list[Outcome] = field(default_factory=list)
    final: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    rounds: int = 1
    granted_caps: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    runs: int = 0

    @property
    def complete(self) -> bool:
        """Every learning run ended by itself and the record holds everything."""
        return self.record.complete

    @property
    def identical(self) -> bool:
        """The final enforced runs behaved exactly like the learning runs."""
        return bool(self.final) and all(
            a.key() == b.key() for a, b in zip(self.reference, self.final, strict=True)
        )

    @property
    def ok(self) -> bool:
        """Complete, no blocking finding, identical behaviour: a profile to trust."""
        return self.complete and not blocking(self.findings) and self.identical

    def differences(self) -> list[str]:
        """One line per input whose final run differed."""
        return [
            f"run {i}: learning {a.describe()}, enforced {b.describe()}"
            for i, (a, b) in enumerate(zip(self.reference, self.final, strict=True), 1)
            if a.key() != b.key()
        ]

    def status_lines(self) -> list[str]:
        """What the header and the report say about the result."""
        out = []
        if not self.complete:
            out.append(
                "INCOMPLETE: "
                + "; ".join(
                    self.record.incomplete
                    + [
                        f"run {r.index} did not finish ({r.verdict})"
                        for r in self.record.runs
                        if not r.complete
                    ]
                )
            )
            out.append("Not minimised and not run again: learn again with inputs that finish.")
        elif self.final:
            if self.identical:
                out.append(
                    f"Verified: every input ({len(self.final)}) behaved identically under this "
                    "profile, enforced (same verdict, exit status, stdout and stderr)."
                )
            else:
                out.append("NOT VERIFIED: behaviour differed under this profile, enforced:")
                out += [f"  {d}" for d in self.differences()]
        for f in self.findings:
            out.append(f"verify: {f}")
        return out


def report(result: LearnResult) -> dict[str, Any]:
    """The JSON report (``sandbox learn --report``)."""
    rec = result.record
    return {
        "ok": result.ok,
        "complete": result.complete,
        "identical": result.identical,
        "status": result.status_lines(),
        "rounds": result.rounds,
        "runs": result.runs,
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "rules": {"learned": len(result.derived.units), "kept": len(result.kept)},
        "removed": [u.label() for u in result.removed],
        "minimize": {"runs": result.minimize_runs, "trials": result.minimize_trials},
        "refused": [
            {"syscall": r.syscall, "reason": r.reason, "count": r.count, "runs": sorted(r.runs)}
            for r in rec.refused.values()
        ],
        "capabilities": {
            "granted": result.granted_caps,
            "inferred": {c: sorted(e) for c, e in rec.caps.items()},
        },
        "learning_runs": [r.__dict__ for r in rec.runs],
        "final_runs": [o.describe() for o in result.final],
        "findings": [str(f) for f in result.findings],
    }


__all__ = ["LearnOptions", "LearnResult", "report"]

"""``Report``: what ``verify.check`` found, per layer and per finding, with a content hash.

Pure data. The hash (``sha256:`` over the canonical JSON of everything but itself
and ``source``, which only says where the profile was read from) goes into
the run record, so a run can be traced to the exact verification that
allowed it; the cache stores reports by key and checks this hash before
trusting one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sandbox.verify.findings import Finding

REPORT_FORMAT = 1
State = Literal["ok", "partial", "skipped", "failed"]
_STATES = ("ok", "partial", "skipped", "failed")


@dataclass(frozen=True, slots=True)
class LayerResult:
    """The compile check of one layer (and target, for seccomp's ABIs).

    ``state``: ``ok``; ``partial`` (Landlock at an ABI that lacks rights);
    ``skipped`` with the reason (disabled layer, missing tool, an ABI the
    builder documents it cannot express); ``failed`` (a finding says why).
    """

    layer: str
    target: str
    state: State
    detail: str
    key: str = ""  # what was checked: sha256 of the BPF bytes, the Landlock key...

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "layer": self.layer,
            "target": self.target,
            "state": self.state,
            "detail": self.detail,
            "key": self.key,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> LayerResult:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: for a malformed entry.
        """
        values = {k: raw.get(k) for k in ("layer", "target", "state", "detail", "key")}
        if not all(isinstance(v, str) for v in values.values()) or values["state"] not in _STATES:
            raise ValueError(f"malformed layer result {dict(raw)!r}")
        return cls(**values)  # type: ignore[arg-type]


def _order(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(sorted(set(findings), key=lambda f: (f.severity != "error", f.id, f.subject)))


@dataclass(frozen=True, slots=True)
class Report:
    """The outcome of one verification (see module docstring)."""

    profile: str
    source: str
    policy_digest: str
    library: str
    host: Mapping[str, Any]
    layers: tuple[LayerResult, ...]
    findings: tuple[Finding, ...]
    hash: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", _order(self.findings))
        body = self._body()
        blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        object.__setattr__(self, "hash", "sha256:" + hashlib.sha256(blob).hexdigest())

    def _body(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "profile": self.profile,
            "policy_digest": self.policy_digest,
            "library": self.library,
            "host": dict(self.host),
            "layers": [r.to_dict() for r in self.layers],
            "findings": [f.to_dict() for f in self.findings],
        }

    @property
    def blocking(self) -> list[Finding]:
        """The findings that refuse a run."""
        return [f for f in self.findings if f.is_blocking]

    @property
    def ok(self) -> bool:
        """No blocking finding."""
        return not self.blocking

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ok``, counts and ``hash`` added."""
        errors = len(self.blocking)
        return self._body() | {
            "source": self.source,
            "ok": errors == 0,
            "errors": errors,
            "warnings": len(self.findings) - errors,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Report:
        """Rebuild a report and check it against its own hash.

        Raises:
            ValueError: for a malformed report or one whose hash does not match.
        """
        try:
            if raw["format"] != REPORT_FORMAT:
                raise ValueError(f"report format {raw['format']!r}")
            report = cls(
                profile=str(raw["profile"]),
                source=str(raw["source"]),
                policy_digest=str(raw["policy_digest"]),
                library=str(raw["library"]),
                host=dict(raw["host"]),
                layers=tuple(LayerResult.from_dict(r) for r in raw["layers"]),
                findings=tuple(Finding.from_dict(f) for f in raw["findings"]),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed report: {e!r}") from e
        if raw.get("hash") != report.hash:
            raise ValueError("report hash does not match its content")
        return report

    def render(self, *, color: bool = False) -> str:
        """The human report: one line per layer, then each finding with its fix."""
        red, yellow, green, off = (
            ("\033[31m", "\033[33m", "\033[32m", "\033[0m") if color else ("",) * 4
        )
        lines = [f"{self.profile} ({self.source}) policy sha256:{self.policy_digest[:16]}"]
        for r in self.layers:
            name = f"{r.layer} {r.target}".strip()
            lines.append(f"  {name:<16} {r.state:<8} {r.detail}")
        for f in self.findings:
            tint = red if f.is_blocking else yellow
            lines.append(f"  {tint}{f.id} {f.severity:<7}{off} [{f.layer}] {f.message}")
            lines.append(f"      fix: {f.fix}")
        errors = len(self.blocking)
        warnings = len(self.findings) - errors
        verdict = f"{green}OK{off}" if self.ok else f"{red}BLOCKED{off}"
        lines.append(
            f"  {verdict}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}; report {self.hash}"
        )
        return "\n".join(lines)

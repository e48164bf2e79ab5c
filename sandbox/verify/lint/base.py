"""The lint registry: context, rules, hits, and running them (see ``sandbox.verify.lint``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from sandbox.caps.names import normalize
from sandbox.policy.frozen import Policy
from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG
from sandbox.seccomp.reference import runnable
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES
from sandbox.verify.findings import Finding, Severity
from sandbox.verify.mountflags import MountFlags

Kind = Literal["danger", "consistency"]
RUNS = frozenset({SECCOMP_RET_ALLOW, SECCOMP_RET_LOG})
# The calls that change the mount table (SBX114 flags them; each needs CAP_SYS_ADMIN).
MOUNT_SYSCALLS = (
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "mount_setattr",
)


@dataclass(frozen=True, slots=True)
class LintContext:
    """What the rules look at. Build it with :func:`context`.

    Attributes:
        policy: the resolved policy.
        strict: the policy is ``strict`` or extends it (some rules then block).
        spec: the resolved seccomp spec (None when the seccomp layer is disabled).
        runs: per target ABI, the syscalls the filter lets run for some arguments.
        apparmor_text: the rendered profile, or None when it could not be rendered.
        mounts: the container's mounts with their final flags, or None when
            the mount plan could not be built.
        root: the host root the default image and binds are taken from.
    """

    policy: Policy
    strict: bool
    spec: SeccompSpec | None
    runs: Mapping[str, frozenset[str]]
    apparmor_text: str | None = None
    mounts: tuple[MountFlags, ...] | None = None
    root: Path = Path("/")


def context(
    policy: Policy,
    spec: SeccompSpec | None,
    *,
    strict: bool = False,
    apparmor_text: str | None = None,
    mounts: tuple[MountFlags, ...] | None = None,
    root: Path = Path("/"),
) -> LintContext:
    """A lint context; ``runs`` is computed from ``spec`` with the reference model."""
    runs = {arch: runnable(spec, arch) for arch in ARCHES} if spec is not None else {}
    return LintContext(policy, strict, spec, MappingProxyType(runs), apparmor_text, mounts, root)


@dataclass(frozen=True, slots=True)
class Hit:
    """One thing a rule found; ``severity``/``fix`` override the rule's when set."""

    subject: str
    message: str
    severity: Severity | None = None
    fix: str | None = None


RuleFunc = Callable[[LintContext], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered lint rule."""

    id: str
    severity: Severity
    layer: str
    kind: Kind
    title: str
    fix: str
    func: RuleFunc = field(repr=False)

    def findings(self, ctx: LintContext) -> list[Finding]:
        """Run the rule."""
        return [
            Finding(
                self.id,
                hit.severity or self.severity,
                self.layer,
                hit.message,
                hit.fix or self.fix,
                hit.subject,
            )
            for hit in self.func(ctx)
        ]


RULES: dict[str, Rule] = {}

# The rules that read host paths (the rootfs layers, the binds' sources, what
# exists under them, the mount trace, whose sources they name) or the hostname:
# what differs between two containers of one image and config. The run path
# runs these on every run's own paths and keeps the others' findings by key
# (``verify.core.check_template``), so any rule that reads one of those must
# be listed here (tests/unit/verify/test_relocate.py attacks each).
PLACEMENT = frozenset({"SBX130", "SBX131", "SBX135", "SBX136", "SBX150", "SBX155"})


def rule(
    id: str, severity: Severity, layer: str, kind: Kind, title: str, fix: str
) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule function under ``id``."""

    def register(func: RuleFunc) -> RuleFunc:
        if id in RULES:
            raise ValueError(f"lint rule {id} registered twice")
        RULES[id] = Rule(id, severity, layer, kind, title, fix, func)
        return func

    return register


def run(ctx: LintContext, ids: Iterable[str] | None = None) -> list[Finding]:
    """Findings of every registered rule (or of ``ids`` only), in id order."""
    chosen = sorted(RULES) if ids is None else sorted(ids)
    return [f for i in chosen for f in RULES[i].findings(ctx)]


def strict_severity(ctx: LintContext) -> Severity:
    return "error" if ctx.strict else "warning"


def kept_caps(policy: Policy) -> frozenset[str]:
    """Capabilities the payload keeps: ``keep`` minus ``deny`` (names normalised)."""
    denied = {normalize(c) for c in policy.capabilities.deny}
    return frozenset(normalize(c) for c in policy.capabilities.keep) - denied


def ids(kind: Kind | None = None) -> list[str]:
    """Registered rule ids, of one class or all."""
    return sorted(i for i, r in RULES.items() if kind is None or r.kind == kind)

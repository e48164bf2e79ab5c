"""The checks of a run's own host paths: the mount trace and the ``lint.PLACEMENT`` rules.

Pure (reads only whether paths exist, for SBX150), supervisor side. Cheap:
no BPF simulation, no ``apparmor_parser``, so the run path runs them on
every run's own paths while the rest of the report is kept by key
(``verify.relocate``, ``verify.cache.verify_run``). ``join`` makes the whole
report, the one ``verify.core.check`` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sandbox.errors import PolicyError
from sandbox.fs.ops import MountPlan, plan_mounts
from sandbox.policy.frozen import Policy
from sandbox.policy.profile import policy_digest
from sandbox.verify import lint
from sandbox.verify.findings import Finding
from sandbox.verify.mountflags import MountFlags, trace
from sandbox.verify.report import LayerResult, Report


@dataclass(frozen=True, slots=True)
class Placement:
    """What the checks of the run's host paths found: the mounts layer and its findings."""

    layers: tuple[LayerResult, ...]
    findings: tuple[Finding, ...]


def _mounts(
    policy: Policy, root: Path, given: MountPlan | None, findings: list[Finding]
) -> tuple[LayerResult, tuple[MountFlags, ...] | None]:
    try:
        # The run path passes its own plan. Otherwise the default image is
        # built at run time; any existing directory stands in for it here
        # (the plan only checks that it exists).
        plan = given or plan_mounts(policy.filesystem, str(root), None, root)
    except PolicyError as e:
        findings.append(
            Finding("SBX306", "error", "filesystem", str(e), "fix [filesystem] (see the message)")
        )
        return LayerResult("mounts", "", "failed", str(e)), None
    mounts = trace(plan)
    detail = "; ".join(f"{m.target} {m.options}" for m in mounts)
    return LayerResult("mounts", "", "ok", detail), mounts


def check_placement(
    policy: Policy, mounts: MountPlan | None = None, root: Path = Path("/"), strict: bool = False
) -> Placement:
    """The mount trace of ``mounts`` (or of the policy's plan) and the placement rules.

    Args:
        policy: the run's policy, with its own host paths.
        mounts: the mount plan the run will apply (None: planned from ``policy``).
        root: the host root (tests point it at a tmpdir).
        strict: the policy is ``strict`` or extends it.
    """
    findings: list[Finding] = []
    layer, traced = _mounts(policy, root, mounts, findings)
    ctx = lint.LintContext(policy, strict, None, MappingProxyType({}), None, traced, root)
    return Placement((layer,), tuple(findings + lint.run(ctx, lint.PLACEMENT)))


def join(template: Report, placement: Placement, policy: Policy, source: str) -> Report:
    """The whole report of ``policy``: a template's (``verify.core.check_template``),
    with the placement's mounts layer (in its place, before capabilities) and findings."""
    layers = list(template.layers)
    at = next((i for i, r in enumerate(layers) if r.layer == "capabilities"), len(layers))
    layers[at:at] = placement.layers
    return Report(
        profile=policy.name,
        source=source,
        policy_digest=policy_digest(policy),
        library=template.library,
        host=template.host,
        layers=tuple(layers),
        findings=(*template.findings, *placement.findings),
    )

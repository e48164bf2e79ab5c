"""The verify checks a learned profile must pass before it is written (supervisor side).

``verify_profile`` is the single place where learning asks for verification.
Until ``sandbox verify`` is merged it runs the pieces that exist on main: the
seccomp filter is built exactly as a run builds it (``seccomp.build.prepare``;
an ``errno`` default compiled as ``notify``, as ``runner.layers`` does) and
simulated against the reference model (``verify.simulate``), and the
Landlock rules are prepared for this host's ABI. After the merge, the lead
replaces the body with ``sandbox.verify.check(policy, host)``.
"""

from __future__ import annotations

from sandbox.errors import ArtifactError, PolicyError
from sandbox.host import HostFacts
from sandbox.landlock.rules import prepare as landlock_prepare
from sandbox.policy.load import LoadedProfile
from sandbox.seccomp.build import prepare as seccomp_prepare
from sandbox.seccomp.groups import resolve
from sandbox.verify.findings import Finding
from sandbox.verify.simulate import simulate


def verify_profile(profile: LoadedProfile, host: HostFacts) -> list[Finding]:
    """Every finding of the available verify checks on ``profile`` (errors block).

    TODO(after the verify merge): ``return list(sandbox.verify.check(profile.policy,
    host).findings)``.
    """
    policy = profile.policy
    sec = policy.seccomp
    if sec.default_action == "errno":
        sec = sec.model_copy(update={"default_action": "notify"})
    findings: list[Finding] = []
    try:
        art = seccomp_prepare(sec, host.arch)
        findings += simulate(art, resolve(sec))
    except (ArtifactError, PolicyError) as e:
        findings.append(Finding("SBX200", "error", "seccomp", str(e), "fix the learned rules"))
    try:
        landlock_prepare(policy.filesystem, host.landlock_abi)
    except ArtifactError as e:
        findings.append(Finding("SBX300", "error", "landlock", str(e), "fix the learned paths"))
    return findings


__all__ = ["verify_profile"]

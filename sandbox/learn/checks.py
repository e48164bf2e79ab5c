"""The verify checks a learned profile must pass before it is written (supervisor side).

``verify_profile`` is the single place where learning asks for verification.
Until ``sandbox verify`` is merged it runs the pieces that exist on main: the
seccomp filter is built exactly as a run builds it (``seccomp.build.prepare``;
an ``errno`` default compiled as ``notify``, as ``sandbox.compile`` does) and
simulated against the reference model (``verify.simulate``), and the
Landlock rules are prepared for this host's ABI. After the merge, the lead
replaces the body with ``sandbox.verify.check(policy, host)``.
"""

from __future__ import annotations

from sandbox.errors import PolicyError
from sandbox.host import HostFacts
from sandbox.policy.profile import LoadedProfile
from sandbox.verify.findings import Finding


def verify_profile(profile: LoadedProfile, host: HostFacts) -> list[Finding]:
    """Every finding of ``sandbox verify`` on ``profile`` (errors block).

    The policy is verified as a run compiles it: an errno default is loaded as
    notify (the supervisor answers and lists), so that is what is simulated.
    """
    from sandbox.verify import check

    policy = profile.policy
    if policy.seccomp.default_action == "errno":
        sec = policy.seccomp.model_copy(update={"default_action": "notify"})
        policy = policy.model_copy(update={"seccomp": sec})
    try:
        return list(check(policy, host).findings)
    except PolicyError as e:
        return [Finding("SBX200", "error", "seccomp", str(e), "fix the learned rules")]


__all__ = ["verify_profile"]

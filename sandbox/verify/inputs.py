"""What a verification is about: the policy (and whether it extends strict) and the host facts.

Light on purpose (no artifact code): the run path's cache key is computed
from these on every run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.host import HostFacts
from sandbox.policy.profile import LoadedProfile

if TYPE_CHECKING:
    from sandbox.policy.frozen import Policy


def unpack(profile: Policy | LoadedProfile) -> tuple[Policy, str, bool]:
    """(policy, source, is_strict) of a policy or a loaded profile.

    A profile is *strict* when it is ``strict`` or extends it (the chain
    names a ``strict.toml``); some lint rules then block instead of warn.
    """
    if isinstance(profile, LoadedProfile):
        strict = profile.policy.name == "strict" or any(
            Path(p).name == "strict.toml" for p in profile.chain
        )
        return profile.policy, profile.source, strict
    return profile, "<policy>", profile.name == "strict"


def host_summary(host: HostFacts) -> dict[str, Any]:
    """The host facts a report depends on, JSON-ready."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(host):
        value = getattr(host, f.name)
        out[f.name] = sorted(value) if isinstance(value, frozenset) else value
    out["kernel"] = list(host.kernel)
    return out

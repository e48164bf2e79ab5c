"""``check(policy, host) -> Report``: the whole verify stage (STYLE B9), uncached.

Supervisor side, before anything runs, and ``sandbox verify``. Needs no
privilege: nothing is loaded into the kernel. In order:

1. resolve the seccomp section (a bad name raises PolicyError here, as at load);
2. compile checks (``verify.compile``): seccomp for each x86 ABI, AppArmor
   through ``apparmor_parser -Q``, Landlock at the host's ABI, the mount plan
   (and the flags the mount code gives each mount), capabilities, cgroups;
3. the BPF simulation of every filter built (``verify.simulate``);
4. whether this host can enforce every required layer (``enforce``; a
   warning: the run path refuses by itself, and a profile may be verified
   for another host);
5. lint (``verify.lint``).

``verify.cache.cached_check`` is the run path's entry: the same report,
kept by key so that a run of an already verified policy costs a lookup.
"""

from __future__ import annotations

from pathlib import Path

from sandbox import enforce
from sandbox.apparmor.parser import PARSER
from sandbox.apparmor.render import AppArmorArtifact
from sandbox.caps.names import normalize
from sandbox.errors import UnsupportedError
from sandbox.fs.ops import MountPlan
from sandbox.host import HostFacts, probe
from sandbox.landlock.rules import LandlockArtifact
from sandbox.layers import Enforcement
from sandbox.policy.frozen import Policy
from sandbox.policy.profile import LoadedProfile, policy_digest
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.groups import resolve
from sandbox.verify import compile as comp
from sandbox.verify import lint
from sandbox.verify.findings import Finding
from sandbox.verify.inputs import host_summary, unpack
from sandbox.verify.placement import check_placement, join
from sandbox.verify.report import LayerResult, Report
from sandbox.verify.version import library_id


def _caps(policy: Policy, out: comp.Compiled) -> None:
    if policy.layers.capabilities == "disabled":
        out.layers.append(LayerResult("capabilities", "", "skipped", "disabled by the profile"))
        return
    kept = sorted(lint.kept_caps(policy))
    denied = sorted({normalize(c) for c in policy.capabilities.deny})
    detail = "bounding, permitted, effective, ambient: " + (", ".join(kept) or "empty")
    if denied:
        detail += f"; denied: {', '.join(denied)}"
    out.layers.append(LayerResult("capabilities", "", "ok", detail))


def _feasible(policy: Policy, host: HostFacts, out: comp.Compiled) -> None:
    states = enforce.static_states(policy, host, frozenset())
    if out.landlock is not None and states["landlock"].state != "off":
        states["landlock"] = Enforcement(out.landlock.state, out.landlock.detail)
    try:
        enforce.check(policy, states, frozenset(), host, warn=False, pending=frozenset({"cgroups"}))
    except UnsupportedError as e:
        out.findings.append(
            Finding(
                "SBX305",
                "warning",
                e.layer,
                f"on this host: {e}",
                f'make layers.{e.layer} "degradable" if a weaker run is acceptable, or run '
                "where the layer is available (sandbox exec refuses here, exit 125)",
                e.layer,
            )
        )


def check(
    profile: Policy | LoadedProfile,
    host: HostFacts | None = None,
    *,
    seccomp: SeccompArtifact | None = None,
    landlock: LandlockArtifact | None = None,
    apparmor: AppArmorArtifact | None = None,
    mounts: MountPlan | None = None,
    parser: str = PARSER,
    root: Path = Path("/"),
) -> Report:
    """Verify a policy and its generated artifacts for ``host`` (probed when None).

    The report is :func:`check_template`'s joined with :func:`check_placement`'s
    (:func:`join`): the run path keeps the first by key and runs the second
    every time.

    Args:
        profile: the policy, or the loaded profile (whose chain tells whether
            it extends ``strict``).
        host: the host facts; ``sandbox.host.probe()`` when None.
        seccomp: the artifact a run will load; it replaces the build for its
            ABI, so the simulation covers exactly those bytes.
        landlock: likewise for the Landlock rules.
        apparmor: likewise for the AppArmor profile text (rendered for the
            run's program; a placeholder program otherwise).
        mounts: the mount plan a run will apply (its flags are checked).
        parser: the ``apparmor_parser`` to compile with.
        root: the host root (tests point it at a tmpdir).

    Returns:
        The report; ``report.ok`` is False when a finding blocks.

    Raises:
        PolicyError: when the seccomp section does not resolve (unknown or
            conflicting names), as loading the profile would.
    """
    policy, source, strict = unpack(profile)
    template = check_template(
        profile, host, seccomp=seccomp, landlock=landlock, apparmor=apparmor, parser=parser
    )
    return join(template, check_placement(policy, mounts, root, strict), policy, source)


def check_template(
    profile: Policy | LoadedProfile,
    host: HostFacts | None = None,
    *,
    seccomp: SeccompArtifact | None = None,
    landlock: LandlockArtifact | None = None,
    apparmor: AppArmorArtifact | None = None,
    parser: str = PARSER,
) -> Report:
    """Every check that reads no host path: all of :func:`check` but the placement.

    It never looks at ``filesystem.rootfs``, the binds' sources or the mount
    plan (``lint.PLACEMENT`` rules and the mount trace do), so its report for
    a policy whose per-run host paths are replaced by placeholders
    (``verify.relocate``) is its report for every run of that shape.

    Raises:
        PolicyError: when the seccomp section does not resolve.
    """
    policy, source, strict = unpack(profile)
    host = host if host is not None else probe()
    spec = resolve(policy.seccomp)
    out = comp.Compiled()
    comp.seccomp(policy, host, out, seccomp)
    comp.simulate(spec, out)
    comp.apparmor(policy, host, out, parser, apparmor)
    comp.landlock(policy, host, out, landlock)
    _caps(policy, out)
    comp.cgroups(policy, out)
    _feasible(policy, host, out)
    ctx = lint.context(
        policy,
        spec,
        strict=strict,
        apparmor_text=out.apparmor.text if out.apparmor is not None else None,
    )
    chosen = [i for i in lint.ids() if i not in lint.PLACEMENT]
    return Report(
        profile=policy.name,
        source=source,
        policy_digest=policy_digest(policy),
        library=library_id(),
        host=host_summary(host),
        layers=tuple(out.layers),
        findings=tuple(out.findings + lint.run(ctx, chosen)),
    )

"""Compile checks: does every layer's artifact build, and would the kernel/tool accept it?

Supervisor side (and ``sandbox verify``). No privilege needed: the seccomp
filter is exported, never loaded; AppArmor text goes through
``apparmor_parser -Q -K`` (compile only), against the ABI file when the
kernel has no AppArmor; Landlock rules are computed for the host's ABI. One
function per layer, each returning :class:`LayerResult` entries and
findings (SBX3xx); the simulation (SBX2xx) runs on every filter built here.

- seccomp: built for each x86 ABI (x86_64, x32, i386). The host's ABI must
  build (SBX301). The others are foreign on an x86_64 host (the loaded
  filter kills them), so a refusal the builder documents (i386 socketcall
  and ipc multiplexers, ``build._check_target``) is ``skipped`` with its
  reason, and any other failure a warning (SBX302).
- AppArmor: the run path passes the text rendered for its program, which is
  exactly what the kernel will be given; ``sandbox verify`` renders it for a
  placeholder program (the text differs per program only in its path).
  Rules the installed parser cannot compile are left out by the renderer and
  listed here with the reason.
- Landlock: ``full`` or ``partial`` (the rights the ABI lacks are named);
  ``off`` without Landlock.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, field

from sandbox.apparmor.render import AppArmorArtifact
from sandbox.errors import ArtifactError, PolicyError, SetupError
from sandbox.host import HostFacts
from sandbox.landlock.rules import LandlockArtifact
from sandbox.policy.frozen import Policy
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES
from sandbox.verify.findings import COMPILE_IDS, Finding, Severity
from sandbox.verify.report import LayerResult, State

log = logging.getLogger(__name__)

# The program path the AppArmor profile is rendered for when none is given.
PLACEHOLDER_PROGRAM = "/box/program"


@dataclass
class Compiled:
    """What the compile checks built, for the simulation, lint and ``explain``."""

    layers: list[LayerResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    seccomp: dict[str, SeccompArtifact] = field(default_factory=dict)
    apparmor: AppArmorArtifact | None = None
    landlock: LandlockArtifact | None = None


def _finding(
    id: str, severity: Severity, layer: str, message: str, fix: str, subject: str = ""
) -> Finding:
    assert id in COMPILE_IDS
    return Finding(id, severity, layer, message, fix, subject)


def bpf_hash(art: SeccompArtifact) -> str:
    """sha256 of the exact bytes a child would load."""
    return hashlib.sha256(art.bpf).hexdigest()


def host_abi(host: HostFacts) -> str:
    """The filter ABI of this host (x86_64 for any x86-64 machine)."""
    return "x86_64" if host.arch in ("x86_64", "amd64") else host.arch


def seccomp(
    policy: Policy, host: HostFacts, out: Compiled, given: SeccompArtifact | None = None
) -> None:
    """Build the filter for every x86 ABI (``given`` replaces the build for its own ABI)."""
    from sandbox.seccomp.build import prepare

    native = host_abi(host)
    if policy.layers.seccomp == "disabled":
        out.layers.append(LayerResult("seccomp", "", "skipped", "disabled by the profile"))
        return
    for abi in ARCHES:
        try:
            art = given if given is not None and given.arch == abi else prepare(policy.seccomp, abi)
        except ArtifactError as e:
            documented = "multiplexers" in str(e)
            state: State = "skipped" if documented and abi != native else "failed"
            out.layers.append(LayerResult("seccomp", abi, state, str(e).removeprefix("seccomp: ")))
            if abi == native:
                out.findings.append(
                    _finding(
                        "SBX301",
                        "error",
                        "seccomp",
                        f"{abi}: {e}",
                        "fix the policy's seccomp section (see the message), then verify again",
                        abi,
                    )
                )
            elif not documented:
                out.findings.append(
                    _finding(
                        "SBX302",
                        "warning",
                        "seccomp",
                        f"{abi}: {e}",
                        "only matters where this ABI is the host's; report it",
                        abi,
                    )
                )
            continue
        out.seccomp[abi] = art
        detail = f"{art.instructions} BPF instructions, {len(art.allowed)} syscalls can run"
        out.layers.append(LayerResult("seccomp", abi, "ok", detail, bpf_hash(art)))


def simulate(spec: SeccompSpec, out: Compiled) -> None:
    """Run every built filter against the reference model (SBX2xx findings)."""
    from sandbox.verify.simulate import cases
    from sandbox.verify.simulate import simulate as run

    count = sum(1 for _ in cases(spec))
    for i, r in enumerate(out.layers):
        if r.layer != "seccomp" or r.target not in out.seccomp:
            continue
        found = run(out.seccomp[r.target], spec)
        out.findings += found
        verdict = "no difference" if not found else f"{len(found)} differences"
        out.layers[i] = LayerResult(
            r.layer,
            r.target,
            "ok" if not found else "failed",
            f"{r.detail}; simulation: {count} cases, {verdict}",
            r.key,
        )


def apparmor(
    policy: Policy,
    host: HostFacts,
    out: Compiled,
    parser: str,
    given: AppArmorArtifact | None = None,
) -> None:
    """Compile the profile with ``apparmor_parser -Q`` (offline without AppArmor).

    ``given``: the text a run will load; otherwise it is rendered for a placeholder program.
    """
    from sandbox.apparmor import parser as aaparser
    from sandbox.apparmor.render import prepare

    if policy.layers.apparmor == "disabled":
        out.layers.append(LayerResult("apparmor", "", "skipped", "disabled by the profile"))
        return
    if shutil.which(parser) is None:
        out.layers.append(
            LayerResult(
                "apparmor", "", "skipped", f"{parser} not found (Debian package 'apparmor')"
            )
        )
        return
    try:
        features = aaparser.probe_parser(parser)
    except SetupError as e:
        out.layers.append(LayerResult("apparmor", "", "skipped", str(e)))
        return
    try:
        art = given or prepare(
            policy, program=PLACEHOLDER_PROGRAM, interpreter=None, parser_features=features
        )
    except ArtifactError as e:
        out.layers.append(LayerResult("apparmor", "", "failed", str(e)))
        out.findings.append(
            _finding(
                "SBX303",
                "error",
                "apparmor",
                str(e),
                "fix apparmor.extra_rules or the path the message names",
            )
        )
        return
    out.apparmor = art
    offline = not host.apparmor
    result = aaparser.compile_check(
        art.text, parser=parser, features_file=features.abi_file if offline else None
    )
    where = f"offline against abi/{features.abi}" if offline else "against the kernel's features"
    left_out = f"; left out: {'; '.join(art.skipped_rules)}" if art.skipped_rules else ""
    if result.ok:
        detail = f"apparmor_parser {features.version_text} -Q: ok ({where}){left_out}"
        out.layers.append(LayerResult("apparmor", "", "ok", detail, art.key))
        return
    out.layers.append(LayerResult("apparmor", "", "failed", result.message, art.key))
    out.findings.append(
        _finding(
            "SBX304",
            "error",
            "apparmor",
            f"apparmor_parser {features.version_text} -Q ({where}) refuses the profile: "
            f"{result.message}",
            "fix apparmor.extra_rules; if the generated part is refused, it is a renderer bug",
        )
    )


def landlock(
    policy: Policy, host: HostFacts, out: Compiled, given: LandlockArtifact | None = None
) -> None:
    """Landlock rules at the host's ABI: full, partial (missing rights named) or off."""
    from sandbox.landlock.rules import prepare

    if policy.layers.landlock == "disabled":
        out.layers.append(LayerResult("landlock", "", "skipped", "disabled by the profile"))
        return
    art = (
        given
        if given is not None
        else prepare(
            policy.filesystem, host.landlock_abi, tcp_ports=tuple(policy.network.tcp_ports)
        )
    )
    out.landlock = art
    states: dict[str, State] = {"full": "ok", "partial": "partial", "off": "skipped"}
    out.layers.append(LayerResult("landlock", "", states[art.state], art.detail, art.key))


def size(n: int) -> str:
    """``268435456`` -> ``256M`` (exact units only, else bytes)."""
    for unit, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def cgroups(policy: Policy, out: Compiled) -> None:
    """The limits make a valid cgroup configuration."""
    from sandbox.cgroups import CgroupLimits

    lim = policy.limits
    try:
        limits = CgroupLimits(
            memory=lim.memory, pids=lim.processes, cpu_quota=lim.cpu_quota, cpuset=lim.cpuset
        )
    except PolicyError as e:
        out.layers.append(LayerResult("cgroups", "", "failed", str(e)))
        out.findings.append(_finding("SBX307", "error", "cgroups", str(e), "fix [limits]"))
        return
    parts = [
        f"{k} {v}"
        for k, v in (
            ("memory", size(limits.memory) if limits.memory is not None else None),
            ("pids", limits.pids),
            ("cpu_quota", limits.cpu_quota),
            ("cpuset", limits.cpuset),
        )
        if v is not None
    ]
    out.layers.append(LayerResult("cgroups", "", "ok", ", ".join(parts) or "no limit"))

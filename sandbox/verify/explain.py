"""``sandbox explain``: every artifact a policy generates, readable, with the layers' differences.

Supervisor side, no privilege (nothing is loaded). The artifacts are built
by the same code as for a run (``verify.compile``), so what is shown is what
would be enforced: the resolved policy as TOML, the seccomp filter (a
summary, libseccomp's PFC text and, on request, the BPF disassembly), the
AppArmor profile text, the Landlock rules at this host's ABI, the
capability sets, the mount plan with each mount's final flags, the cgroup
limits and rlimits, and where Landlock and AppArmor differ.
"""

from __future__ import annotations

import resource
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

from sandbox.apparmor.parser import PARSER
from sandbox.fs.ops import plan_mounts
from sandbox.host import HostFacts
from sandbox.landlock.abi import AccessFs, Scope, names
from sandbox.policy.dump import policy_toml
from sandbox.policy.frozen import Policy
from sandbox.policy.profile import LoadedProfile, policy_digest
from sandbox.seccomp.actions import describe
from sandbox.seccomp.argrules import ArgRule
from sandbox.seccomp.bpf import disassemble
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import table
from sandbox.verify import compile as comp
from sandbox.verify import lint
from sandbox.verify.inputs import unpack
from sandbox.verify.mountflags import trace

SECTIONS = (
    "policy",
    "seccomp",
    "apparmor",
    "landlock",
    "capabilities",
    "mounts",
    "limits",
    "differences",
)

# Where Landlock and AppArmor differ, whatever the policy (checked against the
# kernel's Landlock documentation and this project's guest tests).


def _wrap(items: Iterable[str], indent: str = "  ") -> list[str]:
    text = " ".join(items)
    return textwrap.wrap(text, 96, initial_indent=indent, subsequent_indent=indent) or [indent]


def _outcome(spec: SeccompSpec, outcome: object) -> str:
    return describe(spec.outcome_ret(outcome))  # type: ignore[arg-type]


def describe_rule(spec: SeccompSpec, rule: ArgRule) -> str:
    """``ioctl: arg1 & 0xffffffff in {0x5412, 0x541c} -> ERRNO(EPERM), else ALLOW``."""
    values = ", ".join(f"{v:#x}" for v in rule.values)
    where = f"  [group {rule.group}]" if rule.group else ""
    return (
        f"{rule.syscall}: arg{rule.arg} & {rule.mask:#x} in {{{values}}} -> "
        f"{_outcome(spec, rule.match)}, else {_outcome(spec, rule.otherwise)}{where}"
    )


def _seccomp(policy: Policy, out: comp.Compiled, arch: str, show_bpf: bool) -> list[str]:
    spec = resolve(policy.seccomp)
    lines = []
    for r in out.layers:
        if r.layer == "seccomp":
            lines.append(f"{r.target or '-'}: {r.state}: {r.detail}")
    art = out.seccomp.get(arch)
    if art is None:
        return [*lines, f"(no filter for {arch})"]
    known = set(table(arch).by_name)
    lines += [
        "",
        f"filter for {arch}: default {describe(spec.default_ret)}, foreign ABIs "
        f"{describe(spec.bad_arch_ret)}, {art.instructions} instructions, key {art.key[:16]}",
        f"runs unconditionally ({len(spec.allow & known)}):",
        *_wrap(sorted(spec.allow & known)),
    ]
    answers = [(n, e) for n, e in spec.errno if n in known]
    answers += [(n, 38) for n in sorted(spec.enosys & known)]
    if answers:
        lines.append("answered with an errno instead of running:")
        lines += _wrap(f"{n}={describe(0x50000 | e)}" for n, e in sorted(answers))
    rules = [r for r in spec.rules if r.syscall in known]
    if rules:
        lines.append("argument rules:")
        lines += [f"  {describe_rule(spec, r)}" for r in rules]
    denied = sorted(spec.deny & known)
    if denied:
        lines.append(f"denied, whatever else allows them ({describe(spec.deny_ret)}):")
        lines += _wrap(denied)
    lines += ["", "libseccomp pseudo filter code (PFC):", art.pfc.rstrip()]
    if show_bpf:
        lines += ["", "BPF, as loaded:", disassemble(art.program(), table(arch))]
    return lines


def _apparmor(out: comp.Compiled) -> list[str]:
    state = next((r for r in out.layers if r.layer == "apparmor"), None)
    head = [f"{state.state}: {state.detail}"] if state else []
    if out.apparmor is None:
        return head
    return [
        *head,
        f"(rendered for the program {comp.PLACEHOLDER_PROGRAM}; each run renders its own path)",
        "",
        out.apparmor.text.rstrip(),
    ]


def _landlock(out: comp.Compiled) -> list[str]:
    art = out.landlock
    if art is None:
        return [r.detail for r in out.layers if r.layer == "landlock"]
    short = "LANDLOCK_ACCESS_FS_"
    lines = [f"{art.state}: {art.detail}", f"ABI {art.abi}; key {art.key}"]
    if art.state == "off":
        return lines
    lines.append("handled (denied unless a rule grants):")
    lines += _wrap(n.removeprefix(short).lower() for n in names(art.handled_fs, AccessFs))
    if art.handled_net and art.net_rules:
        ports = ", ".join(str(n.port) for n in art.net_rules)
        lines.append(f"  TCP bind and connect: handled; granted on ports {ports} only")
    elif art.handled_net:
        lines.append("  TCP bind and connect: handled, no port granted")
    if art.scoped:
        lines.append("  scoped: " + ", ".join(names(art.scoped, Scope)))
    lines.append("rules (path inside the container: rights):")
    for r in art.rules:
        rights = ", ".join(n.removeprefix(short).lower() for n in names(r.access, AccessFs))
        req = "" if r.required else " (skipped if missing)"
        lines.append(f"  {r.path}: {rights}{req}")
    if art.missing:
        lines.append("not mediated at this ABI: " + ", ".join(art.missing))
    return lines


def _caps(policy: Policy) -> list[str]:
    kept = ", ".join(sorted(lint.kept_caps(policy))) or "(empty)"
    lines = [f"{s}: {kept}" for s in ("bounding", "permitted", "effective", "inheritable")]
    lines.append("ambient: (empty)")
    if policy.capabilities.deny:
        lines.append("denied: " + ", ".join(sorted(policy.capabilities.deny)))
    return lines


def _mounts(policy: Policy, root: Path) -> list[str]:
    fs = policy.filesystem
    plan = plan_mounts(fs, str(root), None, root)
    lower = (
        ", ".join(fs.rootfs)
        if fs.rootfs
        else f"the default image (/etc from {fs.etc_allowlist}, merged-usr links, mount points)"
    )
    lines = [
        f"root: overlay, read-only lower layers: {lower}",
        f"writes go to a per-run tmpfs of {comp.size(plan.upper_size)} "
        f"and {plan.upper_inodes} inodes; writable: {', '.join(plan.writable) or '(none)'}",
        "mounts (final flags, as fs/mounts.py sets them):",
    ]
    lines += [f"  {m.target:<16} {m.source:<12} {m.options}" for m in trace(plan)]
    lines.append(
        "/dev: "
        + ", ".join(n for n, _, _ in plan.dev_nodes)
        + "; links: "
        + ", ".join(f"{n} -> {t}" for n, t in plan.dev_links)
    )
    lines.append(f"/proc: {'processes only (subset=pid)' if plan.proc_subset_pid else 'full'}")
    return lines


_RLIMIT_NAMES = {
    getattr(resource, n): n
    for n in sorted(dir(resource), reverse=True)  # RLIMIT_NOFILE wins over its alias OFILE
    if n.startswith("RLIMIT_")
}


def _limits(policy: Policy) -> list[str]:
    from sandbox.compile import rlimits

    lim = policy.limits
    lines = ["cgroup leaf (swap off, devices: null zero full random urandom):"]
    value: object
    for key, value in (
        ("memory.max", comp.size(lim.memory) if lim.memory is not None else None),
        ("pids.max", lim.processes),
        ("cpu.max", f"{lim.cpu_quota} CPUs" if lim.cpu_quota is not None else None),
        ("cpuset.cpus", lim.cpuset),
    ):
        lines.append(f"  {key}: {value if value is not None else 'no limit'}")
    lines.append("watched by the supervisor:")
    for key, value in (
        ("cpu_time", lim.cpu_time),
        ("wall_time", lim.wall_time),
        ("output", comp.size(lim.output) if lim.output is not None else None),
    ):
        lines.append(f"  {key}: {value if value is not None else 'no limit'}")
    lines.append("rlimits the payload sets before exec (soft/hard):")
    for r in rlimits(policy):
        lines.append(f"  {_RLIMIT_NAMES.get(r.resource, r.resource)}: {r.soft}/{r.hard}")
    return lines


def _differences(policy: Policy, host: HostFacts, out: comp.Compiled) -> list[str]:
    """Where AppArmor and Landlock decide differently for this policy (measured in the
    access matrix tests; docs/apparmor-vs-landlock.md), then what applies on this host."""
    from sandbox.apparmor.compare import differences

    lines = []
    for d in differences(policy, host.landlock_abi):
        lines.append(f"- {d.summary}")
        lines.append(f"    AppArmor: {d.apparmor}; Landlock: {d.landlock}")
        if d.example:
            lines.append(f"    e.g. {d.example}")
    specific = []
    denies = [
        r for r in policy.apparmor.extra_rules if r.strip().startswith(("deny", "audit deny"))
    ]
    for r in denies:
        where = "" if host.apparmor else " (and AppArmor is off on this host: nothing enforces it)"
        specific.append(f"apparmor.extra_rules {r!r} is enforced by AppArmor only{where}")
    if not host.apparmor:
        specific.append("AppArmor is off on this host: only Landlock mediates file access")
    if out.landlock is not None and out.landlock.missing:
        specific.append(
            f"Landlock ABI {out.landlock.abi} cannot mediate " + ", ".join(out.landlock.missing)
        )
    if specific:
        lines += ["", "on this host:"] + [f"- {s}" for s in specific]
    return lines


def explain(
    profile: Policy | LoadedProfile,
    host: HostFacts,
    *,
    sections: Sequence[str] = SECTIONS,
    arch: str | None = None,
    show_bpf: bool = False,
    parser: str = PARSER,
    root: Path = Path("/"),
) -> str:
    """The text of ``sandbox explain`` (the chosen sections, in :data:`SECTIONS` order).

    Raises:
        PolicyError: for a policy whose seccomp section or mount plan is invalid.
        ValueError: for an unknown section name.
    """
    if unknown := set(sections) - set(SECTIONS):
        raise ValueError(f"unknown sections {sorted(unknown)} (known: {', '.join(SECTIONS)})")
    policy, source, _ = unpack(profile)
    out = comp.Compiled()
    arch = arch or comp.host_abi(host)
    if "seccomp" in sections:
        comp.seccomp(policy, host, out)
    if {"apparmor"} & set(sections):
        comp.apparmor(policy, host, out, parser)
    if {"landlock", "differences"} & set(sections):
        comp.landlock(policy, host, out)
    parts = [f"# {policy.name} ({source}), policy sha256:{policy_digest(policy)}"]
    render = {
        "policy": lambda: policy_toml(policy).rstrip().splitlines(),
        "seccomp": lambda: _seccomp(policy, out, arch, show_bpf),
        "apparmor": lambda: _apparmor(out),
        "landlock": lambda: _landlock(out),
        "capabilities": lambda: _caps(policy),
        "mounts": lambda: _mounts(policy, root),
        "limits": lambda: _limits(policy),
        "differences": lambda: _differences(policy, host, out),
    }
    titles = {"differences": "Landlock and AppArmor: what differs"}
    for name in SECTIONS:
        if name in sections:
            parts += ["", f"== {titles.get(name, name)} ==", *render[name]()]
    return "\n".join(parts) + "\n"

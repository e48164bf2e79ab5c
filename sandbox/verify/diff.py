"""``sandbox diff A B``: what changes, layer by layer, between two policies' artifacts.

Supervisor side, no privilege. Seccomp is compared on the **compiled
filters**: for every syscall of every ABI both sides build, the BPF of A and
of B are run by the interpreter over the same arguments (zero, all ones,
and every boundary value of either side's argument rule; i386's
``socketcall``/``ipc`` with every call number), so only a difference the
kernel would see is reported: ``+`` newly allowed (runs for some arguments
in B, never in A), ``-`` newly denied, ``~`` otherwise changed (another
errno, a different argument rule). Landlock rules, the AppArmor text and the
mount flags are compared as built for this host; capabilities, paths,
limits and the remaining keys from the resolved policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sandbox.apparmor.parser import PARSER
from sandbox.errors import PolicyError
from sandbox.fs.ops import plan_mounts
from sandbox.host import HostFacts
from sandbox.landlock.abi import AccessFs, names
from sandbox.policy.frozen import Policy
from sandbox.policy.profile import LoadedProfile
from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, describe, effective
from sandbox.seccomp.argrules import FULL64
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES, table
from sandbox.verify import compile as comp
from sandbox.verify import lint
from sandbox.verify.explain import describe_rule
from sandbox.verify.inputs import unpack
from sandbox.verify.mountflags import trace
from sandbox.verify.simulate import MULTIPLEXERS, rule_values

Kind = Literal["added", "removed", "changed"]
_RUNS = frozenset({SECCOMP_RET_ALLOW, SECCOMP_RET_LOG})
_MARK = {"added": "+", "removed": "-", "changed": "~"}


@dataclass(frozen=True, slots=True)
class Change:
    """One semantic difference; for seccomp, ``added`` means newly allowed."""

    layer: str
    kind: Kind
    subject: str
    before: str = ""
    after: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {
            "layer": self.layer,
            "kind": self.kind,
            "subject": self.subject,
            "before": self.before,
            "after": self.after,
        }


# ------------------------------------------------------------------ seccomp
def _probes(a: SeccompSpec, b: SeccompSpec, name: str) -> list[tuple[int, ...]]:
    probes: list[tuple[int, ...]] = [(), (FULL64,) * 6]
    for spec in (a, b):
        rule = spec.rule_for(name)
        if rule is not None:
            for v in rule_values(rule):
                probes.append(tuple(v if i == rule.arg else 0 for i in range(6)))
    if name in MULTIPLEXERS:
        probes += [(call,) for call in range(26)]
    return probes


def treatment(spec: SeccompSpec, name: str) -> str:
    """How a spec treats one syscall, in words."""
    if name in spec.deny:
        return f"{describe(spec.deny_ret)} (denied)"
    number = spec.errno_of(name)
    if number is not None:
        return describe(0x50000 | number)
    rule = spec.rule_for(name)
    if rule is not None:
        return describe_rule(spec, rule).split(": ", 1)[1]
    if name in spec.allow:
        return "ALLOW"
    return f"{describe(spec.default_ret)} (default)"


def seccomp_changes(
    a: SeccompSpec, art_a: SeccompArtifact, b: SeccompSpec, art_b: SeccompArtifact
) -> list[Change]:
    """Differences between two filters for the same ABI, judged on their BPF."""
    arch = art_a.arch
    layer = f"seccomp {arch}"
    out = []
    if a.default_ret != b.default_ret:
        out.append(
            Change(
                layer,
                "changed",
                "(default action)",
                describe(a.default_ret),
                describe(b.default_ret),
            )
        )
    pa, pb = art_a.program(), art_b.program()
    audit = ARCHES[arch].audit_arch
    for nr, name in sorted(table(arch).by_nr.items(), key=lambda kv: kv[1]):
        probes = _probes(a, b, name)
        ra = [effective(pa.evaluate(nr, audit, p)) for p in probes]
        rb = [effective(pb.evaluate(nr, audit, p)) for p in probes]
        if ra == rb:
            continue
        runs_a, runs_b = bool(set(ra) & _RUNS), bool(set(rb) & _RUNS)
        kind: Kind = "changed"
        if runs_b and not runs_a:
            kind = "added"
        elif runs_a and not runs_b:
            kind = "removed"
        out.append(Change(layer, kind, name, treatment(a, name), treatment(b, name)))
    return out


# ------------------------------------------------------------------ helpers
def _sets(layer: str, key: str, a: Iterable[str], b: Iterable[str]) -> list[Change]:
    sa, sb = set(a), set(b)
    prefix = f"{key}: " if key else ""
    return [Change(layer, "added", f"{prefix}{x}") for x in sorted(sb - sa)] + [
        Change(layer, "removed", f"{prefix}{x}") for x in sorted(sa - sb)
    ]


def _maps(layer: str, a: Mapping[str, str], b: Mapping[str, str]) -> list[Change]:
    out = []
    for k in sorted(set(a) | set(b)):
        if k not in a:
            out.append(Change(layer, "added", k, "", b[k]))
        elif k not in b:
            out.append(Change(layer, "removed", k, a[k], ""))
        elif a[k] != b[k]:
            out.append(Change(layer, "changed", k, a[k], b[k]))
    return out


# Keys holding byte counts, shown as 64M rather than 67108864.
SIZE_KEYS = frozenset(
    {
        "memory",
        "output",
        "file_size",
        "stack",
        "address_space",
        "memlock",
        "msgqueue",
        "disk",
        "size",
    }
)


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for k, v in value.items():
            out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if value is None:
        return {prefix: "(none)"}
    if prefix.rsplit(".", 1)[-1] in SIZE_KEYS and isinstance(value, int):
        return {prefix: comp.size(value)}
    return {prefix: str(value)}


def _binds(policy: Policy) -> dict[str, str]:
    return {
        b.target: f"{b.source} {'rw' if b.writable else 'ro'}{'' if b.exec else ',noexec'}"
        + (" optional" if b.optional else "")
        for b in policy.filesystem.binds
    }


def _landlock_rules(out: comp.Compiled) -> dict[str, str]:
    if out.landlock is None:
        return {}
    short = "LANDLOCK_ACCESS_FS_"
    rules = {
        r.path: ",".join(n.removeprefix(short).lower() for n in names(r.access, AccessFs))
        for r in out.landlock.rules
    }
    rules |= {f"tcp port {n.port}": "bind,connect" for n in out.landlock.net_rules}
    return rules


def _apparmor_lines(out: comp.Compiled) -> set[str]:
    if out.apparmor is None:
        return set()
    body = out.apparmor.text.replace(out.apparmor.name, "@NAME")
    return {
        s
        for line in body.splitlines()
        if (s := lint.strip_comment(line).strip()) and s not in ("}",)
    }


def _mounts(policy: Policy, root: Path) -> dict[str, str]:
    try:
        plan = plan_mounts(policy.filesystem, str(root), None, root)
    except PolicyError as e:
        return {"(plan)": f"cannot be built: {e}"}
    return {m.target: f"{m.source} {m.options}" for m in trace(plan)}


def _compiled(policy: Policy, host: HostFacts, parser: str) -> comp.Compiled:
    out = comp.Compiled()
    comp.seccomp(policy, host, out)
    comp.apparmor(policy, host, out, parser)
    comp.landlock(policy, host, out)
    return out


# --------------------------------------------------------------------- diff
def diff(
    a: Policy | LoadedProfile,
    b: Policy | LoadedProfile,
    host: HostFacts,
    *,
    parser: str = PARSER,
    root: Path = Path("/"),
) -> list[Change]:
    """Every semantic difference from A to B, grouped by layer.

    Raises:
        PolicyError: when either policy's seccomp section does not resolve.
    """
    pa, pb = unpack(a)[0], unpack(b)[0]
    sa, sb = resolve(pa.seccomp), resolve(pb.seccomp)
    ca, cb = _compiled(pa, host, parser), _compiled(pb, host, parser)
    out: list[Change] = []
    for arch in ARCHES:
        fa, fb = ca.seccomp.get(arch), cb.seccomp.get(arch)
        if fa is not None and fb is not None:
            out += seccomp_changes(sa, fa, sb, fb)
        elif fa is not None or fb is not None:
            why = {
                r.target: r.detail
                for r in (ca if fa is None else cb).layers
                if r.layer == "seccomp"
            }
            before = "builds" if fa is not None else f"not built: {why.get(arch, '?')}"
            after = "builds" if fb is not None else f"not built: {why.get(arch, '?')}"
            out.append(Change(f"seccomp {arch}", "changed", "(filter)", before, after))
    out += _sets("capabilities", "", lint.kept_caps(pa), lint.kept_caps(pb))
    fa_, fb_ = pa.filesystem, pb.filesystem
    for key in ("read_paths", "exec_paths", "writable", "host_dirs", "rootfs"):
        out += _sets("filesystem", key, getattr(fa_, key), getattr(fb_, key))
    out += _maps("filesystem binds", _binds(pa), _binds(pb))
    out += _maps(
        "filesystem tmpfs",
        {t.target: comp.size(t.size) for t in fa_.tmpfs},
        {t.target: comp.size(t.size) for t in fb_.tmpfs},
    )
    out += _maps("mounts", _mounts(pa, root), _mounts(pb, root))
    out += _maps("landlock", _landlock_rules(ca), _landlock_rules(cb))
    out += _sets("apparmor", "", _apparmor_lines(ca), _apparmor_lines(cb))
    rest_a, rest_b = pa.model_dump(mode="json"), pb.model_dump(mode="json")
    for key in ("limits", "layers", "namespaces", "identity", "network", "env"):
        out += _maps(key, _flat(rest_a[key]), _flat(rest_b[key]))
    scalars = ("disk", "disk_inodes", "proc", "workdir", "etc_allowlist")
    out += _maps(
        "filesystem",
        _flat({k: rest_a["filesystem"][k] for k in scalars}),
        _flat({k: rest_b["filesystem"][k] for k in scalars}),
    )
    return out


def render(changes: list[Change], a_label: str, b_label: str) -> str:
    """The human form: changes grouped by layer, ``+``/``-``/``~`` marks."""
    lines = [f"--- {a_label}", f"+++ {b_label}"]
    if not changes:
        return "\n".join([*lines, "no semantic difference"]) + "\n"
    layer = None
    for c in changes:
        if c.layer != layer:
            layer = c.layer
            counts = {k: sum(1 for x in changes if x.layer == layer and x.kind == k) for k in _MARK}
            summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
            if layer.startswith("seccomp"):
                summary = summary.replace("added", "newly allowed").replace(
                    "removed", "newly denied"
                )
            lines.append(f"{layer}: {summary}")
        detail = f"{c.before} -> {c.after}" if c.before or c.after else ""
        lines.append(f"  {_MARK[c.kind]} {c.subject:<28} {detail}".rstrip())
    return "\n".join(lines) + "\n"

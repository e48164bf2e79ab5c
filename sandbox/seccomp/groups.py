"""Syscall groups from ``seccomp_policies/``, and policy -> ``SeccompSpec`` resolution.

Runs in the supervisor, pure apart from reading the reviewed data files.

A group file (``seccomp_policies/groups/<name>.toml``) holds ``description``,
``syscalls`` (allowed unconditionally), ``errno`` (syscall -> errno name,
answered instead of running) and ``rules`` (argument rules, see
``argrules``). ``seccomp_policies/arch/<arch>.toml`` adds ABI-only names to
groups (``[group] syscalls = [...]``). Names are checked against the
per-arch tables; a name an arch lacks is simply absent from that arch's filter.

A profile may also carry its own argument rules (``[[seccomp.rules]]``, the
same keys; ``sandbox learn`` writes them for the clone flags, socket
families, ioctl requests and prctl options a program used), for syscalls no
selected group treats.

``resolve`` applies the precedence documented in ``spec``; ``deny`` is
applied last, so nothing a child profile adds can re-allow a denied syscall.
Ambiguity is an error, not a silent choice: a syscall in both ``errno`` and
``deny`` or ``allow``, an ``allow`` entry for a syscall a selected group only
allows under an argument rule, or two selected groups that treat one syscall
differently.
"""

from __future__ import annotations

import difflib
import errno as _errno
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sandbox.errors import PolicyError
from sandbox.policy.source import locate
from sandbox.seccomp.actions import errno_number
from sandbox.seccomp.argrules import ArgRule, Outcome
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES, POLICIES_DIR, all_names, arg_count, table

if TYPE_CHECKING:
    from sandbox.policy.frozen import Seccomp


_GROUP_KEYS = {"description", "syscalls", "errno", "rules"}
_RULE_KEYS = {"syscall", "arg", "mask", "values", "match", "otherwise"}


@dataclass(frozen=True, slots=True)
class Group:
    """One reviewed syscall group."""

    name: str
    description: str
    syscalls: frozenset[str]
    errno: tuple[tuple[str, int], ...]
    rules: tuple[ArgRule, ...]

    def treatment(self, syscall: str) -> object:
        """How this group treats ``syscall`` (None when it does not name it)."""
        for rule in self.rules:
            if rule.syscall == syscall:
                return rule
        for name, number in self.errno:
            if name == syscall:
                return ("errno", number)
        return "allow" if syscall in self.syscalls else None


def _fail(path: Path, message: str, needle: str | None = None) -> PolicyError:
    """``path[:line]: message``, the line being the first one naming ``needle``."""
    return PolicyError(f"{locate(str(path), needle) if needle else path}: {message}")


def _outcome(path: Path, where: str, value: object) -> Outcome:
    if value in ("allow", "default"):
        return "allow" if value == "allow" else "default"
    number = errno_number(value) if isinstance(value, str) else None
    if number is None:
        raise _fail(path, f"{where}: {value!r} is not 'allow', 'default' or an errno name")
    return number


def _rule(path: Path, group: str, raw: object) -> ArgRule:
    if not isinstance(raw, dict) or set(raw) != _RULE_KEYS:
        raise _fail(path, f"each [[rules]] entry needs exactly the keys {sorted(_RULE_KEYS)}")
    name, arg, values = raw["syscall"], raw["arg"], raw["values"]
    if not isinstance(name, str) or name not in all_names():
        raise _fail(path, f"rules: unknown syscall {name!r}{_hint(str(name))}", str(name))
    if not isinstance(arg, int) or isinstance(arg, bool) or not 0 <= arg < arg_count(name):
        count = arg_count(name)
        raise _fail(
            path,
            f"rules: {name} has no argument {arg!r} (it takes {count}: arg 0..{count - 1})"
            if count
            else f"rules: {name} takes no argument, so no rule can look at one",
            name,
        )
    if not isinstance(values, list) or not all(isinstance(v, int) for v in values):
        raise _fail(path, f"rules: {name}: values must be a list of integers", name)
    if not isinstance(raw["mask"], int):
        raise _fail(path, f"rules: {name}: mask must be an integer", name)
    rule = ArgRule(
        syscall=name,
        arg=arg,
        mask=raw["mask"],
        values=tuple(sorted(set(values))),
        match=_outcome(path, f"rules: {name}: match", raw["match"]),
        otherwise=_outcome(path, f"rules: {name}: otherwise", raw["otherwise"]),
        group=group,
    )
    if problems := rule.problems():
        raise _fail(path, f"rules: {name}: {'; '.join(problems)}", name)
    return rule


def _names(path: Path, where: str, raw: object, known: frozenset[str]) -> frozenset[str]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise _fail(path, f"{where} must be a list of syscall names")
    for name in raw:
        if name not in known:
            raise _fail(path, f"{where}: unknown syscall {name!r}{_hint(name)}", name)
    return frozenset(raw)


def _parse_group(path: Path, raw: dict[str, Any], extra: frozenset[str]) -> Group:
    name = path.stem
    if unknown := set(raw) - _GROUP_KEYS:
        raise _fail(path, f"unknown keys {sorted(unknown)}")
    if not isinstance(raw.get("description"), str) or not raw["description"]:
        raise _fail(path, "every group needs a description")
    syscalls = _names(path, "syscalls", raw.get("syscalls", []), all_names()) | extra
    errno_raw = raw.get("errno", {})
    if not isinstance(errno_raw, dict):
        raise _fail(path, "errno must be a table of syscall = errno name")
    errnos = []
    for sc, value in sorted(errno_raw.items()):
        _names(path, "errno", [sc], all_names())
        number = errno_number(value) if isinstance(value, str) else None
        if number is None:
            raise _fail(path, f"errno: {sc}: unknown errno {value!r}", sc)
        errnos.append((sc, number))
    rules = tuple(_rule(path, name, r) for r in raw.get("rules", []))
    named = [r.syscall for r in rules] + [sc for sc, _ in errnos] + sorted(syscalls)
    if dupes := sorted({n for n in named if named.count(n) > 1}):
        raise _fail(path, f"{dupes} named twice (in syscalls, errno or rules)", dupes[0])
    return Group(name, raw["description"], syscalls, tuple(errnos), rules)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise _fail(path, f"cannot load: {e}") from e


@functools.cache
def load_groups(directory: Path = POLICIES_DIR) -> Mapping[str, Group]:
    """Every group in ``directory/groups``, with the arch overlays merged in.

    Raises:
        PolicyError: naming the file and key of any problem in the data.
    """
    overlays: dict[str, set[str]] = {}
    for arch in ARCHES:
        path = directory / "arch" / f"{arch}.toml"
        if not path.exists():
            continue
        for group, body in _read(path).items():
            if not isinstance(body, dict) or set(body) != {"syscalls"}:
                raise _fail(path, f"[{group}] must hold exactly 'syscalls'")
            known = frozenset(table(arch).by_name)
            overlays.setdefault(group, set()).update(
                _names(path, f"{group}.syscalls", body["syscalls"], known)
            )
    groups = {}
    for path in sorted((directory / "groups").glob("*.toml")):
        groups[path.stem] = _parse_group(path, _read(path), frozenset(overlays.pop(path.stem, ())))
    if overlays:
        raise PolicyError(f"{directory / 'arch'}: overlays for unknown groups {sorted(overlays)}")
    return MappingProxyType(groups)


def _hint(name: str, choices: frozenset[str] | None = None) -> str:
    close = difflib.get_close_matches(name, sorted(choices or all_names()), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _problems(seccomp: Seccomp, groups: Mapping[str, Group]) -> list[tuple[str, str, str]]:
    """(key, offending name, message) for everything wrong with ``seccomp``."""
    out: list[tuple[str, str, str]] = []
    known = all_names()
    for g in seccomp.groups:
        if g not in groups:
            out.append(("groups", g, f"unknown group {g!r}{_hint(g, frozenset(groups))}"))
    for key, names in (("allow", seccomp.allow), ("deny", seccomp.deny), ("errno", seccomp.errno)):
        for n in names:
            if n not in known:
                out.append((key, n, f"unknown syscall {n!r}{_hint(n)}"))
    for sc, e in [*seccomp.errno.items(), ("(default)", seccomp.default_errno)]:
        if errno_number(e) is None:
            key = "errno" if sc != "(default)" else "default_errno"
            out.append((key, e, f"unknown errno {e!r} for {sc}"))
    for n in sorted(set(seccomp.errno) & set(seccomp.deny)):
        out.append(("errno", n, f"{n!r} is in both errno and deny: drop one"))
    for n in sorted(set(seccomp.errno) & set(seccomp.allow)):
        out.append(("errno", n, f"{n!r} is in both errno and allow: drop one"))
    selected = [groups[g] for g in seccomp.groups if g in groups]
    out += _rule_problems(seccomp, selected)
    for n in sorted(
        {n for g in selected for n in g.syscalls | {r.syscall for r in g.rules}}
        | {sc for g in selected for sc, _ in g.errno}
    ):
        seen = {g.name: g.treatment(n) for g in selected if g.treatment(n) is not None}
        if len({repr(t) for t in seen.values()}) > 1:
            out.append(("groups", n, f"groups {sorted(seen)} treat {n!r} differently"))
        if n in seccomp.allow and any(t != "allow" for t in seen.values()):
            # Widening a rule or an errno answer (clone3's ENOSYS keeps namespace
            # flags out of reach) must be a reviewed group change, not a profile line.
            out.append(
                (
                    "allow",
                    n,
                    f"group {sorted(seen)} restricts {n!r} by an argument "
                    "rule or an errno; remove it from allow",
                )
            )
    return out


def profile_rules(seccomp: Seccomp) -> tuple[ArgRule, ...]:
    """The profile's own ``[[seccomp.rules]]`` as ArgRules (unchecked: see ``_rule_problems``)."""
    out = []

    def outcome(value: str) -> Outcome:
        if value == "allow":
            return "allow"
        if value == "default":
            return "default"
        return errno_number(value) or 0  # 0: an unknown errno, reported by _rule_problems

    for r in seccomp.rules:
        out.append(
            ArgRule(
                syscall=r.syscall,
                arg=r.arg,
                mask=r.mask,
                values=tuple(sorted(set(r.values))),
                match=outcome(r.match),
                otherwise=outcome(r.otherwise),
                group="profile",
            )
        )
    return tuple(out)


def _rule_problems(seccomp: Seccomp, selected: list[Group]) -> list[tuple[str, str, str]]:
    """Problems of the profile's own argument rules: names, shape, ambiguity."""
    out: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for raw, rule in zip(seccomp.rules, profile_rules(seccomp), strict=True):
        n = rule.syscall
        if n not in all_names():
            out.append(("rules", n, f"unknown syscall {n!r}{_hint(n)}"))
            continue
        for value in (raw.match, raw.otherwise):
            if value not in ("allow", "default") and errno_number(value) is None:
                out.append(("rules", n, f"{n}: unknown errno {value!r}"))
        if rule.arg >= arg_count(n):
            out.append(("rules", n, f"{n} has no argument {rule.arg}"))
        if problems := rule.problems():
            out.append(("rules", n, f"{n}: {'; '.join(problems)}"))
        if n in seen:
            out.append(("rules", n, f"two rules for {n!r}: merge their values into one"))
        seen.add(n)
        owners = sorted(g.name for g in selected if g.treatment(n) is not None)
        if owners:
            out.append(
                (
                    "rules",
                    n,
                    f"group {owners} already treats {n!r}: drop the group or the rule",
                )
            )
        for key, names in (("allow", seccomp.allow), ("errno", seccomp.errno)):
            if n in names:
                out.append(("rules", n, f"{n!r} is in both rules and {key}: drop one"))
    return out


def check_names(
    seccomp: Seccomp, source: str, *, groups: Mapping[str, Group] | None = None
) -> None:
    """Check every group, syscall and errno name in a policy's seccomp section.

    ``groups`` defaults to the reviewed groups in ``seccomp_policies/``.

    Raises:
        PolicyError: one line per problem, ``source[:line]: seccomp.<key>: message``.
    """
    problems = _problems(seccomp, load_groups() if groups is None else groups)
    if problems:
        lines = [f"{locate(source, n)}: seccomp.{key}: {msg}" for key, n, msg in problems]
        errors = [{"loc": ("seccomp", key), "msg": msg} for key, _, msg in problems]
        raise PolicyError("; ".join(lines), errors=errors)


def resolve(seccomp: Seccomp, *, groups: Mapping[str, Group] | None = None) -> SeccompSpec:
    """Expand groups and apply the precedence rules (deny last).

    Raises:
        PolicyError: for any problem ``check_names`` reports.
    """
    groups = load_groups() if groups is None else groups
    check_names(seccomp, "<policy>", groups=groups)
    selected = [groups[g] for g in seccomp.groups]
    allow = {n for g in selected for n in g.syscalls} | set(seccomp.allow)
    errno = {sc: e for g in selected for sc, e in g.errno}
    errno |= {sc: errno_number(e) or 0 for sc, e in seccomp.errno.items()}
    rules = {r.syscall: r for g in selected for r in g.rules if r.syscall not in errno}
    rules |= {r.syscall: r for r in profile_rules(seccomp)}
    deny = frozenset(seccomp.deny)
    allow -= set(errno) | set(rules) | deny
    errno = {sc: e for sc, e in errno.items() if sc not in deny}
    enosys = frozenset(sc for sc, e in errno.items() if e == _errno.ENOSYS)
    return SeccompSpec(
        default_action=seccomp.default_action,
        # Only an "errno" default uses it; 0 otherwise keeps it out of the artifact key.
        default_errno=(errno_number(seccomp.default_errno) or 0)
        if seccomp.default_action == "errno"
        else 0,
        allow=frozenset(allow),
        errno=tuple(sorted((sc, e) for sc, e in errno.items() if sc not in enosys)),
        enosys=enosys,
        rules=tuple(r for _, r in sorted(rules.items()) if r.syscall not in deny),
        deny=deny,
    )

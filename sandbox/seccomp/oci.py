"""Docker/OCI seccomp JSON <-> a policy's seccomp section (``sandbox seccomp import/export``).

Pure (supervisor side or the CLI). Both directions use the format of moby's
``profiles/seccomp/default.json`` and of ``config.json``'s ``linux.seccomp``
(runtime-spec ``config-linux.md``): ``defaultAction``, ``defaultErrnoRet``,
``architectures`` or ``archMap``, and ``syscalls`` entries with ``names``,
``action``, ``errnoRet``, ``args`` (``index``, ``value``, ``valueTwo``,
``op``) and moby's ``includes``/``excludes`` (``arches``, ``caps``,
``minKernel``).

**Import** never widens what the JSON allows. A profile cannot hold argument
rules (those live in reviewed groups), so:

- an entry that *allows* a syscall under argument conditions is left out:
  the syscall falls to the default action (stricter), and the note names
  the reviewed group that allows it under a similar rule, if any;
- an entry that *refuses* a syscall under conditions also removes any
  unconditional allow of it (a conditional refusal cannot be kept, so the
  allow is what goes);
- ``LOG`` becomes allow, ``KILL``/``TRAP``/``NOTIFY``/``TRACE`` become
  ``deny`` (answered with the default action when it refuses), each noted;
- moby's ``includes``/``excludes`` are evaluated for an x86-64 host with
  the given kernel and capabilities (none by default: the payload keeps none);
- names no x86 ABI has are skipped, and noted;
- under a default that lets syscalls run (``ALLOW``/``LOG``), a conditional
  refusal can only be kept by denying the syscall outright, and a refused
  name our tables lack cannot be kept at all: both are said in a WARNING
  note (and ``sandbox verify`` refuses such a default, SBX103).

Every note says what changed and why; ``sandbox seccomp import`` writes them
as comments at the top of the generated profile and verifies the result.
Nothing from the JSON is written raw: the table is data for a TOML writer
that escapes, and notes quote JSON text with :func:`quote`.

With ``--extends BASE``, ``seccomp.intersect`` lists every syscall with the
stricter of the JSON's and the base's treatment, and the profile replaces
the base's groups, allow-list and rules, so it never allows more than
either. The CLI checks both promises on the compiled filters
(``sandbox.verify.subset``) before it writes anything.

**Export** writes the resolved spec for the x86_64 ABI only: our filters
kill every other ABI, which is what listing one architecture means to
libseccomp-based runtimes (runc, crun). Engines refuse ``SCMP_ACT_NOTIFY``
where they hold no listener (a default needs one, podman and runc have
none), so a notify default is written as what our supervisor does with
each notification of that policy: the kill (``SCMP_ACT_KILL_PROCESS``),
said in the document's ``comment``. Argument rules become one entry per
alternative, computed exactly as ``seccomp.build`` does; entries whose
action equals the default are left out (libseccomp refuses them, and they
change nothing).
"""

from __future__ import annotations

import errno as _errno
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import PolicyError
from sandbox.seccomp.actions import (
    SECCOMP_RET_ACTION_FULL,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_DATA,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    SECCOMP_RET_KILL_THREAD,
    SECCOMP_RET_LOG,
    SECCOMP_RET_TRAP,
    SECCOMP_RET_USER_NOTIF,
    errno_number,
)
from sandbox.seccomp.argrules import Cond, complement_conds, match_conds
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import all_names, table

# Our action names <-> libseccomp's. SCMP_ACT_KILL is KILL_THREAD (libseccomp).
TO_OCI = {
    "kill_process": "SCMP_ACT_KILL_PROCESS",
    "kill_thread": "SCMP_ACT_KILL_THREAD",
    "trap": "SCMP_ACT_TRAP",
    "errno": "SCMP_ACT_ERRNO",
    "notify": "SCMP_ACT_NOTIFY",
    "log": "SCMP_ACT_LOG",
    "allow": "SCMP_ACT_ALLOW",
}
FROM_OCI = {v: k for k, v in TO_OCI.items()} | {"SCMP_ACT_KILL": "kill_thread"}
_RET_TO_OCI = {
    SECCOMP_RET_KILL_PROCESS: "SCMP_ACT_KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    SECCOMP_RET_TRAP: "SCMP_ACT_TRAP",
    SECCOMP_RET_ERRNO: "SCMP_ACT_ERRNO",
    SECCOMP_RET_USER_NOTIF: "SCMP_ACT_NOTIFY",
    SECCOMP_RET_LOG: "SCMP_ACT_LOG",
    SECCOMP_RET_ALLOW: "SCMP_ACT_ALLOW",
}
_OPS = {"eq": "SCMP_CMP_EQ", "ne": "SCMP_CMP_NE", "masked_eq": "SCMP_CMP_MASKED_EQ"}
# What an x86-64 host is called in moby's includes/excludes (Go's GOARCH
# names plus libseccomp's), and the libseccomp arch tokens of the x86 ABIs.
X86_ARCH_NAMES = frozenset({"amd64", "x86_64", "x86", "386", "i386", "x32"})
HOST_ARCH_NAMES = frozenset({"amd64", "x86_64"})
X86_SCMP = frozenset({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"})


# --------------------------------------------------------------------- export
def _loadable(action: str) -> str:
    """An action an engine can load without a listener of its own (notify -> the kill)."""
    return "kill_process" if action == "notify" else action


def _action(ret: int) -> dict[str, Any]:
    action = ret & SECCOMP_RET_ACTION_FULL
    if action == SECCOMP_RET_USER_NOTIF:  # no listener in the engine: the kill (see export)
        action = SECCOMP_RET_KILL_PROCESS
    out: dict[str, Any] = {"action": _RET_TO_OCI[action]}
    if action == SECCOMP_RET_ERRNO:
        out["errnoRet"] = ret & SECCOMP_RET_DATA
    return out


def _arg(c: Cond) -> dict[str, Any]:
    if c.op == "masked_eq":
        return {"index": c.arg, "value": c.datum_a, "valueTwo": c.datum_b, "op": _OPS[c.op]}
    return {"index": c.arg, "value": c.datum_a, "op": _OPS[c.op]}


def export(spec: SeccompSpec, arch: str = "x86_64") -> dict[str, Any]:
    """The OCI/Docker seccomp object for ``spec`` (usable as ``linux.seccomp``).

    Raises:
        KeyError: for an arch we keep no table for.
    """
    known = set(table(arch).by_name)
    default = spec.default_ret
    out: dict[str, Any] = {}
    if spec.default_action == "notify":
        out["comment"] = (
            "sandbox's default action is notify (its supervisor records each refused "
            "syscall, then kills the run); engines hold no listener, so it is exported "
            "as SCMP_ACT_KILL_PROCESS"
        )
    out["defaultAction"] = TO_OCI[_loadable(spec.default_action)]
    if spec.default_action == "errno":
        out["defaultErrnoRet"] = spec.default_errno
    out["architectures"] = ["SCMP_ARCH_X86_64"] if arch == "x86_64" else [f"SCMP_ARCH_{arch}"]
    entries: list[dict[str, Any]] = []

    def add(names: Sequence[str], ret: int, args: Sequence[Cond] = (), comment: str = "") -> None:
        names = sorted(n for n in names if n in known)
        if not names or ret == default:
            return
        entry: dict[str, Any] = {"names": names, **_action(ret)}
        if args:
            entry["args"] = [_arg(c) for c in args]
        if comment:
            entry["comment"] = comment
        entries.append(entry)

    add(sorted(spec.allow), SECCOMP_RET_ALLOW)
    by_errno: dict[int, list[str]] = {}
    for name, number in spec.errno:
        by_errno.setdefault(number, []).append(name)
    for name in spec.enosys:
        by_errno.setdefault(_errno.ENOSYS, []).append(name)
    for number, names in sorted(by_errno.items()):
        add(names, SECCOMP_RET_ERRNO | number)
    for rule in spec.rules:
        where = f" (group {rule.group})" if rule.group else ""
        for outcome, conds in (
            (rule.match, match_conds(rule, 64)),
            (rule.otherwise, complement_conds(rule, 64)),
        ):
            for c in conds:
                add([rule.syscall], spec.outcome_ret(outcome), (c,), f"argument rule{where}")
    add(sorted(spec.deny), spec.deny_ret, comment="deny: never allowed")
    out["syscalls"] = entries
    return out


# --------------------------------------------------------------------- import
@dataclass
class Imported:
    """A policy's ``[seccomp]`` table from OCI JSON, and what could not be kept as is.

    Every string of ``seccomp`` is data for a TOML writer that escapes. The
    notes become comments: each quotes what came from the JSON with
    :func:`quote`, so no note holds a raw untrusted character (issue 13: a
    syscall name with a newline ended the comment and the rest was TOML).
    """

    seccomp: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def quote(value: object) -> str:
    """Untrusted text for a note: a JSON string of printable ASCII only (escapes for the rest)."""
    return json.dumps(value if isinstance(value, str) else repr(value), ensure_ascii=True)


def _quoted(values: Iterable[object]) -> str:
    return ", ".join(quote(v) for v in values)


def _fail(where: str, message: str) -> PolicyError:
    return PolicyError(f"{where}: {message}")


def find_seccomp(doc: Any, source: str = "<json>") -> Mapping[str, Any]:
    """The seccomp object of a moby profile or of a whole ``config.json``.

    Raises:
        PolicyError: when neither shape is found.
    """
    if isinstance(doc, Mapping) and isinstance(doc.get("linux"), Mapping):
        sec = doc["linux"].get("seccomp")
        if isinstance(sec, Mapping):
            return sec
        raise _fail(source, "config.json has no linux.seccomp object")
    if isinstance(doc, Mapping) and "defaultAction" in doc:
        return doc
    raise _fail(source, "expected a seccomp profile (defaultAction...) or a config.json")


def _kernel(text: object, where: str) -> tuple[int, ...]:
    if not isinstance(text, str):
        raise _fail(where, f"minKernel must be a string like '4.8', got {text!r}")
    try:
        return tuple(int(p) for p in text.split("-")[0].split("."))
    except ValueError:
        raise _fail(where, f"bad minKernel {text!r}") from None


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, f"{key} must be a list of strings")
    return value


def applies(
    entry: Mapping[str, Any], where: str, kernel: tuple[int, ...], caps: frozenset[str]
) -> str | None:
    """None when a moby entry applies on an x86-64 host with ``kernel`` and ``caps``, else why not.

    Raises:
        PolicyError: for includes/excludes of the wrong shape.
    """
    inc = entry.get("includes") or {}
    exc = entry.get("excludes") or {}
    if not isinstance(inc, Mapping) or not isinstance(exc, Mapping):
        raise _fail(where, "includes/excludes must be objects")
    inc_arches, exc_arches = _strings(inc, "arches", where), _strings(exc, "arches", where)
    inc_caps, exc_caps = set(_strings(inc, "caps", where)), set(_strings(exc, "caps", where))
    if inc_arches and not HOST_ARCH_NAMES & set(inc_arches):
        return f"only for {_quoted(inc_arches)}"
    if HOST_ARCH_NAMES & set(exc_arches):
        return "excluded on amd64"
    if inc_caps and not inc_caps <= caps:
        missing = sorted(inc_caps - caps)
        return f"only with {_quoted(missing)}" + ("" if caps else " (the payload keeps none)")
    if exc_caps & caps:
        return f"excluded with {_quoted(sorted(exc_caps & caps))}"
    if inc.get("minKernel") and kernel < _kernel(inc["minKernel"], where):
        return f"only from kernel {quote(inc['minKernel'])}"
    if exc.get("minKernel") and kernel >= _kernel(exc["minKernel"], where):
        return f"excluded from kernel {quote(exc['minKernel'])}"
    return None


def _names(entry: Mapping[str, Any], where: str) -> list[str]:
    names = entry.get("names", [entry["name"]] if "name" in entry else None)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _fail(where, "names must be a list of syscall names")
    return names


def _ruled_by_groups() -> dict[str, str]:
    """syscall -> a reviewed group that allows it under an argument rule or errno."""
    from sandbox.seccomp.groups import load_groups

    out: dict[str, str] = {}
    for g in load_groups().values():
        for r in g.rules:
            out.setdefault(r.syscall, g.name)
        for name, _ in g.errno:
            out.setdefault(name, g.name)
    return out


def _errno_name(number: object, where: str) -> str:
    if not isinstance(number, int) or isinstance(number, bool):
        raise _fail(where, f"errnoRet must be a number, got {number!r}")
    name = _errno.errorcode.get(number)
    if name is None or errno_number(name) is None:
        raise _fail(where, f"errnoRet {number} is not an errno this host knows")
    return name


def _our_action(value: object, where: str) -> str:
    """Our action name for a libseccomp action string (TRACE reads as ``trace``)."""
    if value == "SCMP_ACT_TRACE":
        return "trace"
    if not isinstance(value, str) or value not in FROM_OCI:
        raise _fail(where, f"unsupported action {value!r}")
    return FROM_OCI[value]


def _arches(sec: Mapping[str, Any], source: str) -> set[str]:
    arches = set(_strings(sec, "architectures", f"{source}: architectures"))
    maps = sec.get("archMap") or []
    if not isinstance(maps, list) or not all(isinstance(m, Mapping) for m in maps):
        raise _fail(f"{source}: archMap", "must be a list of objects")
    for m in maps:
        arch = m.get("architecture")
        if not isinstance(arch, str):
            raise _fail(f"{source}: archMap", "architecture must be a string")
        arches |= {arch, *_strings(m, "subArchitectures", f"{source}: archMap")}
    return arches


@dataclass
class _Read:
    """What the entries say, before the notes are written."""

    allow: set[str] = field(default_factory=set)
    errno: dict[str, str] = field(default_factory=dict)
    deny: set[str] = field(default_factory=set)
    cond_refused: set[str] = field(default_factory=set)
    cond_allowed: set[str] = field(default_factory=set)
    unknown_refused: set[str] = field(default_factory=set)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    logged: list[str] = field(default_factory=list)


def _read_entries(
    sec: Mapping[str, Any],
    source: str,
    kernel: tuple[int, ...],
    caps: frozenset[str],
    notes: list[str],
) -> _Read:
    r = _Read()
    entries = sec.get("syscalls") or []
    if not isinstance(entries, list):
        raise _fail(f"{source}: syscalls", "must be a list")
    for i, entry in enumerate(entries):
        where = f"{source}: syscalls[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, "must be an object")
        names = _names(entry, where)
        why = applies(entry, where, kernel, caps)
        if why is not None:
            r.skipped.setdefault(why, []).extend(names)
            continue
        action = _our_action(entry.get("action"), f"{where}: action")
        runs = action in ("allow", "log")
        unknown = [n for n in names if n not in all_names()]
        if unknown:
            r.skipped.setdefault("not an x86 syscall", []).extend(unknown)
            if not runs:
                r.unknown_refused.update(unknown)
        names = [n for n in names if n in all_names()]
        if entry.get("args"):
            (r.cond_allowed if runs else r.cond_refused).update(names)
            continue
        if action == "log":
            r.logged += names
        if runs:
            r.allow.update(names)
        elif action == "errno":
            number = entry.get("errnoRet", sec.get("defaultErrnoRet", _errno.EPERM))
            if number == 0:
                notes.append(f"{', '.join(names)}: ERRNO(0) fakes success; imported as deny")
                r.deny.update(names)
            else:
                for n in names:
                    r.errno[n] = _errno_name(number, f"{where}: errnoRet")
        else:
            if action in ("trace", "notify"):
                notes.append(
                    f"{', '.join(names)}: SCMP_ACT_{action.upper()} needs a supervisor "
                    "sandbox does not run; imported as deny"
                )
            r.deny.update(names)
    return r


def import_oci(
    doc: Any,
    *,
    source: str = "<json>",
    kernel: tuple[int, ...] = (6, 1),
    caps: frozenset[str] = frozenset(),
) -> Imported:
    """Turn an OCI/Docker seccomp profile into a ``[seccomp]`` table (see module docstring).

    Args:
        doc: the parsed JSON (a moby profile or a whole config.json).
        source: file name for messages.
        kernel: the kernel moby's ``minKernel`` is evaluated against.
        caps: capabilities the payload keeps (moby's ``includes.caps``).

    Raises:
        PolicyError: for a malformed document or an action sandbox cannot
            enforce (naming the JSON path).
    """
    sec = find_seccomp(doc, source)
    notes: list[str] = []
    default = _our_action(sec.get("defaultAction"), f"{source}: defaultAction")
    if default == "trace":
        raise _fail(f"{source}: defaultAction", "unsupported action 'SCMP_ACT_TRACE'")
    table_out: dict[str, Any] = {"default_action": default}
    if sec.get("defaultAction") == "SCMP_ACT_KILL":
        notes.append(
            "defaultAction SCMP_ACT_KILL kills the thread only (libseccomp); kept as "
            "kill_thread: consider kill_process"
        )
    if default == "errno":
        table_out["default_errno"] = _errno_name(
            sec.get("defaultErrnoRet", _errno.EPERM), f"{source}: defaultErrnoRet"
        )
    arches = _arches(sec, source)
    if arches & {"SCMP_ARCH_X86", "SCMP_ARCH_X32"}:
        notes.append(
            "i386 and x32 are listed, but sandbox filters kill every ABI but the "
            "host's (foreign ABIs are a known way around an x86_64 filter)"
        )
    if arches and not arches & X86_SCMP:
        notes.append(f"no x86 architecture listed ({_quoted(sorted(arches))})")
    for key in ("listenerPath", "listenerMetadata", "flags"):
        if sec.get(key):
            notes.append(f"{key} is ignored: sandbox loads its own filter")
    r = _read_entries(sec, source, kernel, caps, notes)
    if r.logged:
        notes.append(f"{', '.join(r.logged)}: SCMP_ACT_LOG imported as allow (no per-syscall log)")
    default_runs = default in ("allow", "log")
    ruled = _ruled_by_groups()
    for n in sorted(r.cond_allowed - r.allow):
        hint = (
            f"; the reviewed group {ruled[n]!r} allows it under its own rule" if n in ruled else ""
        )
        notes.append(
            f"{n}: allowed only under argument conditions in the JSON: left to the default "
            f"action{hint}"
        )
    for why, names in sorted(r.skipped.items()):
        notes.append(f"skipped ({why}): {_quoted(sorted(set(names)))}")
    if default_runs:
        # Under a default that runs, a conditional refusal can only be kept by refusing
        # the syscall outright; what our tables cannot name cannot be refused at all.
        if r.cond_refused - r.deny:
            notes.append(
                f"{', '.join(sorted(r.cond_refused - r.deny))}: refused under argument "
                f"conditions in the JSON, under a default that lets everything else run: "
                "denied outright"
            )
        r.deny |= r.cond_refused
        if r.unknown_refused:
            notes.append(
                f"WARNING: the JSON refuses {_quoted(sorted(r.unknown_refused))}, which no "
                f"x86 table names: under default_action {default!r} they run. "
                "sandbox verify refuses this default (SBX103)"
            )
        notes.append(
            f"WARNING: default_action {default!r} lets every syscall not listed run; "
            "sandbox verify refuses it (SBX103): give a refusing default"
        )
    else:
        weakened = sorted(r.cond_refused & r.allow)
        if weakened:
            notes.append(
                f"{', '.join(weakened)}: refused under argument conditions in the JSON, "
                "which a profile cannot express: not allowed at all"
            )
    r.allow -= r.cond_refused | set(r.errno) | r.deny
    for n in sorted(set(r.errno) & r.deny):
        del r.errno[n]
    table_out |= {
        "allow": sorted(r.allow),
        "errno": dict(sorted(r.errno.items())),
        "deny": sorted(r.deny),
    }
    return Imported(table_out, notes)

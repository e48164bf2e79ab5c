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
- names no x86 ABI has are skipped, and noted.

Every note says what changed and why; ``sandbox seccomp import`` writes them
as comments at the top of the generated profile and verifies the result.

**Export** writes the resolved spec for the x86_64 ABI only: our filters
kill every other ABI, which is what listing one architecture means to
libseccomp-based runtimes (runc, crun). Argument rules become one entry per
alternative, computed exactly as ``seccomp.build`` does; entries whose
action equals the default are left out (libseccomp refuses them, and they
change nothing).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping, Sequence
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
def _action(ret: int) -> dict[str, Any]:
    action = ret & SECCOMP_RET_ACTION_FULL
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
    out: dict[str, Any] = {"defaultAction": TO_OCI[spec.default_action]}
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
    """A policy's ``[seccomp]`` table from OCI JSON, and what could not be kept as is."""

    seccomp: dict[str, Any]
    notes: list[str] = field(default_factory=list)


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


def _applies(
    entry: Mapping[str, Any], where: str, kernel: tuple[int, ...], caps: frozenset[str]
) -> str | None:
    """None when the entry applies here, else why not."""
    inc = entry.get("includes") or {}
    exc = entry.get("excludes") or {}
    if not isinstance(inc, Mapping) or not isinstance(exc, Mapping):
        raise _fail(where, "includes/excludes must be objects")
    if inc.get("arches") and not HOST_ARCH_NAMES & set(inc["arches"]):
        return f"only for {', '.join(inc['arches'])}"
    if exc.get("arches") and HOST_ARCH_NAMES & set(exc["arches"]):
        return "excluded on amd64"
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return (
            f"only with {', '.join(inc['caps'])} (the payload keeps none)"
            if not caps
            else (f"only with {', '.join(sorted(set(inc['caps']) - caps))}")
        )
    if exc.get("caps") and set(exc["caps"]) & caps:
        return f"excluded with {', '.join(sorted(set(exc['caps']) & caps))}"
    if inc.get("minKernel") and kernel < _kernel(inc["minKernel"], where):
        return f"only from kernel {inc['minKernel']}"
    if exc.get("minKernel") and kernel >= _kernel(exc["minKernel"], where):
        return f"excluded from kernel {exc['minKernel']}"
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
    default = FROM_OCI.get(sec.get("defaultAction"))  # type: ignore[arg-type]
    if default is None:
        raise _fail(f"{source}: defaultAction", f"unsupported action {sec.get('defaultAction')!r}")
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
    arches = set(sec.get("architectures") or [])
    for m in sec.get("archMap") or []:
        arches |= {m.get("architecture"), *(m.get("subArchitectures") or [])}
    if arches & {"SCMP_ARCH_X86", "SCMP_ARCH_X32"}:
        notes.append(
            "i386 and x32 are listed, but sandbox filters kill every ABI but the "
            "host's (foreign ABIs are a known way around an x86_64 filter)"
        )
    if arches and not arches & X86_SCMP:
        notes.append(f"no x86 architecture listed ({', '.join(sorted(a for a in arches if a))})")
    for key in ("listenerPath", "listenerMetadata", "flags"):
        if sec.get(key):
            notes.append(f"{key} is ignored: sandbox loads its own filter")
    allow: set[str] = set()
    errno_map: dict[str, str] = {}
    deny: set[str] = set()
    cond_refused: set[str] = set()
    cond_allowed: set[str] = set()
    skipped: dict[str, list[str]] = {}
    ruled = _ruled_by_groups()
    entries = sec.get("syscalls") or []
    if not isinstance(entries, list):
        raise _fail(f"{source}: syscalls", "must be a list")
    for i, entry in enumerate(entries):
        where = f"{source}: syscalls[{i}]"
        if not isinstance(entry, Mapping):
            raise _fail(where, "must be an object")
        names = _names(entry, where)
        why = _applies(entry, where, kernel, caps)
        if why is not None:
            skipped.setdefault(why, []).extend(names)
            continue
        unknown = [n for n in names if n not in all_names()]
        if unknown:
            skipped.setdefault("not an x86 syscall", []).extend(unknown)
        names = [n for n in names if n in all_names()]
        action = FROM_OCI.get(entry.get("action"))  # type: ignore[arg-type]
        raw_action = entry.get("action")
        if action is None and raw_action != "SCMP_ACT_TRACE":
            raise _fail(f"{where}: action", f"unsupported action {raw_action!r}")
        runs = action in ("allow", "log")
        if entry.get("args"):
            (cond_allowed if runs else cond_refused).update(names)
            continue
        if action == "log":
            notes.append(f"{', '.join(names)}: SCMP_ACT_LOG imported as allow (no per-syscall log)")
        if runs:
            allow.update(names)
        elif action == "errno":
            number = entry.get("errnoRet", sec.get("defaultErrnoRet", _errno.EPERM))
            if number == 0:
                notes.append(f"{', '.join(names)}: ERRNO(0) fakes success; imported as deny")
                deny.update(names)
            else:
                for n in names:
                    errno_map[n] = _errno_name(number, f"{where}: errnoRet")
        else:
            if raw_action in ("SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"):
                notes.append(
                    f"{', '.join(names)}: {raw_action} needs a supervisor sandbox does "
                    "not run; imported as deny"
                )
            deny.update(names)
    for n in sorted(cond_allowed - allow):
        hint = (
            f"; the reviewed group {ruled[n]!r} allows it under its own rule" if n in ruled else ""
        )
        notes.append(
            f"{n}: allowed only under argument conditions in the JSON: left to the default "
            f"action{hint}"
        )
    for why, names in sorted(skipped.items()):
        notes.append(f"skipped ({why}): {', '.join(sorted(set(names)))}")
    weakened = sorted(cond_refused & allow)
    if weakened:
        notes.append(
            f"{', '.join(weakened)}: refused under argument conditions in the JSON, "
            "which a profile cannot express: not allowed at all"
        )
    allow -= cond_refused | set(errno_map) | deny
    for n in sorted(set(errno_map) & deny):
        del errno_map[n]
    table_out |= {
        "allow": sorted(allow),
        "errno": dict(sorted(errno_map.items())),
        "deny": sorted(deny),
    }
    return Imported(table_out, notes)

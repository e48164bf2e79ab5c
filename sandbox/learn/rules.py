"""From a record to the rules a learned profile grants, paths collapsed (pure).

A learned profile is a set of **units**, each one grant that minimisation may
try to drop: a syscall allowed outright, one argument value of a tracked
syscall (clone flags, a socket family, an ioctl request, a prctl option), a
file or tree to read, a directory to list, a file to execute, a capability.
Everything else in the profile is fixed: the syscalls the launcher itself
needs after loading the filter, the errno answers the base gives (keeping
them only refuses), and everything the base says that learning does not touch
(namespaces, mounts, limits, deny lists).

Paths (``collapse``):

- files under the base's writable trees (``/box``, ``/tmp``) need no rule
  to be read or written: the base grants that (executing them still does);
  ``/proc/...`` becomes ``/proc`` (names carry pids);
  the safe ``/dev`` nodes are always granted by the Landlock layer;
- executed files and files mapped as code are exec units, one per file
  (the ELF interpreter and ``#!`` interpreters included); a library named
  with its minor version (``libz.so.1.2.13``) becomes a glob keeping the
  soname's major (``libz.so.1.*``), so an upgrade does not break the rule;
- read files are grouped under their **anchor**: the directory just below
  the deepest *shared* directory above them (``/usr/lib``, ``/etc``, ...,
  see ``SHARED``). Three or more files under one anchor become one tree
  (``/usr/lib/python3.11``); a file directly in a shared directory stays a
  file (``/etc/hostname``, ``/usr/lib/x86_64-linux-gnu/libc.so.6``), so a
  rule never widens to a host tree like ``/usr`` or ``/etc``;
- listed directories become list units (READ_DIR, no file reads), unless a
  read tree covers them;
- missing paths need no rule (the lookup fails before any permission check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from sandbox.landlock.rules import SAFE_DEVICES
from sandbox.learn.record import TRACKED, Record
from sandbox.seccomp.argrules import MAX_COVER_RULES, ArgRule, complement_conds
from sandbox.seccomp.setid import MODE_ARG
from sandbox.syscalls.consts import CloneFlag

UnitKind = Literal["syscall", "value", "read", "list", "exec", "cap"]
KINDS: tuple[UnitKind, ...] = ("read", "list", "exec", "value", "cap", "syscall")

# Directories shared by everything: a learned path rule never covers one of
# these as a tree, whatever was read below it.
SHARED = frozenset(
    {
        "/",
        "/bin",
        "/sbin",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/etc",
        "/usr",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib32",
        "/usr/lib64",
        "/usr/libx32",
        "/usr/libexec",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/i386-linux-gnu",
        "/usr/local",
        "/usr/local/bin",
        "/usr/local/lib",
        "/usr/local/share",
        "/usr/share",
        "/usr/include",
        "/var",
        "/var/lib",
        "/run",
        "/opt",
        "/home",
        "/root",
        "/srv",
        "/mnt",
        "/media",
        "/dev",
        "/sys",
    }
)
COLLAPSE_MIN = 3

# What a tracked syscall answers for an argument value nobody used while learning.
OTHERWISE: dict[str, str] = {
    "clone": "EPERM",  # what the base's clone rule answers namespace flags with
    "socket": "EAFNOSUPPORT",  # what a kernel without the family says
    "socketpair": "EAFNOSUPPORT",
    "ioctl": "ENOTTY",  # "not a terminal / not this device's request"
    "prctl": "EINVAL",  # what the kernel says for an unknown option
    "personality": "default",  # as the base's rule: other personas are refused
    **dict.fromkeys(MODE_ARG, "EPERM"),  # a set-id mode: as the base's rules answer it
}

# Syscalls the launcher makes after loading the filter, before execve: it
# writes the listener's fd number to its init and reads the ack
# (launcher/steps.py, step_seccomp). Every profile with a notify default needs them.
LAUNCHER_SYSCALLS = ("read", "write")


@dataclass(frozen=True, order=True, slots=True)
class Unit:
    """One grant of a learned profile (see the module docstring)."""

    kind: UnitKind
    key: str
    value: int = -1

    def label(self) -> str:
        """Stable text form: ``syscall openat``, ``value ioctl 0x5401``, ``read /etc/hostname``."""
        if self.kind == "value":
            return f"value {self.key} {self.value:#x}"
        return f"{self.kind} {self.key}"

    @classmethod
    def parse(cls, label: str) -> Unit:
        """Inverse of ``label``.

        Raises:
            ValueError: for a malformed label.
        """
        kind, _, rest = label.partition(" ")
        if kind not in KINDS or not rest:
            raise ValueError(f"not a unit label: {label!r}")
        if kind == "value":
            key, _, value = rest.partition(" ")
            return cls("value", key, int(value, 16))
        return cls(kind, rest)


@dataclass
class Derived:
    """The units a record asks for, with a reason each, and the fixed parts."""

    units: list[Unit] = field(default_factory=list)
    why: dict[Unit, str] = field(default_factory=dict)
    launcher: tuple[str, ...] = LAUNCHER_SYSCALLS
    errno: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (ERRNO, why)
    otherwise: dict[str, str] = field(default_factory=dict)  # tracked syscall -> outcome
    notes: list[str] = field(default_factory=list)


def runs_text(runs: Iterable[int]) -> str:
    """``run 1`` / ``runs 1,3``."""
    rs = sorted(set(runs))
    return ("run " if len(rs) == 1 else "runs ") + ",".join(str(r) for r in rs)


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def anchor(path: str) -> str:
    """The directory a read file may be collapsed into: just below its deepest shared
    ancestor (the file itself when it lies directly in a shared directory)."""
    parts = path.strip("/").split("/")
    for depth in range(len(parts) - 1, -1, -1):
        ancestor = "/" + "/".join(parts[:depth])
        if ancestor in SHARED or ancestor == "/":
            return "/" + "/".join(parts[: depth + 1])
    return path  # pragma: no cover - "/" is always shared


_VERSIONED = re.compile(r"^(lib[^/*]*\.so\.\d+)(\.\d+)+$")


def version_glob(path: str) -> str:
    """``.../libz.so.1.2.13`` -> ``.../libz.so.1.*``: a library file named with its minor
    version becomes a glob that keeps the soname's major, so the rule survives an
    upgrade of the library (Landlock expands it in the container, AppArmor matches it)."""
    parent, _, name = path.rpartition("/")
    m = _VERSIONED.match(name)
    return f"{parent}/{m.group(1)}.*" if m else path


def collapse(record: Record, writable: Iterable[str]) -> tuple[dict[Unit, str], list[str]]:
    """Path units (read, list, exec) with their reasons, and notes for the report."""
    trees = [w for w in writable]
    out: dict[Unit, str] = {}
    notes: list[str] = []
    reads: dict[str, str] = {}
    lists: dict[str, str] = {}
    covered_by_writable = 0
    outside: list[str] = []
    missing = 0
    for path, use in sorted(record.files.items()):
        how = f"{', '.join(sorted(use.via))} ({runs_text(use.runs)})"
        if use.asked:
            how += f"; asked as {', '.join(sorted(use.asked))}"
        if any(_under(path, t) for t in trees):
            # Writable trees grant read and write, never execute: a program copied
            # into /box still needs its exec rule.
            if use.access & {"exec", "map_exec"}:
                what = "executed" if "exec" in use.access else "mapped as code"
                out[Unit("exec", version_glob(path))] = f"{what}: {how}"
            else:
                covered_by_writable += 1
            continue
        if _under(path, "/proc"):
            if use.access - {"missing"}:
                out[Unit("read", "/proc")] = "the process's own /proc entries (names carry pids)"
            continue
        if path in SAFE_DEVICES:
            continue
        access = use.access
        if access & {"exec", "map_exec"}:
            what = "executed" if "exec" in access else "mapped as code"
            glob = version_glob(path)
            if glob != path:
                how += f"; {path.rsplit('/', 1)[1]} here, any minor version"
            out[Unit("exec", glob)] = f"{what}: {how}"
        elif access & {"read", "other"}:
            reads[path] = f"read: {how}"
        if "list" in access:
            lists[path] = f"listed: {how}"
        if access & {"write", "create"}:
            outside.append(path)
        if access == {"missing"}:
            missing += 1
    groups: dict[str, list[str]] = {}
    for path in reads:
        a = anchor(path)
        groups.setdefault(a, []).append(path)
    for a, paths in sorted(groups.items()):
        if a not in paths and len(paths) >= COLLAPSE_MIN:
            out[Unit("read", a)] = f"{len(paths)} files read below it, e.g. {sorted(paths)[0]}"
        else:
            for p in paths:
                out[Unit("read", p)] = reads[p]
    read_trees = [u.key for u in out if u.kind == "read"]
    for path, why in lists.items():
        if not any(_under(path, t) for t in read_trees):
            out[Unit("list", path)] = why
    if outside:
        notes.append(
            f"{len(outside)} paths written or created outside the writable trees (the "
            f"read-only image refuses that; no rule is learned), e.g. {outside[0]}"
        )
    if covered_by_writable:
        notes.append(f"{covered_by_writable} paths under the base's writable trees: no rule needed")
    if missing:
        notes.append(f"{missing} paths looked for but missing: no rule needed")
    return out, notes


def _syscall_units(record: Record, base_name: str, d: Derived) -> None:
    for name, use in sorted(record.syscalls.items()):
        if name in LAUNCHER_SYSCALLS:
            continue
        where = runs_text(use.runs)
        if use.treatment == "errno":
            err = _errname(use.errno)
            d.errno[name] = (err, f"answered {err} by {base_name} ({where})")
            continue
        if use.treatment == "withheld":
            err = _errname(use.errno)
            d.errno[name] = (err, f"withheld: {use.note}; answered {err} ({where})")
            continue
        how = (
            f"not allowed by {base_name}: learned ({where})"
            if use.treatment == "beyond"
            else f"allowed by {base_name} ({where})"
        )
        if name in TRACKED:
            d.otherwise[name] = OTHERWISE[name]
            for value, runs in sorted(use.values.items()):
                unit = Unit("value", name, value)
                d.units.append(unit)
                d.why[unit] = f"{describe_value(name, value)} ({runs_text(runs)})"
            if use.refused_values:
                refused = ", ".join(
                    f"{describe_value(name, v)} -> {_errname(e)}"
                    for v, e in sorted(use.refused_values.items())
                )
                d.notes.append(f"{name}: {base_name} refused {refused}; still refused")
            continue
        unit = Unit("syscall", name)
        d.units.append(unit)
        d.why[unit] = how


def derive(
    record: Record,
    base_name: str,
    writable: Iterable[str],
    caps: Mapping[str, str] | None = None,
) -> Derived:
    """Every unit the record asks for (sorted by kind, then key), reasons and notes.

    ``caps``: capabilities granted to the learning runs (name -> why).
    """
    d = Derived()
    _syscall_units(record, base_name, d)
    paths, notes = collapse(record, writable)
    d.units += list(paths)
    d.why.update(paths)
    d.notes += notes
    for cap, why in sorted((caps or {}).items()):
        unit = Unit("cap", cap)
        d.units.append(unit)
        d.why[unit] = why
    d.units.sort(key=lambda u: (KINDS.index(u.kind), u.key, u.value))
    return d


def rule_for(name: str, values: list[int], otherwise: str) -> tuple[str, str] | None:
    """(match, otherwise) of the rule for a tracked syscall's kept values, or None when
    no value is kept. ``otherwise`` falls back to ``default`` when an errno answer
    would need more comparisons than libseccomp may take (argrules.MAX_COVER_RULES)."""
    if not values:
        return None
    arg, mask = TRACKED[name]
    if otherwise != "default":
        rule = ArgRule(name, arg, mask, tuple(sorted(values)), "allow", 1)
        if len(complement_conds(rule, 64)) > MAX_COVER_RULES:
            otherwise = "default"
    return "allow", otherwise


# ------------------------------------------------------------ descriptions ----
_CLONE = {
    0x100: "CLONE_VM",
    0x200: "CLONE_FS",
    0x400: "CLONE_FILES",
    0x800: "CLONE_SIGHAND",
    0x1000: "CLONE_PIDFD",
    0x2000: "CLONE_PTRACE",
    0x4000: "CLONE_VFORK",
    0x8000: "CLONE_PARENT",
    0x10000: "CLONE_THREAD",
    0x40000: "CLONE_SYSVSEM",
    0x80000: "CLONE_SETTLS",
    0x100000: "CLONE_PARENT_SETTID",
    0x200000: "CLONE_CHILD_CLEARTID",
    0x400000: "CLONE_DETACHED",
    0x800000: "CLONE_UNTRACED",
    0x1000000: "CLONE_CHILD_SETTID",
    0x80000000: "CLONE_IO",
}
# The namespace flags from their one home (CLONE_NEWTIME is clone's signal byte here).
_CLONE.update({int(f): str(f.name) for f in CloneFlag if f is not CloneFlag.CLONE_NEWTIME})
_CLONE = dict(sorted(_CLONE.items()))
_FAMILIES = {1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK", 17: "AF_PACKET"}
_IOCTLS = {
    0x5401: "TCGETS",
    0x5402: "TCSETS",
    0x5403: "TCSETSW",
    0x540B: "TCFLSH",
    0x540F: "TIOCGPGRP",
    0x5410: "TIOCSPGRP",
    0x5413: "TIOCGWINSZ",
    0x541B: "FIONREAD",
    0x5421: "FIONBIO",
    0x5450: "FIONCLEX",
    0x5451: "FIOCLEX",
    0x5452: "FIOASYNC",
    0x80045430: "TIOCGPTN",
}
_PRCTL = {
    1: "PR_SET_PDEATHSIG",
    2: "PR_GET_PDEATHSIG",
    3: "PR_GET_DUMPABLE",
    4: "PR_SET_DUMPABLE",
    15: "PR_SET_NAME",
    16: "PR_GET_NAME",
    23: "PR_CAPBSET_READ",
    36: "PR_SET_CHILD_SUBREAPER",
    38: "PR_SET_NO_NEW_PRIVS",
    39: "PR_GET_NO_NEW_PRIVS",
    0x53564D41: "PR_SET_VMA",
}


def describe_value(name: str, value: int) -> str:
    """A tracked argument value in words (``CLONE_VM|...|SIGCHLD``, ``AF_UNIX``, ``TCGETS``)."""
    if name == "clone":
        flags = [n for bit, n in _CLONE.items() if value & bit]
        sig = value & 0xFF
        if sig:
            flags.append("SIGCHLD" if sig == 17 else f"signal {sig}")
        return "|".join(flags) or "0"
    if name in ("socket", "socketpair"):
        return _FAMILIES.get(value, f"family {value}")
    if name == "ioctl":
        return _IOCTLS.get(value, f"request {value:#x}")
    if name == "prctl":
        return _PRCTL.get(value, f"option {value}")
    if name in MODE_ARG:
        return "no set-id bit in the mode" if not value else f"mode bits {value:#o}"
    return f"{value:#x}"


def _errname(err: int) -> str:
    import errno as _errno

    return _errno.errorcode.get(err, f"E{err}")


_LABEL = re.compile(r"^(syscall|value|read|list|exec|cap) \S.*$")


def is_label(text: str) -> bool:
    """Whether ``text`` looks like a unit label."""
    return bool(_LABEL.match(text))


__all__ = [
    "COLLAPSE_MIN",
    "LAUNCHER_SYSCALLS",
    "OTHERWISE",
    "SHARED",
    "Derived",
    "Unit",
    "anchor",
    "collapse",
    "derive",
    "describe_value",
    "rule_for",
    "runs_text",
    "version_glob",
]

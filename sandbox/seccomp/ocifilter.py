"""The OCI/Docker seccomp JSON's own filter, built as a libseccomp runtime (runc) builds it.

Pure apart from libseccomp (no privilege: the filter is exported, never
loaded). It is the reference ``sandbox seccomp import`` checks its result
against: the profile it writes must never let a syscall run that this
filter refuses, for any arguments (issue 13). Only the x86_64 ABI is built:
the import evaluates moby's ``includes``/``excludes`` for an x86-64 host,
and sandbox filters kill every other ABI.

It keeps what the import cannot express (argument conditions, TRACE), so
the check also proves the import's own narrowing right. Refusing actions
without a supervisor (``NOTIFY``, ``TRACE``) fail the call with ENOSYS when
nobody listens, so they are built as ``ERRNO(ENOSYS)``: only "runs or not"
is compared.
"""

from __future__ import annotations

import errno as _errno
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyseccomp

from sandbox.errors import PolicyError
from sandbox.seccomp import _libseccomp
from sandbox.seccomp.actions import LIBSECCOMP_MAX_ERRNO
from sandbox.seccomp.argrules import FULL64
from sandbox.seccomp.bpf import Program
from sandbox.seccomp.build import _export, _Fd
from sandbox.seccomp.tables import ARCHES

HIGH32 = 0xFFFFFFFF00000000
_NAME = re.compile(r"[a-z0-9_]{1,64}")
_OPS = {
    "SCMP_CMP_NE": pyseccomp.NE,
    "SCMP_CMP_LT": pyseccomp.LT,
    "SCMP_CMP_LE": pyseccomp.LE,
    "SCMP_CMP_EQ": pyseccomp.EQ,
    "SCMP_CMP_GE": pyseccomp.GE,
    "SCMP_CMP_GT": pyseccomp.GT,
    "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ,
}
_FIXED = {
    "SCMP_ACT_ALLOW": pyseccomp.ALLOW,
    "SCMP_ACT_LOG": pyseccomp.LOG,
    "SCMP_ACT_KILL": pyseccomp.KILL,
    "SCMP_ACT_KILL_THREAD": pyseccomp.KILL,
    "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS,
    "SCMP_ACT_TRAP": pyseccomp.TRAP,
    "SCMP_ACT_NOTIFY": pyseccomp.ERRNO(_errno.ENOSYS),
    "SCMP_ACT_TRACE": pyseccomp.ERRNO(_errno.ENOSYS),
}


@dataclass(frozen=True, slots=True)
class Cmp:
    """One condition of an entry: ``args[index] <op> value`` (masked: ``& value == two``)."""

    index: int
    op: str
    value: int
    two: int = 0

    def satisfied_by(self) -> int:
        """An argument value for which the condition holds (when one exists)."""
        v, two = self.value, self.two
        return {
            "SCMP_CMP_NE": (v + 1) & FULL64,
            "SCMP_CMP_LT": max(v - 1, 0),
            "SCMP_CMP_GT": min(v + 1, FULL64),
            "SCMP_CMP_MASKED_EQ": two & v,
        }.get(self.op, v)

    def near(self) -> set[int]:
        """Values at, around and beyond the condition's boundary (high bits included)."""
        base = {self.value, self.two, self.satisfied_by()}
        out = {0, FULL64}
        for x in base:
            for y in (x, x - 1, x + 1, x | HIGH32, x ^ (FULL64 & ~self.value)):
                out.add(y & FULL64)
        return out


@dataclass(frozen=True, slots=True)
class OciFilter:
    """The JSON's x86_64 filter, and per syscall the argument tuples worth trying."""

    program: Program
    probes: Mapping[str, tuple[tuple[int, ...], ...]]

    @property
    def audit_arch(self) -> int:
        """The one ABI this filter is built for."""
        return ARCHES["x86_64"].audit_arch


def _ret(action: object, errno_ret: object, where: str) -> int:
    if action == "SCMP_ACT_ERRNO":
        number = _errno.EPERM if errno_ret is None else errno_ret
        if not isinstance(number, int) or isinstance(number, bool):
            raise PolicyError(f"{where}: errnoRet must be a number, got {number!r}")
        if not 0 <= number <= LIBSECCOMP_MAX_ERRNO:
            raise PolicyError(f"{where}: errnoRet {number} is out of range")
        return int(pyseccomp.ERRNO(number))
    if isinstance(action, str) and action in _FIXED:
        return int(_FIXED[action])
    raise PolicyError(f"{where}: unsupported action {action!r}")


def _cmps(raw: object, where: str) -> tuple[Cmp, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PolicyError(f"{where}: args must be a list")
    out = []
    for i, a in enumerate(raw):
        here = f"{where}: args[{i}]"
        if not isinstance(a, Mapping):
            raise PolicyError(f"{here}: must be an object")
        index, op = a.get("index"), a.get("op")
        value, two = a.get("value", 0), a.get("valueTwo", 0)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 5:
            raise PolicyError(f"{here}: index must be 0..5, got {index!r}")
        if not isinstance(op, str) or op not in _OPS:
            raise PolicyError(f"{here}: unsupported op {op!r}")
        for v in (value, two):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= FULL64:
                raise PolicyError(f"{here}: values must be 64-bit unsigned numbers, got {v!r}")
        out.append(Cmp(index, op, value, two))
    return tuple(out)


def _probes(cmps: Sequence[Cmp]) -> set[tuple[int, ...]]:
    """The entry's conditions all met, then each argument moved around its boundary."""
    met = [0] * 6
    for c in cmps:
        met[c.index] = c.satisfied_by()
    out = {tuple(met)}
    for c in cmps:
        for v in c.near():
            args = list(met)
            args[c.index] = v
            out.add(tuple(args))
    return out


def compile_oci(
    sec: Mapping[str, Any],
    applies: Any,
    *,
    source: str = "<json>",
) -> OciFilter:
    """Build the seccomp object ``sec`` for x86_64 as runc would (libseccomp).

    ``applies(entry, where)`` says whether moby's includes/excludes keep an
    entry (None) or not (a reason), as the import evaluated them.

    Raises:
        PolicyError: for an entry libseccomp refuses, naming its JSON path.
    """
    default = _ret(sec.get("defaultAction"), sec.get("defaultErrnoRet"), f"{source}: defaultAction")
    filt = pyseccomp.SyscallFilter(default)
    filt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    probes: dict[str, set[tuple[int, ...]]] = {}
    entries = sec.get("syscalls") or []
    for i, entry in enumerate(entries if isinstance(entries, list) else ()):
        where = f"{source}: syscalls[{i}]"
        if not isinstance(entry, Mapping) or applies(entry, where) is not None:
            continue
        names = entry.get("names", [entry.get("name")])
        ret = _ret(entry.get("action"), entry.get("errnoRet", sec.get("defaultErrnoRet")), where)
        cmps = _cmps(entry.get("args"), where)
        for name in names if isinstance(names, list) else ():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                continue  # libseccomp would read "read\0x" as "read": only real names
            nr = _libseccomp.resolve_name(0, name)
            if nr == -1:
                continue  # runc skips names libseccomp does not know, and so do we
            probes.setdefault(name, set()).update(_probes(cmps))
            if ret == default:
                continue  # libseccomp refuses a rule with the default action: it changes nothing
            args = [pyseccomp.Arg(c.index, _OPS[c.op], c.value, c.two) for c in cmps]
            try:
                filt.add_rule(ret, nr, *args)
            except OSError as e:
                raise PolicyError(
                    f"{where}: libseccomp refuses the rule for {name!r}: "
                    f"{_errno.errorcode.get(e.errno or 0, e.errno)}"
                ) from None
    bpf = _export(lambda fd: filt.export_bpf(_Fd(fd)))
    return OciFilter(
        Program.from_bytes(bpf), {n: tuple(sorted(p)) for n, p in sorted(probes.items())}
    )


__all__ = ["Cmp", "OciFilter", "compile_oci"]

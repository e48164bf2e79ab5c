"""Does one seccomp filter ever let a syscall run that another refuses? Judged on BPF.

Pure; no privilege (filters are compiled with libseccomp and run by the
interpreter, never loaded). ``sandbox seccomp import`` promises that the
profile it writes never allows more than the JSON, and with ``--extends``
never more than the base profile either; this module checks the promise on
the compiled filters, as ``sandbox diff`` compares two profiles: for every
syscall of every ABI both build, over zero and all-ones arguments, every
boundary value of either side's argument rules, each condition of the
JSON's entries, and i386's ``socketcall``/``ipc`` call numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sandbox.errors import ArtifactError
from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, effective
from sandbox.seccomp.argrules import FULL64
from sandbox.seccomp.bpf import Program
from sandbox.seccomp.build import compile_spec
from sandbox.seccomp.ocifilter import OciFilter
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES, table
from sandbox.verify.simulate import MULTIPLEXERS, rule_values

_RUNS = frozenset({SECCOMP_RET_ALLOW, SECCOMP_RET_LOG})


@dataclass(frozen=True, slots=True)
class Wider:
    """A syscall (with these arguments, on this ABI) that runs where the bound refuses it."""

    name: str
    arch: str
    args: tuple[int, ...]
    bound: str

    def __str__(self) -> str:
        shown = ", ".join(f"{a:#x}" for a in self.args) if any(self.args) else ""
        return f"{self.name}({shown}) on {self.arch} runs, which {self.bound} refuses"


def _probes(
    specs: Iterable[SeccompSpec], name: str, extra: Iterable[tuple[int, ...]] = ()
) -> list[tuple[int, ...]]:
    out: set[tuple[int, ...]] = {(0,) * 6, (FULL64,) * 6, *extra}
    for spec in specs:
        rule = spec.rule_for(name)
        if rule is not None:
            for v in rule_values(rule):
                out.add(tuple(v if i == rule.arg else 0 for i in range(6)))
    if name in MULTIPLEXERS:
        out |= {(call, 0, 0, 0, 0, 0) for call in range(26)}
    return sorted(out)


def _runs(prog: Program, nr: int, audit: int, args: Sequence[int]) -> bool:
    return effective(prog.evaluate(nr, audit, args)) in _RUNS


def wider_than_spec(
    final: SeccompSpec, bound: SeccompSpec, label: str, arches: Iterable[str] = ARCHES
) -> list[Wider]:
    """Where ``final``'s filter runs a syscall ``bound``'s refuses, on each ABI both build for.

    Raises:
        ArtifactError: when either cannot be built for x86_64.
    """
    out = []
    for arch in arches:
        try:
            pf = compile_spec(final, arch).program()
            pb = compile_spec(bound, arch).program()
        except ArtifactError:
            if arch == "x86_64":
                raise
            continue  # a filter that cannot be built for a foreign ABI never runs there
        audit = ARCHES[arch].audit_arch
        for nr, name in sorted(table(arch).by_nr.items()):
            for args in _probes((final, bound), name):
                if _runs(pf, nr, audit, args) and not _runs(pb, nr, audit, args):
                    out.append(Wider(name, arch, args, label))
                    break
    return out


def wider_than_oci(final: SeccompSpec, bound: OciFilter, label: str) -> list[Wider]:
    """Where ``final``'s x86_64 filter runs a syscall the JSON's own filter refuses."""
    pf = compile_spec(final, "x86_64").program()
    audit = bound.audit_arch
    out = []
    for nr, name in sorted(table("x86_64").by_nr.items()):
        for args in _probes((final,), name, bound.probes.get(name, ())):
            if _runs(pf, nr, audit, args) and not _runs(bound.program, nr, audit, args):
                out.append(Wider(name, "x86_64", args, label))
                break
    return out


__all__ = ["Wider", "wider_than_oci", "wider_than_spec"]

"""BPF simulation: run the exact bytes to be loaded against the reference model.

Runs in the supervisor before a run (and in ``sandbox verify``); pure.
The cases are derived from the policy and the tables, after runc's patchbpf
VM tests and gVisor's TestBasic:

- every syscall in the x86_64, i386 and x32 tables, with all-zero and
  all-ones arguments (two of the three ABIs must be killed as foreign), and
  i386's ``socketcall``/``ipc`` with every call number;
- for every argument rule, the rule's argument at each value, just outside it
  (each mask bit flipped, +1, -1), with the high 32 bits set and with every
  bit outside the mask set;
- unknown numbers around each table's end and the x32 boundary, and
  foreign ``AUDIT_ARCH`` values.

The expected action comes from ``seccomp.reference``, which never asks
libseccomp. Any difference is an SBX201 error naming the syscall and the ABI.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sandbox.seccomp import reference
from sandbox.seccomp.actions import describe, effective
from sandbox.seccomp.argrules import FULL64, ArgRule
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.bpf import BpfError
from sandbox.seccomp.build import artifact_key
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES, I386_MULTIPLEXED, X32_SYSCALL_BIT, table
from sandbox.verify.findings import Finding

HIGH32 = 0xFFFFFFFF00000000
FOREIGN_AUDIT_ARCHES = (0xC00000B7, 0x40000028, 0x80000016, 0, 0xFFFFFFFF)  # aarch64, arm, s390x
MULTIPLEXERS = frozenset(mux for mux, _ in I386_MULTIPLEXED.values())
_REBUILD = (
    "rebuild the artifact from the policy (sandbox verify --no-cache); if the difference "
    "stays, it is a builder or libseccomp bug: do not run with this filter"
)


@dataclass(frozen=True, slots=True)
class Case:
    """One ``seccomp_data`` to try."""

    label: str  # "ioctl on x86_64", "nr 0x40000200 on x32"
    abi: str
    audit_arch: int
    nr: int
    args: tuple[int, ...] = ()


def rule_values(rule: ArgRule) -> list[int]:
    """Argument values at, just inside and just outside a rule's boundary."""
    out = {0, FULL64, 0xFFFFFFFF, HIGH32}
    bits = [1 << b for b in range(64) if rule.mask >> b & 1]
    for v in rule.values:
        near = [v, v + 1, v - 1, v | (~rule.mask & FULL64)] + [v ^ bit for bit in bits]
        out.update(n & FULL64 for n in near)
        out.update((n | HIGH32) & FULL64 for n in near)
    return sorted(out)


def _args_at(arg: int, value: int) -> tuple[int, ...]:
    return tuple(value if i == arg else 0 for i in range(6))


def cases(spec: SeccompSpec) -> Iterator[Case]:
    """Every case the simulation runs for ``spec`` (target-independent)."""
    for abi, info in ARCHES.items():
        tab = table(abi)
        for nr, name in sorted(tab.by_nr.items()):
            yield Case(f"{name} on {abi}", abi, info.audit_arch, nr)
            yield Case(f"{name} on {abi}", abi, info.audit_arch, nr, (FULL64,) * 6)
            if abi == "i386" and name in MULTIPLEXERS:
                for call in range(26):  # every SYS_* / IPC call number and a few unused
                    yield Case(f"{name}({call}) on {abi}", abi, info.audit_arch, nr, (call,))
            rule = spec.rule_for(name)
            if rule is not None:
                for value in rule_values(rule):
                    args = _args_at(rule.arg, value)
                    yield Case(
                        f"{name}(arg{rule.arg}={value:#x}) on {abi}", abi, info.audit_arch, nr, args
                    )
        top = tab.max_nr
        unknown = {
            top + 1,
            top + 2,
            top + 64,
            info.nr_bit | 1023,
            info.nr_bit | 0x3FFFFFFF,
            X32_SYSCALL_BIT - 1,
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT | (top + 1),
            0x7FFFFFFF,
            0x80000000,
            0xFFFFFFFE,
            0xFFFFFFFF,
        }
        for nr in sorted(unknown - set(tab.by_nr)):
            yield Case(f"nr {nr:#x} on {abi}", abi, info.audit_arch, nr)
    for audit_arch in FOREIGN_AUDIT_ARCHES:
        for nr in (0, 1, 59, 0xFFFFFFFF):
            yield Case(f"nr {nr} with AUDIT_ARCH {audit_arch:#x}", "foreign", audit_arch, nr)


def _fmt_args(args: Sequence[int]) -> str:
    return "" if not any(args) else " args=[" + ", ".join(f"{a:#x}" for a in args) + "]"


def simulate(artifact: SeccompArtifact, spec: SeccompSpec) -> list[Finding]:
    """Compare the artifact's BPF with the reference model on every case.

    Returns:
        One SBX201 error per differing case (none when the filter is right),
        SBX202 when the bytes would not load, SBX203 when foreign ABIs survive,
        SBX204 when the artifact's key is not this spec's.
    """
    findings: list[Finding] = []
    if artifact.key != artifact_key(spec, artifact.arch):
        findings.append(
            Finding(
                "SBX204",
                "error",
                "seccomp",
                f"artifact {artifact.key[:12]} was built from another spec",
                "rebuild the artifact from this policy",
            )
        )
    if spec.bad_arch_action != "notify":
        findings.append(
            Finding(
                "SBX203",
                "error",
                "seccomp",
                f"bad-arch action is {spec.bad_arch_action}",
                "foreign ABIs (i386 int 0x80, x32) must go to the supervisor (USER_NOTIF), "
                "which records them and kills the run",
            )
        )
    try:
        prog = artifact.program()
    except BpfError as e:
        return [*findings, Finding("SBX202", "error", "seccomp", str(e), _REBUILD)]
    for case in cases(spec):
        got = effective(prog.evaluate(case.nr, case.audit_arch, case.args))
        want = effective(
            reference.expected(spec, artifact.arch, case.audit_arch, case.nr, case.args)
        )
        if got != want:
            message = (
                f"{case.label} (filter for {artifact.arch}, nr {case.nr:#x}"
                f"{_fmt_args(case.args)}): BPF returns {describe(got)}, "
                f"policy says {describe(want)}"
            )
            findings.append(Finding("SBX201", "error", "seccomp", message, _REBUILD))
    return findings

"""verify.simulate: the compiled bytes against the reference model, and what it catches."""

from __future__ import annotations

import dataclasses
import errno

import pytest
from seccomp_fixtures import profile_seccomp

from sandbox.policy.model import Seccomp
from sandbox.seccomp import actions as act
from sandbox.seccomp import bpf, reference
from sandbox.seccomp.build import compile_spec, prepare
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.tables import AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, table
from sandbox.verify.findings import Finding, blocking
from sandbox.verify.simulate import cases, rule_values, simulate

NR = table("x86_64").by_name
TIOCSTI = 0x5412


@pytest.mark.parametrize("name", ["strict", "interp", "compile"])
@pytest.mark.parametrize("arch", ["x86_64", "x32"])
def test_profiles_simulate_clean(name: str, arch: str) -> None:
    seccomp = profile_seccomp(name)
    assert simulate(prepare(seccomp, arch), resolve(seccomp)) == []


@pytest.mark.parametrize("action", sorted(act.ACTION_RET))
@pytest.mark.parametrize("arch", ["x86_64", "i386", "x32"])
def test_every_default_action_on_every_abi(action: str, arch: str) -> None:
    seccomp = Seccomp(
        groups=["basic_io", "process", "ipc_sysv"],
        allow=["accept", "connect"],  # i386: reachable only through socketcall
        errno={"bind": "EACCES"},
        deny=["getppid", "semop"],
        default_action=action,
    )
    spec = resolve(seccomp)
    assert simulate(compile_spec(spec, arch), spec) == []


def test_cases_cover_tables_rules_and_unknown_numbers() -> None:
    spec = resolve(profile_seccomp("strict"))
    all_cases = list(cases(spec))
    labels = {c.label for c in all_cases}
    for abi in ("x86_64", "i386", "x32"):
        assert all(f"{n} on {abi}" in labels for n in table(abi).by_name)
    ioctl = [
        c.args[1] for c in all_cases if c.label.startswith("ioctl(arg1=") and c.abi == "x86_64"
    ]
    assert {TIOCSTI, TIOCSTI | 0xFFFFFFFF00000000, TIOCSTI ^ 1, TIOCSTI + 1} <= set(ioctl)
    assert any(c.nr == X32_SYSCALL_BIT and c.abi == "x86_64" for c in all_cases)
    assert any(c.label.startswith("socketcall(3) on i386") for c in all_cases)
    assert any(c.abi == "foreign" for c in all_cases)


def test_rule_values_straddle_the_boundary() -> None:
    rule = resolve(profile_seccomp("strict")).rule_for("clone")
    assert rule is not None
    values = rule_values(rule)
    assert 0 in values and 0x10000000 in values and 0xFFFFFFFF00000000 in values


def patch_to_allow(prog: bpf.Program, victim: int) -> bytes | None:
    """Change one syscall comparison so ``victim`` takes an ALLOW path."""
    for pc, insn in enumerate(prog.insns):
        if insn.code != bpf.JMP | bpf.JEQ | bpf.K:
            continue
        insns = list(prog.insns)
        insns[pc] = dataclasses.replace(insn, k=victim)
        patched = bpf.Program(tuple(insns))
        if patched.evaluate(victim, AUDIT_ARCH_X86_64) == act.SECCOMP_RET_ALLOW:
            return bpf.encode(insns)
    return None


def test_patched_bytes_allowing_a_denied_syscall_are_caught() -> None:
    seccomp = profile_seccomp("strict")
    art = prepare(seccomp)
    patched = patch_to_allow(art.program(), NR["ptrace"])
    assert patched is not None
    bpf.Program.from_bytes(patched)  # still a program the kernel would accept
    findings = simulate(dataclasses.replace(art, bpf=patched), resolve(seccomp))
    assert findings and all(isinstance(f, Finding) for f in findings)
    assert blocking(findings) == findings
    ptrace = [f for f in findings if f.message.startswith("ptrace on x86_64")]
    assert ptrace and ptrace[0].id == "SBX201" and ptrace[0].layer == "seccomp"
    assert "BPF returns ALLOW, policy says KILL_PROCESS" in ptrace[0].message
    assert ptrace[0].fix


def test_a_filter_with_bwraps_64_bit_tiocsti_compare_is_caught() -> None:
    # CVE-2019-10063: comparing all 64 bits of ioctl's cmd lets TIOCSTI | 1 << 32
    # through, while the kernel only looks at the low 32. Build that filter and
    # simulate it against the real policy.
    spec = resolve(Seccomp(groups=["basic_io", "process"]))
    rule = spec.rule_for("ioctl")
    assert rule is not None and rule.mask == 0xFFFFFFFF
    naive = dataclasses.replace(
        spec,
        rules=tuple(
            dataclasses.replace(r, mask=0xFFFFFFFFFFFFFFFF) if r.syscall == "ioctl" else r
            for r in spec.rules
        ),
    )
    findings = simulate(compile_spec(naive), spec)
    messages = [f.message for f in findings if f.id == "SBX201"]
    assert any(m.startswith("ioctl(arg1=0xffffffff00005412) on x86_64") for m in messages)
    assert any("BPF returns ALLOW, policy says ERRNO(EPERM)" in m for m in messages)
    assert not any(m.startswith("ioctl(arg1=0x5412) on") for m in messages)  # plain TIOCSTI ok


def test_unloadable_bytes_wrong_key_and_bad_arch_action() -> None:
    seccomp = Seccomp(groups=["process"])
    spec = resolve(seccomp)
    art = prepare(seccomp)
    (bad,) = simulate(dataclasses.replace(art, bpf=art.bpf[:-8]), spec)
    assert bad.id == "SBX202" and "invalid BPF" in bad.message
    other = resolve(Seccomp(groups=["memory"]))
    assert "SBX204" in {f.id for f in simulate(art, other)}
    lenient = dataclasses.replace(spec, bad_arch_action="kill_thread")
    ids = {f.id for f in simulate(compile_spec(lenient), lenient)}
    assert "SBX203" in ids


def test_reference_model_abis() -> None:
    spec = resolve(profile_seccomp("strict"))
    kill = act.SECCOMP_RET_KILL_PROCESS
    foreign = act.SECCOMP_RET_USER_NOTIF  # to the supervisor, which records and kills
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_I386, 20) == foreign
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 39) == foreign
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, 0xFFFFFFFF) == kill  # default
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, 39) == act.SECCOMP_RET_ALLOW
    assert reference.expected(spec, "x32", AUDIT_ARCH_X86_64, 39) == foreign
    assert reference.expected(spec, "x32", AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 39) == (
        act.SECCOMP_RET_ALLOW
    )
    eperm = act.errno_ret(errno.EPERM)
    ioctl = NR["ioctl"]
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, ioctl, (0, TIOCSTI)) == eperm
    high = (0, 0xDEAD00000000 | TIOCSTI)
    assert reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, ioctl, high) == eperm
    nosock = resolve(Seccomp(groups=["process"], allow=["connect"]))
    socketcall = table("i386").by_name["socketcall"]
    allow = act.SECCOMP_RET_ALLOW
    assert reference.expected(nosock, "i386", AUDIT_ARCH_I386, socketcall, (3,)) == allow
    assert reference.expected(nosock, "i386", AUDIT_ARCH_I386, socketcall, (1,)) == kill

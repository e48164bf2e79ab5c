"""The BPF interpreter agrees with the kernel.

- Random filters compiled by libseccomp, where every refusal is an ERRNO
  with its own value (1000-4094, values no syscall returns by itself), are
  loaded in a C probe that then makes hundreds of calls; each errno the
  kernel produced must be the one the interpreter (and the reference model)
  predicts. The probed syscalls ignore or only read their arguments, so an
  ALLOW is harmless.
- Hand-written programs exercise what libseccomp never emits (ALU with X,
  scratch memory, LEN, JSET...).
- The kernel refuses exactly the programs bpf.check() refuses.
"""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest
from seccomp_kernel import requires_seccomp, run_errno_probe, try_load

from sandbox.seccomp import actions as act
from sandbox.seccomp import bpf, reference
from sandbox.seccomp.argrules import FULL64, ArgRule, Outcome
from sandbox.seccomp.bpf import ABS, ALU, JMP, LD, LDX, LEN, MEM, MISC, RET, ST, K, W, X
from sandbox.seccomp.build import compile_spec
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import AUDIT_ARCH_X86_64, table
from sandbox.verify.simulate import rule_values

pytestmark = requires_seccomp

NR = table("x86_64").by_name
PROBED = [
    "getpid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "gettid",
    "getpgrp",
    "sched_yield",
    "getpgid",
    "getsid",
    "getpriority",
    "sched_getscheduler",
    "sched_get_priority_max",
    "sched_get_priority_min",
]
NATURAL_ERRNO_BELOW = 1000


def random_rule(rng: random.Random, name: str, errnos: list[int]) -> ArgRule | None:
    mask = rng.choice(
        [FULL64, 0xFFFFFFFF, 0xFFFFFFFF00000000, 1 << rng.randrange(64), rng.getrandbits(64)]
    )
    values = tuple(sorted({rng.getrandbits(64) & mask for _ in range(rng.randint(1, 3))}))
    match: Outcome
    otherwise: Outcome
    match, otherwise = rng.sample(["allow", "default", errnos.pop(), errnos.pop()], 2)
    rule = ArgRule(name, rng.randrange(6), mask, values, match, otherwise)
    return None if rule.problems() else rule


def random_spec(rng: random.Random) -> SeccompSpec:
    errnos = rng.sample(range(NATURAL_ERRNO_BELOW, act.LIBSECCOMP_MAX_ERRNO + 1), 80)
    allow, errno_map, rules, deny = {"write", "exit_group"}, {}, [], set()
    for name in PROBED:
        kind = rng.choice(["allow", "errno", "rule", "rule", "rule", "deny", "default"])
        rule = random_rule(rng, name, errnos) if kind == "rule" else None
        if rule is not None:
            rules.append(rule)
        elif kind == "allow":
            allow.add(name)
        elif kind in ("errno", "rule"):
            errno_map[name] = errnos.pop()
        elif kind == "deny":
            deny.add(name)
    return SeccompSpec(
        default_action="errno",
        default_errno=errnos.pop(),
        allow=frozenset(allow),
        errno=tuple(sorted(errno_map.items())),
        enosys=frozenset(),
        rules=tuple(rules),
        deny=frozenset(deny),
    )


def random_cases(rng: random.Random, spec: SeccompSpec) -> list[tuple[int, ...]]:
    cases: list[tuple[int, ...]] = []
    for name in PROBED:
        cases.append((NR[name],))
        cases += [(NR[name], *(rng.getrandbits(64) for _ in range(6))) for _ in range(3)]
        rule = spec.rule_for(name)
        if rule is not None:
            for value in rule_values(rule)[:40]:
                args = [rng.getrandbits(64) for _ in range(6)]
                args[rule.arg] = value
                cases.append((NR[name], *args))
    return cases


def expected_errno(ret: int) -> int | None:
    """The errno the probe must see, or None for ALLOW (natural result)."""
    ret = act.effective(ret)
    if ret & act.SECCOMP_RET_ACTION_FULL == act.SECCOMP_RET_ERRNO:
        return ret & act.SECCOMP_RET_DATA
    assert ret == act.SECCOMP_RET_ALLOW, act.describe(ret)
    return None


@pytest.mark.parametrize("seed", range(30))
def test_random_filters_agree_with_the_kernel(probes: dict[str, Path], seed: int) -> None:
    rng = random.Random(seed)
    spec = random_spec(rng)
    art = compile_spec(spec)
    prog = art.program()
    cases = random_cases(rng, spec)
    got = run_errno_probe(probes["errno_probe"], art.bpf, cases)
    for (nr, *args), kernel in zip(cases, got, strict=True):
        interp = prog.evaluate(nr, AUDIT_ARCH_X86_64, args)
        assert interp == reference.expected(spec, "x86_64", AUDIT_ARCH_X86_64, nr, args)
        want = expected_errno(interp)
        where = f"{table('x86_64').name(nr)} args={[hex(a) for a in args]}"
        if want is None:
            assert kernel < NATURAL_ERRNO_BELOW, where
        else:
            assert kernel == want, where


def _program(body: list[bpf.Insn]) -> bytes:
    """write/exit_group allowed; otherwise A = body(data); return ERRNO(A & 0xfff)."""
    head = [
        bpf.stmt(LD | W | ABS, 0),
        bpf.jump(JMP | bpf.JEQ | K, NR["write"], len(body) + 4, 0),
        bpf.jump(JMP | bpf.JEQ | K, NR["exit_group"], len(body) + 3, 0),
    ]
    tail = [
        bpf.stmt(ALU | bpf.AND | K, 0xFFF),
        bpf.stmt(ALU | bpf.OR | K, act.SECCOMP_RET_ERRNO),
        bpf.stmt(RET | bpf.RET_A),
        bpf.stmt(RET | K, act.SECCOMP_RET_ALLOW),
    ]
    return bpf.encode(head + body + tail)


A0, A0HI, A1 = 16, 20, 24
LOAD_A0_X_A1 = [bpf.stmt(LD | W | ABS, A1), bpf.stmt(MISC | bpf.TAX), bpf.stmt(LD | W | ABS, A0)]
PROGRAMS = {
    **{
        f"alu {name} x": [*LOAD_A0_X_A1, bpf.stmt(ALU | op | X)]
        for name, op in [
            ("add", bpf.ADD),
            ("sub", bpf.SUB),
            ("mul", bpf.MUL),
            ("div", bpf.DIV),
            ("and", bpf.AND),
            ("or", bpf.OR),
            ("xor", bpf.XOR),
            ("lsh", bpf.LSH),
            ("rsh", bpf.RSH),
        ]
    },
    **{
        f"alu {name} k": [bpf.stmt(LD | W | ABS, A0), bpf.stmt(ALU | op | K, k)]
        for name, op, k in [
            ("add", bpf.ADD, 0xFFFFFFF0),
            ("mul", bpf.MUL, 0x10001),
            ("div", bpf.DIV, 7),
            ("lsh", bpf.LSH, 31),
            ("rsh", bpf.RSH, 9),
        ]
    },
    "neg": [bpf.stmt(LD | W | ABS, A0), bpf.stmt(ALU | bpf.NEG)],
    "high word, txa": [
        bpf.stmt(LD | W | ABS, A0HI),
        bpf.stmt(MISC | bpf.TAX),
        bpf.stmt(MISC | bpf.TXA),
    ],
    "scratch memory": [
        bpf.stmt(LD | W | ABS, A0),
        bpf.stmt(ST, 5),
        bpf.stmt(LDX | bpf.IMM, 3),
        bpf.stmt(bpf.STX, 6),
        bpf.stmt(LD | MEM, 6),
        bpf.stmt(ALU | bpf.ADD | K, 1),
        bpf.stmt(LDX | MEM, 5),
        bpf.stmt(ALU | bpf.XOR | X),
    ],
    "len": [bpf.stmt(LD | W | LEN), bpf.stmt(LDX | W | LEN), bpf.stmt(ALU | bpf.ADD | X)],
    **{
        f"{name} x": [
            *LOAD_A0_X_A1,
            bpf.jump(JMP | op | X, 0, 0, 2),
            bpf.stmt(LD | bpf.IMM, 111),
            bpf.stmt(JMP | bpf.JA, 1),
            bpf.stmt(LD | bpf.IMM, 222),
        ]
        for name, op in [("jgt", bpf.JGT), ("jge", bpf.JGE), ("jset", bpf.JSET), ("jeq", bpf.JEQ)]
    },
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_handwritten_programs_agree_with_the_kernel(probes: dict[str, Path], name: str) -> None:
    rng = random.Random(name)
    prog = bpf.Program.from_bytes(_program(PROGRAMS[name]))
    values = [0, 1, 2, 31, 32, 33, 0xFFFFFFFF, 0x80000000, 0x12345678]
    cases = [(NR["getpid"], a, b) for a in values for b in values]
    cases += [(NR["getpid"], rng.getrandbits(64), rng.getrandbits(64)) for _ in range(100)]
    if "div x" in name:  # classic BPF: division by zero X returns 0 = KILL_THREAD
        cases = [c for c in cases if c[2] & 0xFFFFFFFF]
    got = run_errno_probe(probes["errno_probe"], bpf.encode(prog.insns), cases)
    for (nr, *args), kernel in zip(cases, got, strict=True):
        want = expected_errno(prog.evaluate(nr, AUDIT_ARCH_X86_64, args))
        assert kernel == (want or 0), (name, [hex(a) for a in args])


KERNEL_REFUSES = {
    "MOD": [bpf.stmt(ALU | bpf.MOD | K, 3), bpf.stmt(RET | K, 0)],
    "halfword load": [bpf.stmt(LD | bpf.H | ABS, 0), bpf.stmt(RET | K, 0)],
    "RET X": [bpf.stmt(RET | X)],
    "unaligned load": [bpf.stmt(LD | W | ABS, 2), bpf.stmt(RET | K, 0)],
    "load past seccomp_data": [bpf.stmt(LD | W | ABS, 64), bpf.stmt(RET | K, 0)],
    "jump past the end": [bpf.jump(JMP | bpf.JEQ | K, 0, 0, 1), bpf.stmt(RET | K, 0)],
    "no final return": [bpf.stmt(RET | K, 0), bpf.stmt(LD | W | ABS, 0)],
    "division by constant zero": [bpf.stmt(ALU | bpf.DIV | K, 0), bpf.stmt(RET | K, 0)],
    "shift by 32": [bpf.stmt(ALU | bpf.LSH | K, 32), bpf.stmt(RET | K, 0)],
    "scratch index 16": [bpf.stmt(ST, 16), bpf.stmt(RET | K, 0)],
    "load before store": [bpf.stmt(LD | MEM, 0), bpf.stmt(RET | K, 0)],
    "store on one path only": [
        bpf.stmt(LD | W | ABS, 0),
        bpf.jump(JMP | bpf.JEQ | K, 0, 0, 1),
        bpf.stmt(ST, 0),
        bpf.stmt(LD | MEM, 0),
        bpf.stmt(RET | bpf.RET_A),
    ],
    "too long": [bpf.stmt(RET | K, act.SECCOMP_RET_ALLOW)] * (bpf.BPF_MAXINSNS + 1),
}


@pytest.mark.parametrize("name", sorted(KERNEL_REFUSES))
def test_kernel_refuses_what_check_refuses(name: str) -> None:
    raw = bpf.encode(KERNEL_REFUSES[name])
    with pytest.raises(bpf.BpfError):
        bpf.Program.from_bytes(raw)
    assert try_load(raw) == errno.EINVAL


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_kernel_accepts_what_check_accepts(name: str) -> None:
    raw = _program(PROGRAMS[name])
    bpf.Program.from_bytes(raw)
    assert try_load(raw) == 0

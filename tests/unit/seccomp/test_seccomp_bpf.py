"""Classic-BPF decoder, checks and interpreter: table specs in the style of gVisor's TestBasic."""

from __future__ import annotations

import struct

import pytest

from sandbox.seccomp import actions as act
from sandbox.seccomp import bpf
from sandbox.seccomp.bpf import (
    ABS,
    ADD,
    ALU,
    AND,
    DIV,
    JA,
    JEQ,
    JGE,
    JGT,
    JMP,
    JSET,
    LD,
    LDX,
    LEN,
    LSH,
    MEM,
    MISC,
    MOD,
    MUL,
    NEG,
    OR,
    RET,
    RET_A,
    RSH,
    ST,
    STX,
    SUB,
    TAX,
    TXA,
    XOR,
    BpfError,
    H,
    Insn,
    K,
    Program,
    W,
    X,
    jump,
    stmt,
)
from sandbox.seccomp.tables import AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, table

ALLOW, KILL = act.SECCOMP_RET_ALLOW, act.SECCOMP_RET_KILL_PROCESS
ERRNO = act.errno_ret
NR, ARCH = 0, 4


def arg_lo(n: int) -> int:
    return 16 + 8 * n


def arg_hi(n: int) -> int:
    return 20 + 8 * n


RET_A_INSN = stmt(RET | RET_A)

# name -> (program, [(nr, arch, args, expected)])
SPECS: dict[str, tuple[list[Insn], list[tuple[int, int, tuple[int, ...], int]]]] = {
    "single return": ([stmt(RET | K, ALLOW)], [(0, 0, (), ALLOW), (999, 1, (5,), ALLOW)]),
    "arch then nr": (
        [
            stmt(LD | W | ABS, ARCH),
            jump(JMP | JEQ | K, AUDIT_ARCH_X86_64, 0, 4),
            stmt(LD | W | ABS, NR),
            jump(JMP | JEQ | K, 39, 0, 1),
            stmt(RET | K, ALLOW),
            stmt(RET | K, ERRNO(1)),
            stmt(RET | K, KILL),
        ],
        [
            (39, AUDIT_ARCH_X86_64, (), ALLOW),
            (40, AUDIT_ARCH_X86_64, (), ERRNO(1)),
            (39, AUDIT_ARCH_I386, (), KILL),
        ],
    ),
    "64-bit compare of args[1] (TIOCSTI with high bits)": (
        [
            stmt(LD | W | ABS, arg_hi(1)),
            jump(JMP | JEQ | K, 0, 0, 3),
            stmt(LD | W | ABS, arg_lo(1)),
            jump(JMP | JEQ | K, 0x5412, 0, 1),
            stmt(RET | K, ERRNO(1)),
            stmt(RET | K, ALLOW),
        ],
        [
            (16, 0, (0, 0x5412), ERRNO(1)),
            (16, 0, (0, 0x1_0000_5412), ALLOW),  # what a 64-bit EQ lets through
            (16, 0, (0, 0x5413), ALLOW),
        ],
    ),
    "nr is stored as a signed int, read as u32": (
        [
            stmt(LD | W | ABS, NR),
            jump(JMP | JEQ | K, 0xFFFFFFFF, 0, 1),
            stmt(RET | K, 1),
            stmt(RET | K, 2),
        ],
        [(-1, 0, (), 1), (0xFFFFFFFF, 0, (), 1), (0, 0, (), 2)],
    ),
    "ALU with K": (
        [
            stmt(LD | W | ABS, arg_lo(0)),
            stmt(ALU | ADD | K, 3),
            stmt(ALU | MUL | K, 5),
            stmt(ALU | SUB | K, 1),
            stmt(ALU | DIV | K, 2),
            stmt(ALU | OR | K, 0x100),
            stmt(ALU | AND | K, 0x1FF),
            stmt(ALU | XOR | K, 0x3),
            stmt(ALU | LSH | K, 4),
            stmt(ALU | RSH | K, 2),
            RET_A_INSN,
        ],
        [(0, 0, (1,), (((((1 + 3) * 5 - 1) // 2) | 0x100) & 0x1FF ^ 3) << 4 >> 2)],
    ),
    "ALU wraps at 32 bits and NEG": (
        [stmt(LD | W | ABS, arg_lo(0)), stmt(ALU | ADD | K, 2), stmt(ALU | NEG), RET_A_INSN],
        [(0, 0, (0xFFFFFFFF,), 0xFFFFFFFF), (0, 0, (0,), 0xFFFFFFFE)],
    ),
    "ALU with X, TAX/TXA": (
        [
            stmt(LD | W | ABS, arg_lo(1)),
            stmt(MISC | TAX),
            stmt(LD | W | ABS, arg_lo(0)),
            stmt(ALU | SUB | X),
            stmt(ALU | LSH | X),  # shift by X uses X & 31
            stmt(MISC | TXA),
            RET_A_INSN,
        ],
        [(0, 0, (10, 33), 33)],
    ),
    "shift by X uses the low five bits": (
        [
            stmt(LD | W | ABS, arg_lo(1)),
            stmt(MISC | TAX),
            stmt(LD | W | ABS, arg_lo(0)),
            stmt(ALU | LSH | X),
            RET_A_INSN,
        ],
        [(0, 0, (1, 33), 2), (0, 0, (1, 31), 0x80000000)],
    ),
    "division by zero X returns 0": (
        [
            stmt(LDX | bpf.IMM, 0),
            stmt(LD | bpf.IMM, 7),
            stmt(ALU | DIV | X),
            stmt(RET | K, ALLOW),
        ],
        [(0, 0, (), 0)],
    ),
    "scratch memory and LEN": (
        [
            stmt(LD | W | LEN),
            stmt(ST, 3),
            stmt(LDX | W | LEN),
            stmt(STX, 4),
            stmt(LD | MEM, 3),
            stmt(LDX | MEM, 4),
            stmt(ALU | ADD | X),
            RET_A_INSN,
        ],
        [(0, 0, (), 128)],
    ),
    "JGT/JGE/JSET with K and X, and JA": (
        [
            stmt(LD | W | ABS, arg_lo(0)),
            jump(JMP | JGT | K, 10, 0, 6),
            jump(JMP | JGE | K, 20, 0, 3),
            jump(JMP | JSET | K, 1, 0, 1),
            stmt(RET | K, 1),  # >= 20 and odd
            stmt(JMP | JA, 1),
            stmt(RET | K, 2),  # (10, 20)
            stmt(RET | K, 3),  # >= 20 and even, via JA
            stmt(LDX | bpf.IMM, 5),
            jump(JMP | JGE | X, 0, 0, 1),
            stmt(RET | K, 4),  # <= 10 and >= 5
            stmt(RET | K, 5),
        ],
        [
            (0, 0, (21,), 1),
            (0, 0, (22,), 3),
            (0, 0, (15,), 2),
            (0, 0, (7,), 4),
            (0, 0, (3,), 5),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec(name: str) -> None:
    insns, cases = SPECS[name]
    prog = Program.from_bytes(bpf.encode(insns))
    for nr, arch, args, want in cases:
        assert prog.evaluate(nr, arch, args) == want, (name, nr, arch, args)


def test_instruction_pointer() -> None:
    lo = Program.from_bytes(bpf.encode([stmt(LD | W | ABS, 8), RET_A_INSN]))
    hi = Program.from_bytes(bpf.encode([stmt(LD | W | ABS, 12), RET_A_INSN]))
    assert lo.evaluate(0, 0, (), ip=0x1234_5678_9ABC_DEF0) == 0x9ABC_DEF0
    assert hi.evaluate(0, 0, (), ip=0x1234_5678_9ABC_DEF0) == 0x1234_5678


def test_pack_layout() -> None:
    data = bpf.pack_seccomp_data(-1, AUDIT_ARCH_X86_64, (1, 2 << 32), ip=7)
    assert len(data) == 64
    assert struct.unpack_from("<iIQ", data) == (-1, AUDIT_ARCH_X86_64, 7)
    assert struct.unpack_from("<6Q", data, 16) == (1, 2 << 32, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        bpf.pack_seccomp_data(0, 0, (0,) * 7)


def test_encode_decode_round_trip() -> None:
    insns = SPECS["JGT/JGE/JSET with K and X, and JA"][0]
    assert list(bpf.decode(bpf.encode(insns))) == insns


REJECTED = {
    "empty": [],
    "too long": [stmt(RET | K, 0)] * (bpf.BPF_MAXINSNS + 1),
    "MOD is not allowed": [stmt(ALU | MOD | K, 3), stmt(RET | K, 0)],
    "halfword loads are not allowed": [stmt(LD | H | ABS, 0), stmt(RET | K, 0)],
    "RET X is not allowed": [stmt(RET | X)],
    "unaligned load": [stmt(LD | W | ABS, 2), stmt(RET | K, 0)],
    "load past seccomp_data": [stmt(LD | W | ABS, 64), stmt(RET | K, 0)],
    "jump past the end": [jump(JMP | JEQ | K, 0, 0, 1), stmt(RET | K, 0)],
    "JA past the end": [stmt(JMP | JA, 1), stmt(RET | K, 0)],
    "no final return": [stmt(RET | K, 0), stmt(LD | W | ABS, 0)],
    "division by constant zero": [stmt(ALU | DIV | K, 0), stmt(RET | K, 0)],
    "shift by 32": [stmt(ALU | LSH | K, 32), stmt(RET | K, 0)],
    "scratch index 16": [stmt(ST, 16), stmt(RET | K, 0)],
    "load before store": [stmt(LD | MEM, 0), stmt(RET | K, 0)],
    "store on one path only": [
        stmt(LD | W | ABS, 0),
        jump(JMP | JEQ | K, 0, 0, 1),
        stmt(ST, 0),
        stmt(LD | MEM, 0),
        stmt(RET | RET_A),
    ],
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_check_rejects(name: str) -> None:
    with pytest.raises(BpfError):
        Program.from_bytes(bpf.encode(REJECTED[name]))


def test_decode_rejects_partial_instruction() -> None:
    with pytest.raises(BpfError, match="whole number"):
        bpf.decode(b"\x06\x00\x00\x00\x00\x00\xff")


def test_store_on_every_path_is_accepted() -> None:
    insns = [
        stmt(LD | W | ABS, 0),
        stmt(ST, 0),
        jump(JMP | JEQ | K, 0, 0, 1),
        stmt(ST, 1),
        stmt(LD | MEM, 0),
        stmt(RET | RET_A),
    ]
    assert Program.from_bytes(bpf.encode(insns)).evaluate(9, 0) == 9


def test_disassemble_names_fields_syscalls_and_actions() -> None:
    insns = SPECS["arch then nr"][0]
    text = bpf.disassemble(Program(tuple(insns)), table("x86_64"))
    assert "; arch" in text
    assert "; nr" in text
    assert "; getpid" in text
    assert "ERRNO(EPERM)" in text
    assert "KILL_PROCESS" in text
    assert len(text.splitlines()) == len(insns)


def test_actions_effective_and_describe() -> None:
    assert act.effective(act.SECCOMP_RET_ERRNO | 0xFFFF) == act.SECCOMP_RET_ERRNO | 4095
    assert act.effective(0x12340000) == KILL  # unknown actions kill the process
    assert act.describe(ERRNO(38)) == "ERRNO(ENOSYS)"
    assert act.describe(act.SECCOMP_RET_USER_NOTIF) == "USER_NOTIF"
    assert act.action_ret("errno", 13) == ERRNO(13)
    assert act.errno_number("EPERM") == 1
    assert act.errno_number("EWHATEVER") is None

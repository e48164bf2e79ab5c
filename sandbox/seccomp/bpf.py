"""Classic BPF for seccomp: decoder, kernel-equivalent checks, interpreter, disassembler.

Pure Python, used in the supervisor by ``verify.simulate``, by ``sandbox
explain`` and by the tests. It runs the *exact bytes* the child will hand to
``seccomp(SECCOMP_SET_MODE_FILTER)`` over a packed 64-byte ``struct
seccomp_data``, so what it answers is what the kernel will do.

Semantics follow the kernel (net/core/filter.c ``bpf_check_classic`` and
``bpf_convert_filter``, kernel/seccomp.c ``seccomp_check_filter``): only the
instructions seccomp accepts, 32-bit unsigned arithmetic, forward jumps,
division by a zero X returns 0, shifts by X use the low five bits, loads from
scratch memory must follow a store on every path. The tests compare this
interpreter with the real kernel on random filters.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sandbox.errors import ArtifactError
from sandbox.seccomp.actions import describe
from sandbox.seccomp.tables import SyscallTable

# Classes, sizes, modes, operations (linux/bpf_common.h).
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00,
    0x10,
    0x20,
    0x30,
    0x40,
    0x50,
    0x60,
    0x70,
    0x80,
    0x90,
    0xA0,
)
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
K, X = 0x00, 0x08
RET_A = 0x10
TAX, TXA = 0x00, 0x80

SECCOMP_DATA_SIZE = 64
BPF_MAXINSNS = 4096
MEMWORDS = 16
_U32 = 0xFFFFFFFF
_INSN = struct.Struct("<HBBI")
_DATA = struct.Struct("<iIQ6Q")

_ALU_OPS = (ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, XOR)
_JCOND = (JEQ, JGT, JGE, JSET)
# Opcodes seccomp_check_filter() accepts once the classic checks pass.
SECCOMP_OPCODES = frozenset(
    {LD | W | ABS, LD | W | LEN, LDX | W | LEN, RET | K, RET | RET_A, ALU | NEG}
    | {ALU | op | src for op in _ALU_OPS for src in (K, X)}
    | {LD | IMM, LDX | IMM, MISC | TAX, MISC | TXA, LD | MEM, LDX | MEM, ST, STX, JMP | JA}
    | {JMP | op | src for op in _JCOND for src in (K, X)}
)


class BpfError(ArtifactError):
    """The program would be refused by the kernel (EINVAL) or cannot be decoded."""

    def __init__(self, message: str, pc: int | None = None) -> None:
        where = f" at instruction {pc}" if pc is not None else ""
        super().__init__("seccomp", f"invalid BPF{where}: {message}")
        self.pc = pc


@dataclass(frozen=True, slots=True)
class Insn:
    """One ``struct sock_filter``."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0


def stmt(code: int, k: int = 0) -> Insn:
    """``BPF_STMT(code, k)``."""
    return Insn(code, 0, 0, k & _U32)


def jump(code: int, k: int, jt: int, jf: int) -> Insn:
    """``BPF_JUMP(code, k, jt, jf)``."""
    return Insn(code, jt, jf, k & _U32)


def encode(insns: Iterable[Insn]) -> bytes:
    """The sock_filter array in host (little-endian x86) byte order."""
    return b"".join(_INSN.pack(i.code, i.jt, i.jf, i.k) for i in insns)


def decode(bpf: bytes) -> tuple[Insn, ...]:
    """Split raw bytes into instructions (no semantic checks).

    Raises:
        BpfError: when the length is not a multiple of 8.
    """
    if len(bpf) % _INSN.size:
        raise BpfError(f"{len(bpf)} bytes is not a whole number of instructions")
    return tuple(Insn(*_INSN.unpack_from(bpf, off)) for off in range(0, len(bpf), _INSN.size))


def pack_seccomp_data(nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> bytes:
    """``struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6];}``."""
    full = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (6 - len(args))
    if len(full) != 6:
        raise ValueError("a syscall has at most 6 arguments")
    nr &= _U32
    signed_nr = nr - (1 << 32) if nr & 0x80000000 else nr  # seccomp_data.nr is an int
    return _DATA.pack(signed_nr, arch & _U32, ip & 0xFFFFFFFFFFFFFFFF, *full)


def check(insns: Sequence[Insn]) -> None:
    """Reject what the kernel rejects when the filter is attached.

    Raises:
        BpfError: naming the first offending instruction.
    """
    n = len(insns)
    if not 0 < n <= BPF_MAXINSNS:
        raise BpfError(f"{n} instructions (allowed: 1..{BPF_MAXINSNS})")
    for pc, i in enumerate(insns):
        cls = i.code & 0x07
        if i.code not in SECCOMP_OPCODES:
            raise BpfError(f"opcode {i.code:#06x} is not allowed in seccomp filters", pc)
        if i.code == LD | W | ABS and (i.k >= SECCOMP_DATA_SIZE or i.k & 3):
            raise BpfError(f"load from offset {i.k} outside seccomp_data or unaligned", pc)
        if i.code in (LD | MEM, LDX | MEM, ST, STX) and i.k >= MEMWORDS:
            raise BpfError(f"scratch memory index {i.k} >= {MEMWORDS}", pc)
        if cls == ALU and i.code & 0x08 == K:
            op = i.code & 0xF0
            if op == DIV and i.k == 0:
                raise BpfError("division by constant zero", pc)
            if op in (LSH, RSH) and i.k >= 32:
                raise BpfError(f"shift by {i.k}", pc)
        if cls == JMP:
            targets = (i.k,) if i.code == JMP | JA else (i.jt, i.jf)
            if any(pc + 1 + t >= n for t in targets):
                raise BpfError("jump out of the program", pc)
    if insns[-1].code & 0x07 != RET:
        raise BpfError("the last instruction is not a return", n - 1)
    _check_memory(insns)


def _check_memory(insns: Sequence[Insn]) -> None:
    """Every scratch load must follow a store on every path (``check_load_and_stores``)."""
    everything = (1 << MEMWORDS) - 1
    masks = [everything] * len(insns)
    valid = 0
    for pc, i in enumerate(insns):
        valid &= masks[pc]
        if i.code in (ST, STX):
            valid |= 1 << i.k
        elif i.code in (LD | MEM, LDX | MEM):
            if not valid & (1 << i.k):
                raise BpfError(f"load from scratch word {i.k} before any store", pc)
        elif i.code == JMP | JA:
            masks[pc + 1 + i.k] &= valid
            valid = everything
        elif i.code & 0x07 == JMP:
            masks[pc + 1 + i.jt] &= valid
            masks[pc + 1 + i.jf] &= valid
            valid = everything


@dataclass(frozen=True, slots=True)
class Program:
    """A checked seccomp program, ready to run."""

    insns: tuple[Insn, ...]

    @classmethod
    def from_bytes(cls, bpf: bytes) -> Program:
        """Decode and check.

        Raises:
            BpfError: for bytes the kernel would refuse.
        """
        insns = decode(bpf)
        check(insns)
        return cls(insns)

    def __len__(self) -> int:
        return len(self.insns)

    def run(self, data: bytes) -> int:
        """Run over a packed seccomp_data; return the 32-bit filter result."""
        if len(data) != SECCOMP_DATA_SIZE:
            raise ValueError("seccomp_data is 64 bytes")
        words = struct.unpack("<16I", data)
        insns = self.insns
        a = x = 0
        mem = [0] * MEMWORDS
        pc = 0
        while True:
            i = insns[pc]
            code = i.code
            pc += 1
            if code == LD | W | ABS:
                a = words[i.k >> 2]
            elif code & 0x07 == JMP:
                if code == JMP | JA:
                    pc += i.k
                    continue
                rhs = x if code & X else i.k
                op = code & 0xF0
                if op == JEQ:
                    taken = a == rhs
                elif op == JGT:
                    taken = a > rhs
                elif op == JGE:
                    taken = a >= rhs
                else:
                    taken = bool(a & rhs)
                pc += i.jt if taken else i.jf
            elif code == RET | K:
                return i.k
            elif code == RET | RET_A:
                return a
            elif code & 0x07 == ALU:
                if code == ALU | NEG:
                    a = -a & _U32
                    continue
                rhs = x if code & X else i.k
                op = code & 0xF0
                if op == DIV and rhs == 0:
                    return 0  # classic BPF: division by zero X ends the program with 0
                a = _alu(op, a, rhs)
            elif code in (LD | IMM, LD | W | LEN):
                a = SECCOMP_DATA_SIZE if code == LD | W | LEN else i.k
            elif code in (LDX | IMM, LDX | W | LEN):
                x = SECCOMP_DATA_SIZE if code == LDX | W | LEN else i.k
            elif code == LD | MEM:
                a = mem[i.k]
            elif code == LDX | MEM:
                x = mem[i.k]
            elif code == ST:
                mem[i.k] = a
            elif code == STX:
                mem[i.k] = x
            elif code == MISC | TAX:
                x = a
            elif code == MISC | TXA:
                a = x
            else:  # pragma: no cover - check() rejected it
                raise BpfError(f"opcode {code:#06x}", pc - 1)

    def evaluate(self, nr: int, arch: int, args: Sequence[int] = (), ip: int = 0) -> int:
        """Filter result for one syscall, as the kernel would compute it."""
        return self.run(pack_seccomp_data(nr, arch, args, ip))


def _alu(op: int, a: int, b: int) -> int:
    if op == ADD:
        return (a + b) & _U32
    if op == SUB:
        return (a - b) & _U32
    if op == MUL:
        return (a * b) & _U32
    if op == DIV:
        return a // b
    if op == OR:
        return a | b
    if op == AND:
        return a & b
    if op == XOR:
        return a ^ b
    if op == LSH:
        return (a << (b & 31)) & _U32
    return a >> (b & 31)  # RSH


_FIELDS = {0: "nr", 4: "arch", 8: "ip.lo32", 12: "ip.hi32"} | {
    16 + 8 * n + half: f"args[{n}].{'hi32' if half else 'lo32'}"
    for n in range(6)
    for half in (0, 4)
}
_MNEMONIC = {
    ADD: "add",
    SUB: "sub",
    MUL: "mul",
    DIV: "div",
    OR: "or",
    AND: "and",
    LSH: "lsh",
    RSH: "rsh",
    XOR: "xor",
    MOD: "mod",
}
_JNAME = {JEQ: "jeq", JGT: "jgt", JGE: "jge", JSET: "jset"}


def disassemble(prog: Program | Sequence[Insn], table: SyscallTable | None = None) -> str:
    """One line per instruction, with seccomp_data fields, syscall names and actions.

    With ``table``, comparisons right after a load of ``nr`` name the syscall.
    """
    insns = prog.insns if isinstance(prog, Program) else tuple(prog)
    lines = []
    loaded = ""
    for pc, i in enumerate(insns):
        cls, op = i.code & 0x07, i.code & 0xF0
        note = ""
        if i.code == LD | W | ABS:
            loaded = _FIELDS.get(i.k, str(i.k))
            text = f"ld [{i.k}]"
            note = loaded
        elif cls == JMP and i.code != JMP | JA:
            rhs = "x" if i.code & X else f"#{i.k:#x}"
            text = f"{_JNAME.get(op, '?')} {rhs}, {pc + 1 + i.jt}, {pc + 1 + i.jf}"
            if loaded == "nr" and table is not None and i.code == JMP | JEQ | K:
                note = table.name(i.k) or ""
        elif i.code == JMP | JA:
            text = f"ja {pc + 1 + i.k}"
        elif i.code == RET | K:
            text, note = f"ret #{i.k:#x}", describe(i.k)
        elif i.code == RET | RET_A:
            text = "ret a"
        elif cls == ALU:
            rhs = "x" if i.code & X else f"#{i.k:#x}"
            text = "neg" if op == NEG else f"{_MNEMONIC.get(op, '?')} {rhs}"
        elif cls in (LD, LDX):
            operand = {IMM: f"#{i.k:#x}", MEM: f"M[{i.k}]", LEN: "#len"}.get(i.code & 0xE0, "?")
            text = f"{'ld' if cls == LD else 'ldx'} {operand}"
        elif cls in (ST, STX):
            text = f"{'st' if cls == ST else 'stx'} M[{i.k}]"
        else:
            text = {MISC | TAX: "tax", MISC | TXA: "txa"}.get(i.code, f".word {i.code:#06x}")
        lines.append(f"{pc:04d}: {text:<28}" + (f"; {note}" if note else ""))
    return "\n".join(line.rstrip() for line in lines)

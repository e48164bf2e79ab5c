"""The v2 device program, run in a small eBPF interpreter against the reference model."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.cgroups import bpfdev
from sandbox.cgroups.model import DEFAULT_DEVICES, DEVICES_TTY, DeviceRule

M64 = (1 << 64) - 1


def run(prog: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Interpret the subset of eBPF that bpfdev emits; checks what the verifier would."""
    assert len(prog) % 8 == 0 and len(prog) // 8 <= 4096
    insns = [struct.unpack_from("<BBhi", prog, i) for i in range(0, len(prog), 8)]
    ctx = struct.pack(
        "<III", bpfdev.access_mask(access) << 16 | {"b": 1, "c": 2}[kind], major, minor
    )
    regs, pc, steps = [0] * 11, 0, 0
    while True:
        code, regbyte, off, imm = insns[pc]
        dst, src = regbyte & 0xF, regbyte >> 4
        pc, steps = pc + 1, steps + 1
        assert steps <= len(insns)  # straight line: no loops
        if code == bpfdev.LDX_MEM_W:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == bpfdev.ALU64_AND_K:
            regs[dst] &= imm & M64
        elif code == bpfdev.ALU64_RSH_K:
            regs[dst] >>= imm
        elif code == bpfdev.ALU64_MOV_K:
            regs[dst] = imm & M64
        elif code == bpfdev.ALU64_MOV_X:
            regs[dst] = regs[src]
        elif code == bpfdev.JMP_JNE_K:
            assert off >= 0
            if regs[dst] != imm & M64:
                pc += off
        elif code == bpfdev.JMP_EXIT:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        assert 0 <= pc < len(insns)


numbers = st.one_of(st.none(), st.integers(0, 300))
accesses = st.sets(st.sampled_from("rwm"), min_size=1).map(lambda s: "".join(sorted(s)))
rules = st.builds(DeviceRule, st.sampled_from("abc"), numbers, numbers, accesses)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # also runs under TCG
@given(
    st.lists(rules, max_size=6),
    st.sampled_from("bc"),
    st.integers(0, 300),
    st.integers(0, 300),
    accesses,
)
def test_program_agrees_with_reference_model(rs, kind, major, minor, access):
    assert run(bpfdev.build(rs), kind, major, minor, access) == int(
        bpfdev.allows(rs, kind, major, minor, access)
    )


def test_default_list_allows_the_minimal_dev_only():
    prog = bpfdev.build(DEFAULT_DEVICES)
    for minor in (3, 5, 7, 8, 9):  # null zero full random urandom
        assert run(prog, "c", 1, minor, "rw") == 1
        assert run(prog, "c", 1, minor, "m") == 0  # no mknod
    assert run(prog, "c", 1, 1, "r") == 0  # /dev/mem
    assert run(prog, "b", 7, 0, "r") == 0  # loop0
    assert run(prog, "c", 5, 0, "rw") == 0  # tty is not in the default list
    assert run(bpfdev.build(DEFAULT_DEVICES + DEVICES_TTY), "c", 136, 4, "rw") == 1


def test_empty_list_denies_everything_and_all_allows_everything():
    assert run(bpfdev.build([]), "c", 1, 3, "r") == 0
    assert run(bpfdev.build([DeviceRule("a", access="rwm")]), "b", 8, 0, "rwm") == 1


def test_instruction_encoding():
    assert bpfdev.insn(bpfdev.LDX_MEM_W, 2, 1, 4) == bytes([0x61, 0x12, 4, 0, 0, 0, 0, 0])
    assert bpfdev.insn(bpfdev.JMP_EXIT) == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])

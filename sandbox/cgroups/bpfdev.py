"""cgroup v2 device control: an eBPF program built by hand from the allow-list.

cgroup v2 has no ``devices.allow``; the kernel instead runs every
``BPF_PROG_TYPE_CGROUP_DEVICE`` program attached to the task's cgroup (and,
with ``BPF_F_ALLOW_MULTI``, its ancestors') on each open/mknod of a device
node, and refuses with EPERM unless all return 1. The program is assembled
here from :class:`~sandbox.cgroups.model.DeviceRule` s, without clang or
libbpf, as runc's ``libcontainer/cgroups/devices/devicefilter`` does. Pure:
building needs no privileges; loading and attaching are
``CgroupIO.attach_device_program`` (``CAP_SYS_ADMIN``).

The context (``struct bpf_cgroup_dev_ctx``, include/uapi/linux/bpf.h) is
three u32: ``access_type = access << 16 | type``, ``major``, ``minor``;
type 1 is block, 2 char; access bits are mknod 1, read 2, write 4.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from sandbox.cgroups.model import DeviceRule

DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
_ACC = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
_KIND = {"b": DEV_BLOCK, "c": DEV_CHAR}

# Opcodes (include/uapi/linux/bpf_common.h + bpf.h): class | op | source.
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W
ALU64_AND_K = 0x57
ALU64_RSH_K = 0x77
ALU64_MOV_K = 0xB7
ALU64_MOV_X = 0xBF
JMP_JNE_K = 0x55
JMP_EXIT = 0x95


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """Encode one ``struct bpf_insn`` (little-endian, 8 bytes)."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def access_mask(access: str) -> int:
    """``"rw"`` -> ``ACC_READ | ACC_WRITE``."""
    mask = 0
    for ch in access:
        mask |= _ACC[ch]
    return mask


def _rule_block(rule: DeviceRule) -> list[tuple[int, int, int, int, int | None]]:
    """The instructions of one rule; ``None`` as the offset means "jump to the next rule"."""
    out: list[tuple[int, int, int, int, int | None]] = []
    if rule.kind != "a":
        out.append((JMP_JNE_K, 2, 0, _KIND[rule.kind], None))
    denied = 7 & ~access_mask(rule.access)
    if denied:
        # Any requested access bit outside the rule's set -> this rule does not match.
        out += [
            (ALU64_MOV_X, 1, 3, 0, 0),
            (ALU64_AND_K, 1, 0, denied, 0),
            (JMP_JNE_K, 1, 0, 0, None),
        ]
    if rule.kind != "a" and rule.major is not None:
        out.append((JMP_JNE_K, 4, 0, rule.major, None))
    if rule.kind != "a" and rule.minor is not None:
        out.append((JMP_JNE_K, 5, 0, rule.minor, None))
    out += [(ALU64_MOV_K, 0, 0, 1, 0), (JMP_EXIT, 0, 0, 0, 0)]
    return out


def build(rules: Sequence[DeviceRule]) -> bytes:
    """Assemble the device program: allow what a rule matches, deny the rest.

    Registers after the prologue: r2 = type, r3 = access, r4 = major, r5 = minor.
    """
    prog = [
        insn(LDX_MEM_W, 2, 1, 0),
        insn(ALU64_AND_K, 2, imm=0xFFFF),
        insn(LDX_MEM_W, 3, 1, 0),
        insn(ALU64_RSH_K, 3, imm=16),
        insn(LDX_MEM_W, 4, 1, 4),
        insn(LDX_MEM_W, 5, 1, 8),
    ]
    for rule in rules:
        block = _rule_block(rule)
        for i, (code, dst, src, imm, off) in enumerate(block):
            # off is relative to the next instruction: skip the rest of this block.
            prog.append(insn(code, dst, src, len(block) - i - 1 if off is None else off, imm))
    prog += [insn(ALU64_MOV_K, 0, imm=0), insn(JMP_EXIT)]
    return b"".join(prog)


def allows(rules: Sequence[DeviceRule], kind: str, major: int, minor: int, access: str) -> bool:
    """Reference model of :func:`build`'s program (for tests and ``sandbox explain``)."""
    want = access_mask(access)
    for rule in rules:
        if rule.kind not in ("a", kind):
            continue
        if want & ~access_mask(rule.access):
            continue
        if rule.kind != "a" and rule.major not in (None, major):
            continue
        if rule.kind != "a" and rule.minor not in (None, minor):
            continue
        return True
    return False

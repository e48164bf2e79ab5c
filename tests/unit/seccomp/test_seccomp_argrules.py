"""Argument rules: the comparisons given to libseccomp match the rule, exactly."""

from __future__ import annotations

import random

import pytest

from sandbox.seccomp.argrules import FULL64, ArgRule, complement_conds, match_conds

TIOCSTI, TIOCLINUX = 0x5412, 0x541C
NS_FLAGS = 0x7E020080

IOCTL = ArgRule("ioctl", 1, 0xFFFFFFFF, (TIOCSTI, TIOCLINUX), 1, "allow")
CLONE = ArgRule("clone", 0, NS_FLAGS, (0,), "allow", 1)
PERSONALITY = ArgRule("personality", 0, FULL64, (0, 0xFFFFFFFF), "allow", "default")
SOCKET = ArgRule("socket", 0, FULL64, (1,), "allow", 97)


def probe_values(rule: ArgRule, rng: random.Random) -> list[int]:
    values = [rng.getrandbits(64) for _ in range(300)] + [0, FULL64]
    for v in rule.values:
        values += [v, v | 0xFFFFFFFF00000000, v | (~rule.mask & FULL64), v + 1, v - 1]
        values += [v ^ (1 << b) for b in range(64)]
    return [v & FULL64 for v in values]


@pytest.mark.parametrize("rule", [IOCTL, CLONE, PERSONALITY, SOCKET], ids=lambda r: r.syscall)
@pytest.mark.parametrize("word_bits", [64, 32])
def test_conditions_partition_the_argument_space(rule: ArgRule, word_bits: int) -> None:
    w = (1 << word_bits) - 1
    match = match_conds(rule, word_bits)
    other = complement_conds(rule, word_bits)
    for value in probe_values(rule, random.Random(word_bits)):
        word = value & w
        in_match = any(c.holds(word) for c in match)
        in_other = [c for c in other if c.holds(word)]
        assert in_match == rule.matches((value,) * 6, word_bits), hex(value)
        assert in_match != bool(in_other), hex(value)
        assert len(in_other) <= 1, "complement alternatives are disjoint"


def test_tiocsti_with_high_bits_still_matches() -> None:
    # CVE-2019-10063: the kernel truncates cmd to 32 bits, so must the rule.
    assert IOCTL.matches((0, TIOCSTI | 1 << 32))
    assert IOCTL.outcome((0, 0xFFFFFFFF00000000 | TIOCLINUX)) == 1
    assert IOCTL.outcome((0, 0x5401)) == "allow"  # TCGETS
    assert IOCTL.outcome((0, 0xFFFFFFFF00005401)) == "allow"  # musl sign-extends requests


def test_clone_namespace_flags() -> None:
    assert CLONE.outcome((0x01200011,)) == "allow"  # glibc fork(): CHILD_SETTID|CLEARTID|SIGCHLD
    assert CLONE.outcome((0x003D0F00,)) == "allow"  # pthread_create
    for flag in (0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000):
        assert CLONE.outcome((flag | 17,)) == 1, hex(flag)
    assert CLONE.outcome((0xFFFFFFFF00000011,)) == "allow"  # high half: not namespace flags


def test_cover_sizes() -> None:
    assert len(complement_conds(SOCKET, 64)) == 1  # a single NE
    assert len(complement_conds(CLONE, 64)) == 8  # one per namespace flag
    assert len(complement_conds(IOCTL, 64)) == 34


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (ArgRule("ioctl", 6, 1, (1,), "allow", 1), "arg 6"),
        (ArgRule("ioctl", 1, 0, (0,), "allow", 1), "mask"),
        (ArgRule("ioctl", 1, 0xFF, (0x100,), "allow", 1), "outside mask"),
        (ArgRule("ioctl", 1, 0xFF, (), "allow", 1), "empty"),
        (ArgRule("ioctl", 1, 0xFF, (1,), "allow", "allow"), "same outcome"),
        (ArgRule("ioctl", 1, 0xFF, (1,), "allow", 4095), "errno 4095 is not 1..4094"),
        (
            ArgRule("ioctl", 1, FULL64, tuple(1 << b for b in range(0, 64, 8)), "default", "allow"),
            "comparisons",
        ),
    ],
)
def test_problems(rule: ArgRule, problem: str) -> None:
    assert any(problem in p for p in rule.problems())

"""Argument rules: "syscall S is allowed/refused depending on one argument".

Pure; shared by the builder (which turns a rule into libseccomp comparisons)
and the reference model (which evaluates the rule directly, without them).

A rule says: if ``(args[arg] & mask)`` is one of ``values`` the outcome is
``match``, otherwise it is ``otherwise``. An outcome is ``"allow"``,
``"default"`` (the filter's default action) or an errno number.

Why not just "allow S unless ...": libseccomp keeps only an *unconditional*
rule when a syscall has both kinds (verified on 2.5.4), and a rule may compare
each argument once. So "allow ioctl except TIOCSTI" has to be written as a set
of allow rules that together cover exactly the other values. ``conditions``
builds that cover: one single-bit ``MASKED_EQ`` per bit on which all refused
values agree (a value differing there is none of them), plus one ``MASKED_EQ``
over the remaining bits for each pattern no refused value has.

Compares are over the whole 64-bit argument on x86_64 (the ``mask`` says
which bits count). The kernel truncates some arguments (ioctl's ``cmd`` is an
``unsigned int``), so a refusal must mask them: bwrap's CVE-2019-10063 was an
``EQ TIOCSTI`` that ``TIOCSTI | 1 << 32`` slipped past. libseccomp compares
only the low 32 bits on i386 and x32; so does ``matches(word_bits=32)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sandbox.seccomp.actions import LIBSECCOMP_MAX_ERRNO

Outcome = Literal["allow", "default"] | int
Op = Literal["eq", "ne", "masked_eq"]

FULL64 = 0xFFFFFFFFFFFFFFFF
MAX_COVER_RULES = 128


def word_mask(word_bits: int) -> int:
    """All ones over an argument word of ``word_bits`` bits."""
    return (1 << word_bits) - 1


@dataclass(frozen=True, slots=True)
class Cond:
    """One libseccomp comparison: ``SCMP_CMP(arg, op, datum_a[, datum_b])``."""

    arg: int
    op: Op
    datum_a: int  # the value (eq, ne) or the mask (masked_eq)
    datum_b: int = 0  # the value for masked_eq

    def holds(self, value: int) -> bool:
        """Evaluate on one argument value (already truncated to the word)."""
        if self.op == "eq":
            return value == self.datum_a
        if self.op == "ne":
            return value != self.datum_a
        return value & self.datum_a == self.datum_b


@dataclass(frozen=True, slots=True)
class ArgRule:
    """``match`` when ``args[arg] & mask`` is in ``values``, else ``otherwise``."""

    syscall: str
    arg: int
    mask: int
    values: tuple[int, ...]
    match: Outcome
    otherwise: Outcome
    group: str = field(default="", compare=False)  # where it came from, for messages

    def matches(self, args: Sequence[int], word_bits: int = 64) -> bool:
        """Whether the (word-truncated) argument is one of the values."""
        w = word_mask(word_bits)
        value = args[self.arg] if self.arg < len(args) else 0
        return value & self.mask & w in {v & w for v in self.values}

    def outcome(self, args: Sequence[int], word_bits: int = 64) -> Outcome:
        """The rule's answer for these arguments."""
        return self.match if self.matches(args, word_bits) else self.otherwise

    def problems(self) -> list[str]:
        """What makes this rule unusable (empty when it is fine)."""
        out = []
        if not 0 <= self.arg <= 5:
            out.append(f"arg {self.arg} is not 0..5")
        if not 0 < self.mask <= FULL64:
            out.append(f"mask {self.mask:#x} must be a non-zero 64-bit value")
        if not self.values:
            out.append("values is empty")
        for v in self.values:
            if v & ~self.mask & FULL64 or v < 0:
                out.append(f"value {v:#x} has bits outside mask {self.mask:#x}")
        for outcome in (self.match, self.otherwise):
            if isinstance(outcome, int) and not 0 < outcome <= LIBSECCOMP_MAX_ERRNO:
                out.append(f"errno {outcome} is not 1..{LIBSECCOMP_MAX_ERRNO}")
        if self.match == self.otherwise:
            out.append("match and otherwise give the same outcome")
        if (
            not out
            and self.otherwise != "default"
            and len(complement_conds(self, 64)) > MAX_COVER_RULES
        ):
            out.append(f"'otherwise' needs more than {MAX_COVER_RULES} comparisons")
        return out


def match_conds(rule: ArgRule, word_bits: int) -> list[Cond]:
    """Comparisons, one per alternative, true exactly when the rule matches."""
    w = word_mask(word_bits)
    mask = rule.mask & w
    values = sorted({v & w for v in rule.values})
    if mask == w:
        return [Cond(rule.arg, "eq", v) for v in values]
    return [Cond(rule.arg, "masked_eq", mask, v) for v in values]


def complement_conds(rule: ArgRule, word_bits: int) -> list[Cond]:
    """Comparisons, one per alternative, true exactly when the rule does *not* match.

    Walks the binary trie of the values over the mask's bits, high bit first;
    every branch no value takes becomes one ``MASKED_EQ`` over the bits seen
    so far. The alternatives are disjoint and number at most
    ``len(values) * popcount(mask)``.
    """
    w = word_mask(word_bits)
    mask = rule.mask & w
    values = sorted({v & w for v in rule.values})
    if mask == w and len(values) == 1:
        return [Cond(rule.arg, "ne", values[0])]
    bits = [1 << b for b in reversed(range(word_bits)) if mask >> b & 1]
    conds: list[Cond] = []

    def walk(group: list[int], seen: int, depth: int) -> None:
        if depth == len(bits):
            return
        bit = bits[depth]
        here = seen | bit
        for branch, bit_value in (
            ([v for v in group if not v & bit], 0),
            ([v for v in group if v & bit], bit),
        ):
            if branch:
                walk(branch, here, depth + 1)
            else:
                conds.append(Cond(rule.arg, "masked_eq", here, group[0] & seen | bit_value))

    walk(values, 0, 0)
    return conds

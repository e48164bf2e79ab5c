"""``SeccompSpec``: a policy's seccomp section with every group and name resolved.

Pure, frozen and free of pydantic (STYLE C3): this is what crosses from the
policy layer into the builder, the reference model and the simulator, and
what the artifact key is computed from.

Precedence for one syscall, strongest first (``resolve`` guarantees there is
no ambiguity left):

1. ``deny``: refused with ``deny_ret`` whatever else names it;
2. an errno answer (``enosys``, then ``errno``);
3. an argument rule;
4. ``allow``;
5. the default action.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.seccomp.actions import (
    REFUSING,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_USER_NOTIF,
    action_ret,
    errno_ret,
)
from sandbox.seccomp.argrules import ArgRule, Outcome


@dataclass(frozen=True, slots=True)
class SeccompSpec:
    """The resolved seccomp policy for one filter (names, not numbers)."""

    default_action: str
    default_errno: int
    allow: frozenset[str]
    errno: tuple[tuple[str, int], ...]  # sorted (name, errno), ENOSYS entries excluded
    enosys: frozenset[str]
    rules: tuple[ArgRule, ...]  # sorted by syscall, at most one per syscall
    deny: frozenset[str]
    # Foreign ABIs (i386 int 0x80, x32 on x86_64) go to the supervisor's listener,
    # which records arch and syscall and kills the run: a kernel kill would be
    # known only through the kernel log, which any task can flood (issue 13 item 4).
    bad_arch_action: str = "notify"
    _errno_map: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _rule_map: Mapping[str, ArgRule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_errno_map", dict(self.errno))
        object.__setattr__(self, "_rule_map", {r.syscall: r for r in self.rules})

    @property
    def default_ret(self) -> int:
        """The filter's default return value."""
        return action_ret(self.default_action, self.default_errno)

    @property
    def bad_arch_ret(self) -> int:
        """Return value for a foreign ABI (i386 or x32 on an x86_64 filter)."""
        return action_ret(self.bad_arch_action)

    @property
    def deny_ret(self) -> int:
        """What a denied syscall gets: the default when it refuses, else USER_NOTIF.

        A policy whose default lets syscalls run (``log``, ``allow``) still
        never runs a denied one: the supervisor records it and kills the run
        (a kernel kill would leave no record the payload cannot forge).
        """
        if self.default_action in REFUSING:
            return self.default_ret
        return SECCOMP_RET_USER_NOTIF

    def errno_of(self, name: str) -> int | None:
        """The errno ``name`` is answered with, if any."""
        if name in self.enosys:
            return _errno.ENOSYS
        return self._errno_map.get(name)

    def rule_for(self, name: str) -> ArgRule | None:
        """The argument rule for ``name``, if any."""
        return self._rule_map.get(name)

    def outcome_ret(self, outcome: Outcome) -> int:
        """Return value of a rule outcome."""
        if outcome == "allow":
            return SECCOMP_RET_ALLOW
        if outcome == "default":
            return self.default_ret
        return errno_ret(int(outcome))

    def names(self) -> frozenset[str]:
        """Every syscall the spec mentions."""
        return self.allow | self.enosys | self.deny | set(self._errno_map) | set(self._rule_map)

    def canonical(self) -> dict[str, Any]:
        """A JSON-ready, order-independent form (input of the artifact key)."""
        return {
            "default_action": self.default_action,
            "default_errno": self.default_errno,
            "bad_arch_action": self.bad_arch_action,
            "allow": sorted(self.allow),
            "errno": [list(p) for p in self.errno],
            "enosys": sorted(self.enosys),
            "deny": sorted(self.deny),
            "rules": [
                [r.syscall, r.arg, r.mask, list(r.values), r.match, r.otherwise] for r in self.rules
            ],
        }

"""The intersection of two seccomp specs, as a profile's ``[seccomp]`` table (pure).

``sandbox seccomp import --extends BASE`` promises a profile that never
allows more than the JSON nor more than BASE. A child profile's lists add to
its base's (``policy.load``), so the promise cannot come from writing the
JSON's lists under ``extends``: :func:`intersect` lists every syscall with
the stricter treatment of the two, for a profile that replaces the base's
groups, allow-list and rules (:data:`REPLACED`). ``sandbox.verify.subset``
checks the result on the compiled filters.
"""

from __future__ import annotations

import errno as _errno
from typing import Any

from sandbox.errors import PolicyError
from sandbox.seccomp.actions import REFUSING, errno_number
from sandbox.seccomp.argrules import Outcome
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import all_names


def _errno_key(number: int) -> str:
    name = _errno.errorcode.get(number)
    if name is None or errno_number(name) != number:
        raise PolicyError(f"errno {number} has no name this host knows")
    return name


def _outcome(value: Outcome) -> str:
    return value if isinstance(value, str) else _errno_key(value)


def _runs_outright(spec: SeccompSpec, name: str) -> bool:
    """``name`` runs for any arguments: allowed, or unlisted under a default that runs."""
    if name in spec.deny or spec.errno_of(name) is not None or spec.rule_for(name) is not None:
        return False
    return name in spec.allow or spec.default_action in ("allow", "log")


def intersect(own: SeccompSpec, base: SeccompSpec) -> dict[str, Any]:
    """A ``[seccomp]`` table that lets a syscall run only where both ``own`` and ``base`` do.

    For a profile that ``extends`` the base and replaces its groups, allow
    list and rules (``REPLACED``): every syscall is listed with the stricter
    of the two treatments, so the result is the intersection by
    construction, not by hoping the inherited lists add nothing. ``own`` is
    an imported JSON's reading (no argument rules); the base's rules are
    kept for the syscalls ``own`` allows outright (a rule allows a subset).
    The default is ``own``'s when it refuses, else the base's.
    """
    default = own if own.default_action in REFUSING else base
    out: dict[str, Any] = {"default_action": default.default_action, "groups": []}
    if default.default_action == "errno":
        out["default_errno"] = _errno_key(default.default_errno)
    allow, errno_map, rules = [], {}, []
    for name in sorted(all_names()):
        if name in own.deny or name in base.deny:
            continue  # own's deny list is written below; the base's accumulates
        number = own.errno_of(name)
        if number is None and not _runs_outright(own, name):
            continue  # own refuses it with its default: so will the result
        if number is None:
            number = base.errno_of(name)
        if number is not None:
            errno_map[name] = _errno_key(number)
        elif (rule := base.rule_for(name)) is not None:
            rules.append(
                {
                    "syscall": name,
                    "arg": rule.arg,
                    "mask": rule.mask,
                    "values": list(rule.values),
                    "match": _outcome(rule.match),
                    "otherwise": _outcome(rule.otherwise),
                }
            )
        elif _runs_outright(base, name):
            allow.append(name)
    out |= {"allow": allow, "errno": errno_map, "deny": sorted(own.deny), "rules": rules}
    return out


REPLACED = ("seccomp.groups", "seccomp.allow", "seccomp.rules")


__all__ = ["REPLACED", "intersect"]

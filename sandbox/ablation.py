"""Test-only: switch one enforcement layer off in a launch plan (``--test-ablate``).

The escape suite (tests/escape/) runs every attack twice: with the layer, and
with only that layer switched off, to show that the layer is what stops it.
This module is the one place that weakens a plan, and only when a caller
passes ablations explicitly (the CLI's hidden ``--test-ablate``); the run
record then says ``ablated`` for the layer and names extra knobs in ``notes``.

What each ablation means, when the plan alone cannot express "off":

- ``namespaces``: the payload may create nested user namespaces (the
  ``user.max_user_namespaces = 0`` limit is not set) and shares the host's
  network namespace. The other namespaces stay: the container cannot be built
  without them.
- ``overlay``: the root is the first lower layer itself, bound read-write,
  with no overlay and no read-only remount (sandbox.fs.mounts).
- ``capabilities``: the payload keeps the full capability set the launcher
  holds in the run's user namespace, carried across execve by the ambient set
  (as a payload that is root in its namespace would). Without this the
  payload, not being root in its namespace, would lose its capabilities at
  execve anyway, and no attack could tell whether the layer mattered.
- ``no_new_privs``: PR_SET_NO_NEW_PRIVS is not set.
- ``landlock``, ``apparmor``, ``seccomp``, ``cgroups``: the layer's artifact is
  not built (sandbox.enforce records the state ``off``).

Knobs that are not layers of the record:

- ``nosuid``: bind mounts without MS_NOSUID (to show no_new_privs on its own);
- ``rlimit_nproc``: no RLIMIT_NPROC (to show the cgroup's pids.max on its own);
- ``proc_masks``: a full /proc without its masks (read-only /proc/sys ...);
- ``tty_relay``: the caller's terminal handed to the payload as it is, not
  relayed through a pty of the run's own (sandbox.runner.terminal);
- ``shared_binds``: read-only host binds (/usr) are binds of the host's own
  inodes again, not private overlays (sandbox.fs.ops.BindMount.private).
"""

from __future__ import annotations

import resource
from dataclasses import replace

from sandbox.caps.names import last_cap
from sandbox.errors import PolicyError
from sandbox.layers import LAYERS
from sandbox.plan import LaunchPlan
from sandbox.syscalls.consts import CloneFlag

KNOBS: dict[str, str] = {
    "nosuid": "bind mounts without nosuid",
    "rlimit_nproc": "no RLIMIT_NPROC",
    "proc_masks": "/proc without its masks",
    "tty_relay": "the caller's terminal given to the payload as it is",
    "shared_binds": "read-only host binds shared with the host (no private overlay)",
}
NAMES = (*LAYERS, *KNOBS)


def check(ablate: frozenset[str]) -> None:
    """Refuse unknown names before anything is set up (a typo must not test nothing).

    Raises:
        PolicyError: naming the unknown ablations and the known ones.
    """
    unknown = sorted(ablate - set(NAMES))
    if unknown:
        raise PolicyError(f"unknown --test-ablate {', '.join(unknown)}; one of {', '.join(NAMES)}")


def apply(plan: LaunchPlan, ablate: frozenset[str]) -> LaunchPlan:
    """The plan with the named layers and knobs switched off (test hook only)."""
    if not ablate:
        return plan
    changes: dict[str, object] = {}
    mounts = plan.mounts
    if "namespaces" in ablate:
        changes["nested_userns"] = True
        changes["unshare_flags"] = plan.unshare_flags & ~int(CloneFlag.CLONE_NEWNET)
    if "overlay" in ablate:
        mounts = replace(mounts, overlay=False)
    if "nosuid" in ablate:
        mounts = replace(mounts, nosuid=False)
    if "proc_masks" in ablate:
        mounts = replace(mounts, proc_masks=False)
    if "shared_binds" in ablate:
        mounts = replace(mounts, binds=tuple(replace(b, private=False) for b in mounts.binds))
    if "capabilities" in ablate:
        changes["caps_keep"] = (1 << (last_cap() + 1)) - 1
    if "no_new_privs" in ablate:
        changes["no_new_privs"] = False
    if "rlimit_nproc" in ablate:
        changes["rlimits"] = tuple(r for r in plan.rlimits if r.resource != resource.RLIMIT_NPROC)
    return replace(plan, mounts=mounts, **changes)  # type: ignore[arg-type]


def notes(ablate: frozenset[str]) -> tuple[str, ...]:
    """Record notes for the knobs that have no layer of their own."""
    return tuple(f"test hook: {KNOBS[k]} (--test-ablate {k})" for k in sorted(ablate & set(KNOBS)))

"""A compiled run without its per-run host paths: the template a verification is kept by.

Pure, supervisor side. Two containers of one image and config differ only in
where their files sit on the host and in their names: the rootfs layers (an
engine mounts an overlay per container), the binds' sources (its per-container
``/etc/hosts``, ``resolv.conf``, ``.containerenv``), the bundle's path in the
description, the hostname (podman's is the container id). :func:`template`
puts fixed placeholders in their place. ``verify.core.check_template`` reads
none of them and keeps no finding about them; the checks that read them
(``verify.core.check_placement``: the mount trace and ``lint.PLACEMENT``) run
on every run's own values. So the second container of an image hits the
verification of the first, while every byte the kernel is given (BPF,
Landlock rules, AppArmor text, the mount plan's shape) stays in the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

from sandbox.fs.ops import BindMount, MountPlan
from sandbox.policy.frozen import Policy

# Not a path anything is ever mounted from; only the template's key and report see it.
PLACEHOLDER = "/.sandbox-relocated"
HOSTNAME = "sandbox"  # the model's default: a valid hostname, what SBX155 compares with


def _with(obj: Any, **changes: Any) -> Any:
    """A copy of frozen policy data with ``changes``: the snapshot (a dataclass) or, as a
    run compiled in-process may carry, the pydantic model (copied without validation:
    placeholders are for the key and the template's checks only)."""
    if dataclasses.is_dataclass(obj):
        return replace(obj, **changes)  # type: ignore[type-var]
    return obj.model_copy(update=changes)


def template_policy(policy: Policy) -> Policy:
    """``policy`` with its rootfs layers, bind sources, description and hostname abstracted."""
    fs = policy.filesystem
    rootfs = [f"{PLACEHOLDER}/rootfs{i}" for i in range(len(fs.rootfs))]
    binds = [_with(b, source=f"{PLACEHOLDER}/bind{i}") for i, b in enumerate(fs.binds)]
    out: Policy = _with(
        policy,
        description="",
        identity=_with(policy.identity, hostname=HOSTNAME),
        filesystem=_with(fs, rootfs=rootfs, binds=binds),
    )
    return out


def template_mounts(plan: MountPlan) -> MountPlan:
    """The mount plan with its lower layers' and binds' host paths abstracted (for the key:
    the plan itself is checked on every run by the mount trace)."""
    lowers = tuple(f"{PLACEHOLDER}/lower{i}" for i in range(len(plan.lowers)))
    binds = tuple(
        BindMount(f"{PLACEHOLDER}/mbind{i}", b.target, b.writable, b.exec, b.idmap, b.private)
        for i, b in enumerate(plan.binds)
    )
    return replace(plan, lowers=lowers, binds=binds, program=None, copy_in=())

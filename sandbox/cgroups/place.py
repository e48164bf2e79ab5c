"""A leaf where an engine asks for it: ``linux.cgroupsPath`` with the cgroupfs manager.

runc's semantics, which podman (``/libpod_parent/libpod-<id>``, ``--cgroup-parent``),
containerd (``/<namespace>/<id>``) and the kubelet's pod cgroups rely on: an
absolute path is taken from each hierarchy's root (as this process sees it,
through its cgroup namespace), a relative one from the delegated parent (the
caller's own cgroup or ``$SANDBOX_CGROUP_PARENT``, where sandbox's own leaves
go; runc v2 takes the parent of its own cgroup instead). Missing directories
on the way are made, v2 controllers are enabled down the chain, and the leaf
itself must be new. The caller's process is never moved: only the
container's own processes go there, which is the engine's explicit decision.

:func:`check_path` is pure (the bundle's trust boundary uses it);
:func:`prepare` walks each hierarchy beneath its mount with openat2
(RESOLVE_BENEATH|NO_SYMLINKS|NO_MAGICLINKS|NO_XDEV), so neither a link nor
a bind mount planted on a component is ever followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

from sandbox.cgroups.detect import V2_BUILTIN, CgroupLayout, Hierarchy, v2_facts
from sandbox.errors import SetupError

MAX_PATH = 4096
MAX_DEPTH = 32
# sandbox's own leaves, which the sweep removes from the delegated parents: an
# engine's leaf there may not look like one
RESERVED_PREFIX = "sbx-"
_SYSTEMD = re.compile(r"^[^:/]*:[^:/]*:[^:/]+$")


class CgroupPathError(ValueError):
    """A cgroupsPath that is refused (the message names why, without the JSON path)."""


def check_path(path: str) -> str:
    """The normal form of a cgroupfs path (``/a/b`` or ``a/b``), or CgroupPathError.

    Refused: a systemd ``slice:prefix:name`` (there is no systemd manager), a
    ``.`` or ``..`` component, control characters, a component longer than
    NAME_MAX, more than 32 levels and the root itself. Repeated and trailing
    slashes are dropped.
    """
    if not isinstance(path, str) or not path:
        raise CgroupPathError("must be a non-empty string")
    if _SYSTEMD.match(path):
        raise CgroupPathError(
            f"{path!r} is a systemd cgroup path (slice:prefix:name), which needs "
            "--systemd-cgroup; sandbox-runtime has only the cgroupfs manager (use podman "
            "--cgroup-manager cgroupfs, or SystemdCgroup = false in containerd)"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise CgroupPathError(f"{path!r} contains a control character")
    if len(path.encode()) > MAX_PATH:
        raise CgroupPathError(f"longer than {MAX_PATH} bytes")
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise CgroupPathError(f"{path!r} must not contain '.' or '..' components")
    if not parts:
        raise CgroupPathError(f"{path!r} names the root cgroup: a container needs one of its own")
    if len(parts) > MAX_DEPTH:
        raise CgroupPathError(f"{path!r} is deeper than {MAX_DEPTH} levels")
    if any(len(p.encode()) > 255 for p in parts):
        raise CgroupPathError(f"{path!r} has a component longer than 255 bytes")
    return ("/" if path.startswith("/") else "") + "/".join(parts)


def locate(h: Hierarchy, path: str) -> tuple[str, list[str]] | None:
    """(an existing directory of ``h`` to walk from, components to the leaf), or None
    when an absolute ``path`` is outside what this mount shows."""
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/"):
        if h.parent is None:
            return None
        return h.parent, parts
    root = [p for p in h.mount_root.split("/") if p]
    if parts[: len(root)] != root or len(parts) == len(root):
        return None
    return h.mount, parts[len(root) :]


def _copy_cpuset(layout: CgroupLayout, made: list[str]) -> None:
    """A new v1 cpuset directory has no cpus/mems (and takes no task): its parent's."""
    io = layout.io
    for d in made:
        for name in ("cpuset.mems", "cpuset.cpus"):
            f = os.path.join(d, name)
            if io.exists(f) and not io.read(f).strip():
                io.write(f, io.read(os.path.join(os.path.dirname(d), name)).strip())


def _enable_down(
    layout: CgroupLayout, h: Hierarchy, chain: list[str], wanted: set[str]
) -> Hierarchy:
    """v2: enable ``wanted`` in each cgroup of ``chain`` (outermost first) for its child.

    A level that cannot (not offered, or it holds processes: the no-internal-
    processes rule) keeps the controller from everything below; the leaf's
    create then reports it off, or refuses it when required. Returns ``h`` with
    the leaf's parent (the chain's last) and its facts.
    """
    from sandbox.cgroups.v2 import V2Backend

    backend = V2Backend()
    left = set(wanted) - V2_BUILTIN
    for level in chain:
        offered, enabled, busy = v2_facts(layout.io, level)
        here = replace(h, parent=level, controllers=offered, enabled=enabled, parent_busy=busy)
        left &= offered
        left -= set(backend.prepare_parent(layout.io, here, set(left)))
    offered, enabled, busy = v2_facts(layout.io, chain[-1])
    return replace(h, parent=chain[-1], controllers=offered, enabled=enabled, parent_busy=busy)


def prepare(
    layout: CgroupLayout, path: str, hierarchies: dict[Hierarchy, set[str]]
) -> tuple[CgroupLayout, str, list[str]]:
    """Make the parents of ``path``'s leaf in each hierarchy holding controllers we need.

    Returns a layout whose parents are the leaf's parents, the leaf's name, and
    the directories made on the way (outermost first; the leaf removes them
    again when they are empty). Raises SetupError naming the path (after
    removing what it made).
    """
    name = path.rstrip("/").rsplit("/", 1)[-1]
    made: list[str] = []
    swap: dict[Hierarchy, Hierarchy] = {}
    try:
        for h, ctrls in hierarchies.items():
            got = locate(h, path)
            if got is None:
                raise SetupError(
                    "cgroup",
                    f"linux.cgroupsPath {path!r} is outside the {h.name} hierarchy this "
                    f"runtime sees (mounted at {h.mount}, root {h.mount_root})",
                )
            base, parts = got
            try:
                here = layout.io.make_beneath(base, parts[:-1])
            except OSError as e:
                raise SetupError(
                    "cgroup",
                    f"linux.cgroupsPath {path!r}: cannot make its parent in {base}: {e.strerror}",
                ) from None
            made += here
            parent = os.path.join(base, *parts[:-1])
            if name.startswith(RESERVED_PREFIX) and parent == h.parent:
                raise SetupError(
                    "cgroup",
                    f"linux.cgroupsPath {path!r}: a leaf named {RESERVED_PREFIX}* right under "
                    f"{parent} would be taken for one of sandbox's own runs (and swept)",
                )
            if h.version == 1:
                if "cpuset" in h.controllers:
                    _copy_cpuset(layout, here)
                swap[h] = replace(h, parent=parent)
            else:
                chain = [base] + [
                    os.path.join(base, *parts[: i + 1]) for i in range(len(parts) - 1)
                ]
                swap[h] = _enable_down(layout, h, chain, ctrls)
    except BaseException:
        for d in reversed(made):
            try:
                layout.io.rmdir(d)
            except OSError:
                pass
        raise
    moved = replace(
        layout,
        hierarchies=tuple(swap.get(h, h) for h in layout.hierarchies),
        placement={c: swap.get(h, h) for c, h in layout.placement.items()},
    )
    return moved, name, made

"""Find where each controller lives (v1, v2 or hybrid) and the delegated parent in each.

Runs in the supervisor; reads ``/proc/self/cgroup``, ``/proc/self/mountinfo``
and cgroupfs, writes nothing, needs no privileges. Every input can be passed
in, so unit tests describe a host (v1, v2, hybrid, a systemd unit) with two
strings and a tmpdir laid out like cgroupfs.

Rules (STYLE B6): a run's leaf goes under a *delegated parent*, per
hierarchy: the caller's own cgroup there, or the one named by ``parent`` /
``$SANDBOX_CGROUP_PARENT`` (a cgroup path such as ``/judge.slice/judge.service``,
looked up in every hierarchy). The caller's process is never moved and no
hierarchy is ever mounted; a hierarchy without a usable parent is reported
with the fix, and :func:`~sandbox.cgroups.leaf.create` refuses when a
required controller lives there.

Each controller is placed in exactly one hierarchy: a v1 hierarchy that has
it mounted wins (a controller bound to v1 is absent from v2), else the v2
hierarchy when the parent's ``cgroup.controllers`` offers it. The logical
controllers ``cpuacct``, ``freezer`` and ``devices`` are built into every
v2 cgroup (``cpu.stat``, ``cgroup.freeze``, eBPF), so on a hybrid host
without those v1 hierarchies they fall back to the v2 one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sandbox.cgroups.kernel import CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, CgroupIO
from sandbox.cgroups.model import CONTROLLERS

log = logging.getLogger(__name__)

ENV_PARENT = "SANDBOX_CGROUP_PARENT"
V2_BUILTIN = frozenset({"cpuacct", "freezer", "devices"})
_V1_NAMES = {"blkio": "io"}  # v1 spelling -> our (v2) spelling
_V1_SUBSYSTEMS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "net_cls",
        "net_prio",
        "blkio",
        "perf_event",
        "hugetlb",
        "pids",
        "rdma",
        "misc",
        "debug",
    }
)
FIX = (
    "name a delegated parent with SANDBOX_CGROUP_PARENT (e.g. the cgroup of a systemd "
    "unit with Delegate=yes, or a directory made for the sandbox and chowned to its user), "
    "or run the supervisor as root"
)


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """One mounted cgroup hierarchy and this process's parent for leaves in it.

    Attributes:
        version: 1 or 2.
        name: ``"memory"``, ``"cpu,cpuacct"``, ``"name=systemd"``, ``"unified"``.
        mount: filesystem path of the mount point.
        controllers: logical controllers it can give a leaf (v2: the parent's
            ``cgroup.controllers`` plus the built-ins).
        own: the caller's cgroup there, as in /proc/self/cgroup.
        parent: filesystem path of the delegated parent, or None.
        problem: why ``parent`` is None, with the fix.
        enabled: v2 only: the parent's ``cgroup.subtree_control``.
        parent_busy: v2 only: the parent is not the root and holds processes, so
            the no-internal-processes rule forbids enabling controllers in it.
        mount_root: the cgroup the mount shows at ``mount`` (mountinfo's root
            field; ``/`` unless a subtree is mounted), for absolute cgroup paths.
    """

    version: Literal[1, 2]
    name: str
    mount: str
    controllers: frozenset[str]
    own: str
    parent: str | None
    problem: str | None = None
    enabled: frozenset[str] = frozenset()
    parent_busy: bool = False
    mount_root: str = "/"


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    """Per controller, the hierarchy that holds it, or why none does."""

    mode: Literal["v1", "v2", "hybrid", "none"]
    hierarchies: tuple[Hierarchy, ...]
    placement: Mapping[str, Hierarchy]
    missing: Mapping[str, str]
    io: CgroupIO = field(default_factory=CgroupIO, compare=False, repr=False)

    def describe(self) -> str:
        """One line per controller, for logs and ``sandbox doctor``."""
        lines = [f"cgroup mode: {self.mode}"]
        for name in CONTROLLERS:
            if name in self.placement:
                h = self.placement[name]
                lines.append(f"  {name}: v{h.version} {h.name}, parent {h.parent}")
            else:
                lines.append(f"  {name}: off ({self.missing.get(name, 'unknown')})")
        return "\n".join(lines)


def _unescape(field_: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and field_[i + 1 : i + 4].isdigit():
            out.append(chr(int(field_[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, str, frozenset[str]]]:
    """cgroup mounts as (fstype, root, mountpoint, v1 subsystems incl. ``name=``)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        opts = set(tail[2].split(","))
        subsys = frozenset(o for o in opts if o in _V1_SUBSYSTEMS or o.startswith("name="))
        mounts.append((tail[0], _unescape(fields[3]), _unescape(fields[4]), subsys))
    return mounts


def parse_proc_cgroup(text: str) -> dict[frozenset[str], str]:
    """/proc/self/cgroup as {subsystem set: path}; v2 is the empty set."""
    out: dict[frozenset[str], str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[frozenset(s for s in parts[1].split(",") if s)] = parts[2]
    return out


def resolve(mount: str, mount_root: str, cgroup: str) -> str | None:
    """Filesystem path of ``cgroup`` under a mount whose root is ``mount_root``."""
    if cgroup.startswith("/.."):  # outside our cgroup namespace
        return None
    if mount_root == "/":
        rel = cgroup
    elif cgroup == mount_root or cgroup.startswith(mount_root.rstrip("/") + "/"):
        rel = cgroup[len(mount_root.rstrip("/")) :]
    else:
        return None
    return os.path.normpath(mount + "/" + rel.strip("/")) if rel.strip("/") else mount


def _check_parent(io: CgroupIO, path: str | None, what: str) -> str | None:
    """None when leaves can be made in ``path``, else the problem and its fix."""
    if path is None:
        return f"{what} is not visible under this mount (cgroup namespace?); {FIX}"
    if not io.exists(os.path.join(path, "cgroup.procs")):
        return f"{what} ({path}) does not exist; create it or {FIX}"
    if not io.writable(path):
        return f"no write access to {path}, so no child cgroup can be made there; {FIX}"
    return None


def _v2_facts(io: CgroupIO, parent: str) -> tuple[frozenset[str], frozenset[str], bool]:
    offered = frozenset(io.read(os.path.join(parent, "cgroup.controllers")).split())
    enabled = frozenset(io.read(os.path.join(parent, "cgroup.subtree_control")).split())
    is_root = not io.exists(os.path.join(parent, "cgroup.type"))  # only the root lacks it
    busy = not is_root and bool(io.read(os.path.join(parent, "cgroup.procs")).split())
    return offered | V2_BUILTIN, enabled, busy


def _hierarchy(
    io: CgroupIO,
    mount: tuple[str, str, str, frozenset[str]],
    root: str,
    own: str,
    wanted: str | None,
) -> Hierarchy:
    fstype, mount_root, mountpoint, subsys = mount
    path = os.path.normpath(root + "/" + mountpoint)
    version: Literal[1, 2] = 2 if fstype == "cgroup2" else 1
    name = "unified" if version == 2 else ",".join(sorted(subsys))
    magic = CGROUP2_SUPER_MAGIC if version == 2 else CGROUP_SUPER_MAGIC
    controllers = frozenset(_V1_NAMES.get(s, s) for s in subsys if not s.startswith("name="))
    target = wanted if wanted is not None else own
    what = f"cgroup {target} in the {name} hierarchy" + (
        f" (named by {ENV_PARENT})" if wanted is not None else " (the caller's own)"
    )
    parent = resolve(path, mount_root, target)
    problem = _check_parent(io, parent, what)
    if problem is None and io.statfs_magic(path) != magic:
        problem = f"{path} is not a {fstype} filesystem (statfs magic); not using it"
    if problem is not None:
        return Hierarchy(
            version, name, path, controllers, own, None, problem, mount_root=mount_root
        )
    assert parent is not None
    if version == 1:
        return Hierarchy(1, name, path, controllers, own, parent, mount_root=mount_root)
    offered, enabled, busy = _v2_facts(io, parent)
    return Hierarchy(2, name, path, offered, own, parent, None, enabled, busy, mount_root)


def v2_facts(io: CgroupIO, parent: str) -> tuple[frozenset[str], frozenset[str], bool]:
    """(controllers offered incl. the built-ins, enabled, busy) of a v2 cgroup."""
    return _v2_facts(io, parent)


_MOUNT_NET = (
    "to use it, mount a v1 hierarchy: mkdir /sys/fs/cgroup/net_cls,net_prio && "
    "mount -t cgroup -o net_cls,net_prio none /sys/fs/cgroup/net_cls,net_prio"
)


def _place(hierarchies: list[Hierarchy]) -> tuple[dict[str, Hierarchy], dict[str, str]]:
    placement: dict[str, Hierarchy] = {}
    missing: dict[str, str] = {}
    for ctrl in CONTROLLERS:
        v1 = [h for h in hierarchies if h.version == 1 and ctrl in h.controllers]
        v2 = [
            h for h in hierarchies if h.version == 2 and (h.parent is None or ctrl in h.controllers)
        ]
        if (ctrl not in V2_BUILTIN and v1) or ctrl in ("net_cls", "net_prio"):
            v2 = []  # a controller bound to a v1 hierarchy cannot be in v2; v2 has no net_*
        candidates = v1 + v2
        usable = [h for h in candidates if h.parent is not None]
        if usable:
            placement[ctrl] = usable[0]
        elif candidates:
            missing[ctrl] = f"{candidates[0].name}: {candidates[0].problem}"
        elif any(h.version == 2 for h in hierarchies) and ctrl in ("net_cls", "net_prio"):
            missing[ctrl] = (
                f"no cgroup v1 hierarchy mounts {ctrl} and cgroup v2 has no "
                "equivalent (the run's own network namespace isolates its traffic; "
                f"classify with nftables 'socket cgroupv2' instead); {_MOUNT_NET}"
            )
        elif ctrl in ("net_cls", "net_prio"):
            missing[ctrl] = f"no mounted cgroup hierarchy has the {ctrl} controller; {_MOUNT_NET}"
        else:
            missing[ctrl] = f"no mounted cgroup hierarchy has the {ctrl} controller"
    return placement, missing


def detect(
    *,
    root: str = "/",
    proc_self_cgroup: str | None = None,
    mountinfo: str | None = None,
    parent: str | None = None,
    env: Mapping[str, str] | None = None,
    io: CgroupIO | None = None,
) -> CgroupLayout:
    """Describe this host's cgroup hierarchies and where leaves can be made.

    Args:
        root: prefix for every path (a tmpdir in unit tests).
        proc_self_cgroup: contents of /proc/self/cgroup (read if None).
        mountinfo: contents of /proc/self/mountinfo (read if None).
        parent: delegated parent cgroup path (default ``$SANDBOX_CGROUP_PARENT``,
            else the caller's own cgroup in each hierarchy).
        env: environment to read ``SANDBOX_CGROUP_PARENT`` from (default os.environ).
        io: kernel access (a fake in tests).

    Never raises for a host without cgroups: the layout then says ``none``
    and lists every controller as missing with the reason.
    """
    io = io or CgroupIO()
    proc_self_cgroup = (
        proc_self_cgroup if proc_self_cgroup is not None else io.read("/proc/self/cgroup")
    )
    mountinfo = mountinfo if mountinfo is not None else io.read("/proc/self/mountinfo")
    wanted = (
        parent
        if parent is not None
        else (env if env is not None else os.environ).get(ENV_PARENT) or None
    )
    own_by_set = parse_proc_cgroup(proc_self_cgroup)
    chosen: dict[tuple[str, frozenset[str]], Hierarchy] = {}
    for mount in parse_mountinfo(mountinfo):
        key = (mount[0], mount[3])
        own = own_by_set.get(frozenset() if mount[0] == "cgroup2" else mount[3])
        if own is None or (key in chosen and chosen[key].parent is not None):
            continue  # not our hierarchy, or one already found usable through another mount
        h = _hierarchy(io, mount, root, own, wanted)
        if key not in chosen or h.parent is not None:
            chosen[key] = h
    hierarchies = [h for h in chosen.values() if h.controllers or h.version == 2]
    for h in hierarchies:
        if h.problem:
            log.debug("cgroup hierarchy %s unusable: %s", h.name, h.problem)
    placement, missing = _place(hierarchies)
    versions = {h.version for h in hierarchies}
    mode: Literal["v1", "v2", "hybrid", "none"] = (
        "none"
        if not versions
        else "hybrid"
        if versions == {1, 2}
        else "v2"
        if versions == {2}
        else "v1"
    )
    return CgroupLayout(mode, tuple(hierarchies), placement, missing, io)

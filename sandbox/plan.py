"""LaunchPlan: everything the launcher child needs, computed before fork.

The child makes no policy decisions and compiles nothing: it gets BPF bytes,
capability numbers, mount operations, Landlock rules and the AppArmor profile
name, and performs the ordered steps of ``sandbox.launcher.steps``. The plan
is frozen data with a version, serialised as JSON (``sandbox.codec``) when it
crosses to the fork server. No pydantic below this line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from sandbox.fs.ops import MountPlan
from sandbox.landlock.rules import LandlockArtifact

PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class Rlimit:
    """One resource limit the payload sets on itself just before execve."""

    resource: int
    soft: int
    hard: int


def tightened(
    rlimits: Iterable[Rlimit], asked: Iterable[tuple[int, int, int]]
) -> tuple[Rlimit, ...]:
    """``rlimits`` plus each ``(resource, soft, hard)`` asked for, never above a limit
    ``rlimits`` already sets (an OCI process's own rlimits); ordered by resource."""
    limits = {r.resource: r for r in rlimits}
    for res, soft, hard in asked:
        have = limits.get(res)
        if have is not None:
            soft, hard = min(soft, have.soft), min(hard, have.hard)
        limits[res] = Rlimit(res, soft, hard)
    return tuple(limits[k] for k in sorted(limits))


@dataclass(frozen=True, slots=True)
class SeccompPlan:
    """The precompiled filter and the seccomp(2) flags to load it with."""

    bpf: bytes
    flags: int
    notify: bool = False


@dataclass(frozen=True, slots=True)
class LaunchPlan:
    """Frozen input of one run's child side (see module docstring)."""

    run_id: str
    policy_digest: str
    # identity: ids inside the user namespace and the host ids they map to
    inside_uid: int
    inside_gid: int
    host_uid: int
    host_gid: int
    id_mode: Literal["slot", "rootless"]
    hostname: str
    # namespaces (CLONE_NEW* flags, CLONE_NEWUSER included) and nesting
    unshare_flags: int
    cgroupns: bool
    nested_userns: bool
    # file system
    mounts: MountPlan
    # payload
    exec_path: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    workdir: str
    # layers
    apparmor_profile: str | None = None
    no_new_privs: bool = True
    drop_caps: bool = True
    caps_keep: int = 0
    rlimits: tuple[Rlimit, ...] = ()
    landlock: LandlockArtifact | None = None
    seccomp: SeccompPlan | None = None
    join_cgroup: bool = True
    collect: tuple[str, ...] = ()  # files of /box the init reports after the payload ends
    collect_limit: int = 16 << 20
    # namespaces joined by path before ours are made (an engine's network namespace:
    # ("network"|"ipc"|"uts", path)); their CLONE_NEW* flags are not in unshare_flags
    join_ns: tuple[tuple[str, str], ...] = ()
    # sysctls of the run's own net/ipc namespaces, written by its init (dotted names)
    sysctl: tuple[tuple[str, str], ...] = ()
    # The payload's stdio is a pty of the container's own devpts (an OCI
    # process.terminal): the payload opens it (steps.step_console), init hands the
    # master to the supervisor; needs mounts.devpts.
    console: bool = False
    version: int = PLAN_VERSION
    notes: tuple[str, ...] = field(default=())

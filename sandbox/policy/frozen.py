# ruff: noqa: E501 - generated lines
"""Pydantic-free snapshots of the policy models: GENERATED, do not edit.

Made by ``tools/gen_frozen.py --write`` from ``sandbox/policy/model.py``.
Pydantic validates at load (``sandbox.policy.load``); below that, every
policy is one of these frozen dataclasses: the run path, the concerns,
verification. The CLI's profile cache rebuilds them from JSON
(``sandbox.codec.from_data``) without importing pydantic. They carry the
same fields, and ``sandbox.policy.snapshot.Snapshot`` gives them the pydantic
methods they need, with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sandbox.policy.snapshot import Snapshot, env_resolved


@dataclass(frozen=True)
class Layers(Snapshot):
    """Snapshot of ``sandbox.policy.model.Layers``."""

    namespaces: Literal["required", "degradable", "disabled"]
    overlay: Literal["required", "degradable", "disabled"]
    capabilities: Literal["required", "degradable", "disabled"]
    no_new_privs: Literal["required", "degradable", "disabled"]
    landlock: Literal["required", "degradable", "disabled"]
    apparmor: Literal["required", "degradable", "disabled"]
    seccomp: Literal["required", "degradable", "disabled"]
    cgroups: Literal["required", "degradable", "disabled"]
    file_mediation: bool

@dataclass(frozen=True)
class Namespaces(Snapshot):
    """Snapshot of ``sandbox.policy.model.Namespaces``."""

    pid: bool
    mount: bool
    net: bool
    ipc: bool
    uts: bool
    cgroup: bool
    time: bool
    nested_userns: bool

@dataclass(frozen=True)
class Identity(Snapshot):
    """Snapshot of ``sandbox.policy.model.Identity``."""

    uid: int
    gid: int
    hostname: str
    user: str

@dataclass(frozen=True)
class Bind(Snapshot):
    """Snapshot of ``sandbox.policy.model.Bind``."""

    source: str
    target: str
    writable: bool
    exec: bool
    optional: bool

@dataclass(frozen=True)
class Tmpfs(Snapshot):
    """Snapshot of ``sandbox.policy.model.Tmpfs``."""

    target: str
    size: int

@dataclass(frozen=True)
class Filesystem(Snapshot):
    """Snapshot of ``sandbox.policy.model.Filesystem``."""

    rootfs: list[str]
    host_dirs: list[str]
    etc_allowlist: str
    writable: list[str]
    binds: list[Bind]
    tmpfs: list[Tmpfs]
    disk: int
    disk_inodes: int
    proc: Literal["pid", "full"]
    workdir: str
    exec_paths: list[str]
    map_paths: list[str]
    read_paths: list[str]
    list_paths: list[str]

@dataclass(frozen=True)
class Limits(Snapshot):
    """Snapshot of ``sandbox.policy.model.Limits``."""

    cpu_time: float | None
    wall_time: float | None
    memory: int | None
    processes: int | None
    output: int | None
    file_size: int | None
    open_files: int | None
    stack: int | Literal["memory", "unlimited"] | None
    address_space: int | None
    memlock: int | None
    msgqueue: int | None
    sigpending: int | None
    cpuset: str | None
    cpu_quota: float | None
    io_read_bps: dict[str, int]
    io_write_bps: dict[str, int]
    io_read_iops: dict[str, int]
    io_write_iops: dict[str, int]
    hugetlb: dict[str, int]
    net_classid: int | None
    net_prio: dict[str, int]

@dataclass(frozen=True)
class SeccompRule(Snapshot):
    """Snapshot of ``sandbox.policy.model.SeccompRule``."""

    syscall: str
    arg: int
    mask: int
    values: list[int]
    match: str
    otherwise: str

@dataclass(frozen=True)
class Seccomp(Snapshot):
    """Snapshot of ``sandbox.policy.model.Seccomp``."""

    default_action: Literal["kill_process", "kill_thread", "trap", "errno", "notify", "log", "allow"]
    default_errno: str
    groups: list[str]
    allow: list[str]
    deny: list[str]
    errno: dict[str, str]
    rules: list[SeccompRule]

@dataclass(frozen=True)
class Capabilities(Snapshot):
    """Snapshot of ``sandbox.policy.model.Capabilities``."""

    keep: list[str]
    deny: list[str]

@dataclass(frozen=True)
class Network(Snapshot):
    """Snapshot of ``sandbox.policy.model.Network``."""

    mode: Literal["none", "loopback"]
    tcp_ports: list[int]

@dataclass(frozen=True)
class AppArmor(Snapshot):
    """Snapshot of ``sandbox.policy.model.AppArmor``."""

    extra_rules: list[str]

@dataclass(frozen=True)
class Env(Snapshot):
    """Snapshot of ``sandbox.policy.model.Env``."""

    path: str
    home: str
    lang: str
    vars: dict[str, str]

    def resolved(self) -> dict[str, str]:
        """The environment the payload gets."""
        return env_resolved(self)

@dataclass(frozen=True)
class Policy(Snapshot):
    """Snapshot of ``sandbox.policy.model.Policy``."""

    name: str
    description: str
    layers: Layers
    namespaces: Namespaces
    identity: Identity
    filesystem: Filesystem
    limits: Limits
    seccomp: Seccomp
    capabilities: Capabilities
    network: Network
    apparmor: AppArmor
    env: Env

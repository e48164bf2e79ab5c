"""The policy: what a profile says, validated at the trust boundary.

This is the only module (with ``load``) that imports pydantic. Every model is
frozen and rejects unknown keys, so a typo in a profile is an error, never a
silently ignored rule. Sizes accept ``64M``-style strings; every limit must be
finite, positive and within what the kernel interface that enforces it
accepts: ``-1``, ``0``, ``nan`` and ``inf`` are errors, never "unlimited"
(leave the key out for that), and a value so large that the kernel would
read it as "no limit" (``memory.max`` above ``PAGE_COUNTER_MAX`` pages,
``size=0`` for tmpfs) is refused here, before anything is built.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    model_validator,
)

from sandbox.layers import LAYERS  # noqa: F401 - re-exported
from sandbox.policy.snapshot import env_resolved

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: object) -> int:
    """Turn ``4096``, ``"64K"``, ``"1.5M"``-free integers-with-unit into bytes.

    Raises:
        ValueError: for negative numbers, fractions and unknown units.
    """
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '64M'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size {value} is negative; omit the key for no limit")
        return value
    if isinstance(value, str):
        if value.strip().startswith("-"):
            raise ValueError(f"size {value} is negative; omit the key for no limit")
        m = _SIZE_RE.match(value)
        if not m:
            raise ValueError(f"bad size {value!r}: use a byte count or a number with K, M, G or T")
        return int(m.group(1)) * _UNITS[m.group(2).upper()]
    raise ValueError(f"bad size {value!r}: use a byte count or a number with K, M, G or T")


# The largest value each kernel interface takes as a *limit*. Above it the kernel
# refuses the value, or reads it as "no limit"; a profile's limit must never turn
# into none. (How large is too large for a run is the lint's business: SBX160.)
MAX_BYTES = 1 << 60  # memory.max clamps above PAGE_COUNTER_MAX pages (~2^63 B) to "max";
#                      tmpfs size=, io.max bps and rlimits are u64: 1 EiB is below all of them
MAX_SECONDS = (2**31 - 1) // 1000  # the supervisor waits in epoll_wait: an int of milliseconds
MAX_CPUS = 8192  # NR_CPUS's ceiling (x86_64, arm64): a cpu.max quota beyond it means nothing
MAX_TASKS = 1 << 22  # PID_MAX_LIMIT: pids.max refuses more (EINVAL)
MAX_NOFILE = 2147483584  # sysctl_nr_open_max (64-bit): RLIMIT_NOFILE above fs.nr_open is EPERM
MAX_RLIMIT = (1 << 63) - 1  # an rlim_t below RLIM_INFINITY (setrlimit's own limit in Python)
MAX_INODES = ((1 << 64) - 1) // 1024  # tmpfs nr_inodes: ULONG_MAX / BOGO_INODE_SIZE (shmem)
MAX_IOPS = (1 << 32) - 1  # blk-throttle keeps an iops limit in an unsigned int


def _within(high: float, unit: str = "") -> AfterValidator:
    """``0 < value <= high``, with a message naming the bound that was crossed."""

    def check(value: float) -> float:
        if value <= 0:
            raise ValueError(f"{value} must be greater than 0; omit the key for no limit")
        if value > high:
            raise ValueError(f"{value} is above {high}{unit}, the most the kernel takes as a limit")
        return value

    return AfterValidator(check)


STACK_WORDS = ("memory", "unlimited")


def _stack(value: object) -> object:
    """``limits.stack``: a size within MAX_BYTES, or ``"memory"`` / ``"unlimited"``."""
    if value in STACK_WORDS:
        return value
    size = parse_size(value)
    if size <= 0:
        raise ValueError(f"{size} must be greater than 0; omit the key for no limit")
    if size > MAX_BYTES:
        raise ValueError(f"{size} is above {MAX_BYTES} bytes, the most the kernel takes as a limit")
    return size


def _abs_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"path {value!r} must be absolute")
    if "\0" in value:
        raise ValueError("path contains a NUL byte")
    parts = [p for p in value.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"path {value!r} must not contain '.' or '..' components")
    return "/" + "/".join(parts)


def _profiles_file(value: str) -> str:
    """A file inside profiles/ (the reviewed data): relative, no '..', no NUL.

    An absolute path or '..' chose the /etc allow-list from anywhere on the
    host (issue 13), and with it which host /etc files a run can read.
    """
    parts = value.split("/")
    if (
        not value
        or value.startswith("/")
        or "\0" in value
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ValueError(
            f"{value!r} must name a file inside profiles/ (relative, no '.' or '..' parts)"
        )
    return value


def _glob_path(value: str) -> str:
    if "*" in value.rsplit("/", 1)[0]:
        raise ValueError(f"path {value!r}: '*' may only appear in the last component")
    return value


Size = Annotated[int, BeforeValidator(parse_size), _within(MAX_BYTES, " bytes")]
# Checked whole by one validator: a union would report each branch's error.
StackSize = Annotated[int | Literal["memory", "unlimited"], PlainValidator(_stack)]
Seconds = Annotated[float, Field(allow_inf_nan=False), _within(MAX_SECONDS, " s")]
Cpus = Annotated[float, Field(allow_inf_nan=False), _within(MAX_CPUS, " CPUs")]
Tasks = Annotated[int, _within(MAX_TASKS)]
Files = Annotated[int, _within(MAX_NOFILE)]
Rlimit = Annotated[int, _within(MAX_RLIMIT)]
Inodes = Annotated[int, _within(MAX_INODES)]
Iops = Annotated[int, _within(MAX_IOPS)]
IfName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,15}$")]
MAX_U32 = 0xFFFFFFFF
Priority = Annotated[int, _within(MAX_U32)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
GlobPath = Annotated[str, AfterValidator(_abs_path), AfterValidator(_glob_path)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# How a layer must be enforced: "required" fails closed, "degradable" runs with
# the layer recorded as partial/off, "disabled" never applies it.
LayerMode = Literal["required", "degradable", "disabled"]


class Layers(_Model):
    """Per-layer enforcement requirements (fail closed unless ``degradable``)."""

    namespaces: LayerMode = "required"
    overlay: LayerMode = "required"
    capabilities: LayerMode = "required"
    no_new_privs: LayerMode = "required"
    landlock: LayerMode = "degradable"
    apparmor: LayerMode = "degradable"
    seccomp: LayerMode = "required"
    cgroups: LayerMode = "required"
    file_mediation: bool = Field(
        default=True,
        description="Require file access mediation by Landlock (ABI >= 2) or AppArmor, or both.",
    )


class Namespaces(_Model):
    """Which namespaces the payload gets. The user namespace is always new."""

    pid: bool = True
    mount: bool = True
    net: bool = True
    ipc: bool = True
    uts: bool = True
    cgroup: bool = True
    time: bool = Field(default=True, description="Only where the kernel has time namespaces.")
    nested_userns: bool = Field(
        default=False,
        description="Allow the payload to create user namespaces (user.max_user_namespaces > 0).",
    )


class Identity(_Model):
    """Ids the payload runs as inside its user namespace, and the hostname."""

    uid: int = Field(default=1000, ge=1, le=65533)
    gid: int = Field(default=1000, ge=1, le=65533)
    hostname: str = Field(default="sandbox", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
    user: str = Field(default="sandbox", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")


class Bind(_Model):
    """A host path made visible inside (read-only unless ``writable``)."""

    source: AbsPath = Field(description="Host path (a directory); symlinks only root's.")
    target: AbsPath = Field(description="Where the payload sees it.")
    writable: bool = Field(default=False, description="Read-write instead of read-only.")
    exec: bool = Field(default=True, description="Allow executing files from this bind.")
    optional: bool = Field(default=False, description="Skip instead of failing when missing.")


class Tmpfs(_Model):
    """An empty tmpfs, writable by the payload, with a size limit."""

    target: AbsPath = Field(description="Where the payload sees it.")
    size: Size = Field(default=16 << 20, description="Bytes it may hold.")


class Filesystem(_Model):
    """The container's root: an overlay over read-only lower layers."""

    rootfs: list[AbsPath] = Field(
        default_factory=list,
        description="Lower layers, top first; empty means the default image from the host.",
    )
    host_dirs: list[AbsPath] = Field(
        default_factory=lambda: ["/usr"],
        description="Host directories bound read-only into the default image.",
    )
    etc_allowlist: Annotated[str, AfterValidator(_profiles_file)] = Field(
        default="etc-allowlist.txt",
        description="File (relative to profiles/) listing host /etc entries copied in.",
    )
    writable: list[AbsPath] = Field(default_factory=lambda: ["/box", "/tmp"])
    binds: list[Bind] = Field(default_factory=list)
    tmpfs: list[Tmpfs] = Field(default_factory=list)
    disk: Size = Field(default=64 << 20, description="Bytes of the writable upper layer.")
    disk_inodes: Inodes = 16384
    proc: Literal["pid", "full"] = Field(
        default="pid", description="'pid': /proc shows processes only (subset=pid)."
    )
    workdir: AbsPath = "/box"
    exec_paths: list[GlobPath] = Field(
        default_factory=lambda: ["/usr", "/box"],
        description="Trees or single files the payload may execute or map as code "
        "(Landlock/AppArmor).",
    )
    map_paths: list[GlobPath] = Field(
        default_factory=list,
        description="Trees or single files the payload may map as code (mmap PROT_EXEC: "
        "shared libraries, extension modules) without executing them: AppArmor 'm'; "
        "Landlock cannot tell mapping from reading and grants read.",
    )
    read_paths: list[GlobPath] = Field(
        default_factory=lambda: ["/usr", "/etc", "/box", "/tmp", "/dev", "/proc"],
        description="Trees or single files the payload may read (Landlock/AppArmor); a "
        "'*' in the last component is a glob matched inside the container.",
    )
    list_paths: list[GlobPath] = Field(
        default_factory=list,
        description="Directories whose entries the payload may list, without reading the "
        "files in them (Landlock READ_DIR, AppArmor the directory itself).",
    )


class Limits(_Model):
    """Resource limits; a missing key means no limit from this profile."""

    cpu_time: Seconds | None = Field(
        default=None, description="CPU seconds of all the run's processes (cgroup, polled)."
    )
    wall_time: Seconds | None = Field(default=None, description="Seconds from execve.")
    memory: Size | None = Field(default=None, description="cgroup memory limit; swap is off.")
    processes: Tasks | None = Field(default=None, description="cgroup pids.max (+RLIMIT_NPROC).")
    output: Size | None = Field(default=None, description="Bytes of stdout and stderr together.")
    file_size: Size | None = Field(default=None, description="RLIMIT_FSIZE.")
    open_files: Files | None = Field(default=None, description="RLIMIT_NOFILE.")
    stack: StackSize | None = Field(
        default=None,
        description="RLIMIT_STACK: bytes, 'memory' (as large as the memory limit, so deep "
        "recursion is bounded only by it, as in isolate) or 'unlimited'. Left out: the "
        "caller's own stack limit.",
    )
    address_space: Size | None = Field(
        default=None,
        description="RLIMIT_AS: bytes of address space of each process (isolate's -m, "
        "DMOJ's limit): an allocation past it fails, touched or not.",
    )
    memlock: Size | None = Field(default=None, description="RLIMIT_MEMLOCK.")
    msgqueue: Size | None = Field(default=None, description="RLIMIT_MSGQUEUE.")
    sigpending: Rlimit | None = Field(default=None, description="RLIMIT_SIGPENDING.")
    cpuset: str | None = Field(
        default=None,
        pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$",
        description="CPUs the run may use, e.g. '0' or '0-1' (cgroup cpuset).",
    )
    cpu_quota: Cpus | None = Field(default=None, description="CPUs worth of time, e.g. 0.5.")
    io_read_bps: dict[str, Size] = Field(
        default_factory=dict, description="Device (path or MAJ:MIN) -> read bytes/s (cgroup io)."
    )
    io_write_bps: dict[str, Size] = Field(
        default_factory=dict, description="Device -> write bytes/s (v1: O_DIRECT writes only)."
    )
    io_read_iops: dict[str, Iops] = Field(default_factory=dict, description="Device -> reads/s.")
    io_write_iops: dict[str, Iops] = Field(default_factory=dict, description="Device -> writes/s.")
    hugetlb: dict[Annotated[str, Field(pattern=r"^\d+[KMG]B$")], Size] = Field(
        default_factory=dict,
        description="Huge page size (e.g. '2MB') -> bytes of huge pages (cgroup hugetlb).",
    )
    net_classid: Annotated[int, _within(MAX_U32)] | None = Field(
        default=None,
        description="Class id tagged on the run's packets (cgroup v1 net_cls; no v2 equivalent).",
    )
    net_prio: dict[IfName, Priority] = Field(
        default_factory=dict,
        description="Interface -> priority of the run's packets (cgroup v1 net_prio).",
    )


SeccompAction = Literal["kill_process", "kill_thread", "trap", "errno", "notify", "log", "allow"]
_OUTCOME = r"^(allow|default|E[A-Z0-9]+)$"


class SeccompRule(_Model):
    """A profile's own argument rule (same keys as ``[[rules]]`` in a syscall group).

    ``match`` applies when ``args[arg] & mask`` is one of ``values``, otherwise
    ``otherwise``; each is ``"allow"``, ``"default"`` or an errno name. A syscall
    a selected group already treats cannot get a profile rule (ambiguity is an
    error), and ``deny`` still wins over any rule.
    """

    syscall: str = Field(description="The syscall's name (x86_64 spelling).")
    arg: int = Field(ge=0, le=5, description="Which argument (0-5).")
    mask: int = Field(ge=1, le=0xFFFFFFFFFFFFFFFF, description="Bits of it compared.")
    values: list[int] = Field(min_length=1, description="args[arg] & mask in these: match.")
    match: str = Field(pattern=_OUTCOME, description="'allow', 'default' or an errno name.")
    otherwise: str = Field(pattern=_OUTCOME, description="The same, for other values.")


class Seccomp(_Model):
    """Syscall allow-list assembled from groups in ``seccomp_policies/``."""

    default_action: SeccompAction = "kill_process"
    default_errno: str = Field(default="EPERM", pattern=r"^E[A-Z0-9]+$")
    groups: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(
        default_factory=list, description="Never allowed, whatever a child profile adds."
    )
    errno: dict[str, str] = Field(
        default_factory=dict, description="Syscalls answered with an errno instead of the default."
    )
    rules: list[SeccompRule] = Field(
        default_factory=list,
        description="Argument rules of this profile (e.g. learned ioctl requests or clone flags).",
    )


class Capabilities(_Model):
    """Capabilities kept in the payload's bounding/permitted/effective sets."""

    keep: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


Port = Annotated[int, Field(ge=0, le=65535)]


class Network(_Model):
    """Only loopback exists in the payload's network namespace."""

    mode: Literal["none", "loopback"] = "loopback"
    tcp_ports: list[Port] = Field(
        default_factory=list,
        description="TCP ports the payload may bind and connect to on its loopback (a "
        "client/server task): Landlock NET_PORT rules, AF_INET/AF_INET6 sockets in "
        "seccomp (the sockets_tcp group in place of sockets_local), AppArmor inet stream "
        "rules. 0 lets bind() pick an ephemeral port. Needs mode = 'loopback'.",
    )

    @model_validator(mode="after")
    def _ports_need_loopback(self) -> Network:
        if self.tcp_ports and self.mode != "loopback":
            raise ValueError("tcp_ports needs network.mode = 'loopback'")
        return self


class AppArmor(_Model):
    """Extra knobs for the generated per-program AppArmor profile."""

    extra_rules: list[str] = Field(default_factory=list)


class Env(_Model):
    """The payload's environment: clean (nothing from the caller), built from these."""

    path: str = "/usr/local/bin:/usr/bin:/bin"
    home: str = "/box"
    lang: str = "C.UTF-8"
    vars: dict[str, str] = Field(default_factory=dict, description="Extra variables (win).")

    def resolved(self) -> dict[str, str]:
        """The environment the payload gets."""
        return env_resolved(self)


class Policy(_Model):
    """A resolved profile: everything needed to build a launch plan."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    layers: Layers = Field(default_factory=Layers)
    namespaces: Namespaces = Field(default_factory=Namespaces)
    identity: Identity = Field(default_factory=Identity)
    filesystem: Filesystem = Field(default_factory=Filesystem)
    limits: Limits = Field(default_factory=Limits)
    seccomp: Seccomp = Field(default_factory=Seccomp)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    network: Network = Field(default_factory=Network)
    apparmor: AppArmor = Field(default_factory=AppArmor)
    env: Env = Field(default_factory=Env)

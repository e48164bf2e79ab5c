"""Plain data of the cgroup layer: limits in, enforcement report and figures out.

Pure module (no I/O), imported by the supervisor and by the planner. All types
are frozen dataclasses; the policy layer (pydantic) converts a validated
``Limits`` into a :class:`CgroupLimits`. Every field is optional: ``None`` means
"no limit from this run", never "unlimited forced on the parent".

Controller names are the cgroup v2 ones (``io``, not ``blkio``) plus three
logical names with no v2 controller behind them: ``cpuacct`` (CPU accounting:
v1 cpuacct, v2 ``cpu.stat``), ``freezer`` (v1 freezer, v2 ``cgroup.freeze``)
and ``devices`` (v1 devices list, v2 eBPF program).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from sandbox.errors import PolicyError

#: Every controller this package knows, in the order leaves are set up.
CONTROLLERS = (
    "freezer",
    "cpuacct",
    "memory",
    "pids",
    "cpu",
    "cpuset",
    "io",
    "hugetlb",
    "devices",
    "net_cls",
    "net_prio",
)
#: Controllers every leaf uses whatever the limits: accounting, kill, devices.
ALWAYS = frozenset({"freezer", "cpuacct", "memory", "pids", "cpu", "io", "devices"})

_DEV_RE = re.compile(r"^\d+:\d+$")
_CPUS_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
_PAGE_RE = re.compile(r"^\d+[KMG]B$")


@dataclass(frozen=True, slots=True)
class IoLimit:
    """Throttle for one block device ``MAJ:MIN``; ``None`` fields are unlimited.

    On cgroup v1 (blkio) buffered writes are not throttled: writeback is
    charged to the flusher, so only reads and O_DIRECT writes are limited.
    """

    device: str
    rbps: int | None = None
    wbps: int | None = None
    riops: int | None = None
    wiops: int | None = None

    def __post_init__(self) -> None:
        if not _DEV_RE.match(self.device):
            raise PolicyError(f"io device {self.device!r} must be MAJ:MIN, e.g. '7:0'")
        for name in ("rbps", "wbps", "riops", "wiops"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PolicyError(f"io {self.device} {name}={value} must be > 0")


@dataclass(frozen=True, slots=True)
class DeviceRule:
    """One allow rule, as in v1 ``devices.allow``: ``c 1:3 rw``.

    ``kind`` is ``"c"``, ``"b"`` or ``"a"`` (all); ``major``/``minor`` of
    ``None`` match any number; ``access`` is a subset of ``"rwm"``.
    """

    kind: str
    major: int | None = None
    minor: int | None = None
    access: str = "rw"

    def __post_init__(self) -> None:
        if self.kind not in ("a", "b", "c"):
            raise PolicyError(f"device rule kind {self.kind!r} must be 'a', 'b' or 'c'")
        if not self.access or set(self.access) - set("rwm"):
            raise PolicyError(f"device rule access {self.access!r} must be a subset of 'rwm'")

    def v1(self) -> str:
        """The rule in v1 ``devices.allow`` syntax."""
        if self.kind == "a":
            return f"a *:* {self.access}"
        num = [("*" if n is None else str(n)) for n in (self.major, self.minor)]
        return f"{self.kind} {num[0]}:{num[1]} {self.access}"


#: The default allow-list: exactly the nodes the launcher's minimal /dev holds
#: (STYLE B5 step 10): null, zero, full, random, urandom, read/write, no mknod.
#: No tty, ptmx or pts: the payload runs in its own session without a
#: controlling terminal, and a pty is a way to talk to a terminal outside.
#: Add ``DEVICES_TTY`` for programs that need a terminal.
DEFAULT_DEVICES: tuple[DeviceRule, ...] = tuple(
    DeviceRule("c", 1, minor) for minor in (3, 5, 7, 8, 9)
)
DEVICES_TTY: tuple[DeviceRule, ...] = (
    DeviceRule("c", 5, 0),
    DeviceRule("c", 5, 2),
    DeviceRule("c", 136, None),
)


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """Limits for one run's leaf. Swap is always 0 where the kernel can say so.

    Attributes:
        memory: bytes of memory (anonymous, page cache, tmpfs pages the run writes,
            kernel memory). Exceeding it OOM-kills the run (v2: the whole group).
        pids: tasks (processes and threads) at once.
        cpu_quota: CPUs worth of time per period, e.g. 0.5 (cpu.max / cfs_quota_us).
        cpu_weight: 1..10000, v2 ``cpu.weight`` (v1 ``cpu.shares`` = weight*1024/100).
        cpuset: CPUs the run may use, e.g. ``"0"`` or ``"0-1"``.
        io: per-device throttles.
        hugetlb: ``{"2MB": bytes}`` per huge page size.
        devices: allow-list; ``None`` means :data:`DEFAULT_DEVICES`; everything
            else is denied.
        net_classid, net_prio: only where a v1 net_cls/net_prio hierarchy is mounted.
    """

    memory: int | None = None
    pids: int | None = None
    cpu_quota: float | None = None
    cpu_weight: int | None = None
    cpuset: str | None = None
    io: tuple[IoLimit, ...] = ()
    hugetlb: Mapping[str, int] = field(default_factory=dict)
    devices: tuple[DeviceRule, ...] | None = None
    net_classid: int | None = None
    net_prio: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("memory", "pids", "cpu_quota"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise PolicyError(f"cgroup limit {name}={value} must be > 0")
        if self.cpu_weight is not None and not 1 <= self.cpu_weight <= 10000:
            raise PolicyError(f"cpu_weight={self.cpu_weight} must be in 1..10000")
        if self.cpuset is not None and not _CPUS_RE.match(self.cpuset):
            raise PolicyError(f"cpuset {self.cpuset!r} must look like '0' or '0-1,3'")
        for size, limit in self.hugetlb.items():
            if not _PAGE_RE.match(size) or limit < 0:
                raise PolicyError(f"hugetlb {size}={limit}: use e.g. {{'2MB': 4194304}}")

    def needs(self) -> frozenset[str]:
        """Controllers a leaf with these limits uses."""
        extra = {
            "cpuset": self.cpuset is not None,
            "hugetlb": bool(self.hugetlb),
            "net_cls": self.net_classid is not None,
            "net_prio": bool(self.net_prio),
        }
        return ALWAYS | {name for name, wanted in extra.items() if wanted}

    @property
    def device_rules(self) -> tuple[DeviceRule, ...]:
        """The effective allow-list."""
        return DEFAULT_DEVICES if self.devices is None else self.devices


class State(enum.Enum):
    """How well a controller is enforced (rust-landlock's CompatState)."""

    FULL = "full"
    PARTIAL = "partial"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class ControllerReport:
    """One controller's line in the run record."""

    controller: str
    state: State
    detail: str
    where: str | None = None  # the leaf directory that enforces it


@dataclass(frozen=True, slots=True)
class CgroupStats:
    """Figures of a leaf, over all tasks that were ever in it.

    ``None`` means the controller holding that figure is off. Times are in
    nanoseconds; ``memory_peak`` is the cgroup's high-water mark (v2
    ``memory.peak``, v1 ``memory.max_usage_in_bytes``; ``memory_peak_source``
    names the file), not a process's max RSS.
    """

    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_nr_periods: int | None = None
    cpu_nr_throttled: int | None = None
    cpu_throttled_ns: int | None = None
    memory_peak: int | None = None
    memory_peak_source: str | None = None
    memory_current: int | None = None
    memory_limit_hits: int | None = None
    oom_kills: int | None = None
    oom_killed: bool = False
    pids_current: int | None = None
    pids_limit_hits: int | None = None
    io_read_bytes: int | None = None
    io_write_bytes: int | None = None
    io_read_ios: int | None = None
    io_write_ios: int | None = None
    hugetlb_limit_hits: int | None = None

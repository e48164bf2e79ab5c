"""cgroup v1 backend: one hierarchy per controller (or a few co-mounted).

Supervisor side. Writes limits into a leaf of each v1 hierarchy and reads its
figures. v1 differences that matter here, each reported in the run record:
swap is limited through ``memory.memsw.*`` (absent without swap accounting);
the OOM killer kills one task, not the group (there is no ``memory.oom.group``);
blkio throttles reads and O_DIRECT writes only (buffered writeback is issued
by the flusher, outside the run's cgroup); a new cpuset cgroup is empty and
takes no task until ``cpuset.mems`` and ``cpuset.cpus`` are set; killing is
freeze, SIGKILL, thaw, repeated (there is no ``cgroup.kill``). CPU time:
``cpuacct.usage`` is exact, but ``cpuacct.usage_user``/``_sys`` are split
per tick and need not add up to it (seen on 6.18: user 104 ms of a 99 ms
usage), so judges should bill ``cpu_usage_ns``.
"""

from __future__ import annotations

import os

from sandbox.cgroups.base import (
    Figures,
    flat_keyed,
    freeze_kill,
    read_int,
    report,
)
from sandbox.cgroups.detect import Hierarchy
from sandbox.cgroups.kernel import CgroupIO
from sandbox.cgroups.model import CgroupLimits, ControllerReport, State

CFS_PERIOD_US = 100_000
_IO_FILES = (
    ("rbps", "read_bps_device"),
    ("wbps", "write_bps_device"),
    ("riops", "read_iops_device"),
    ("wiops", "write_iops_device"),
)
TMPFS_NOTE = "tmpfs pages the run writes (its upper layer, /tmp) are charged here"


def swap_active(io: CgroupIO) -> bool:
    """Whether any swap area is in use (/proc/swaps has more than its header)."""
    try:
        return len(io.read("/proc/swaps").strip().splitlines()) > 1
    except OSError:
        return True  # cannot tell: assume the worst


def _memory(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    if limits.memory is None:
        return report("memory", State.FULL, f"accounting only; {TMPFS_NOTE}", leaf)
    # limit_in_bytes first: memsw must never be below it.
    io.write(os.path.join(leaf, "memory.limit_in_bytes"), str(limits.memory))
    detail = (
        f"limit {limits.memory} bytes; {TMPFS_NOTE}; v1 OOM kills one task, "
        "the supervisor then kills the rest"
    )
    memsw = os.path.join(leaf, "memory.memsw.limit_in_bytes")
    if io.exists(memsw):
        io.write(memsw, str(limits.memory))
        return report("memory", State.FULL, detail + "; swap 0 (memsw = limit)", leaf)
    if not swap_active(io):
        return report("memory", State.FULL, detail + "; no swap on this host", leaf)
    io.write(os.path.join(leaf, "memory.swappiness"), "0")
    return report(
        "memory",
        State.PARTIAL,
        detail + "; swap NOT limited (kernel without swap "
        "accounting, boot with swapaccount=1); swappiness set to 0",
        leaf,
    )


def _cpu(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    parts = []
    if limits.cpu_quota is not None:
        quota = max(1000, round(limits.cpu_quota * CFS_PERIOD_US))
        io.write(os.path.join(leaf, "cpu.cfs_period_us"), str(CFS_PERIOD_US))
        io.write(os.path.join(leaf, "cpu.cfs_quota_us"), str(quota))
        parts.append(f"quota {quota}us per {CFS_PERIOD_US}us")
    if limits.cpu_weight is not None:
        shares = max(2, limits.cpu_weight * 1024 // 100)
        io.write(os.path.join(leaf, "cpu.shares"), str(shares))
        parts.append(f"shares {shares} (weight {limits.cpu_weight})")
    return report("cpu", State.FULL, ", ".join(parts) or "throttling figures only", leaf)


def _cpuset(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    if limits.cpuset is None:
        return report("cpuset", State.FULL, "no pinning", leaf)
    io.write(os.path.join(leaf, "cpuset.cpus"), limits.cpuset)
    return report("cpuset", State.FULL, f"cpus {limits.cpuset}", leaf)


def _io(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    note = (
        "v1 blkio throttles and counts reads and O_DIRECT writes only; buffered writes "
        "are written back by the flusher outside this cgroup"
    )
    done, writes = [], False
    for lim in limits.io:
        for key, name in _IO_FILES:
            value = getattr(lim, key)
            if value is not None:
                io.write(os.path.join(leaf, f"blkio.throttle.{name}"), f"{lim.device} {value}")
                done.append(f"{lim.device} {key}={value}")
                writes = writes or key.startswith("w")
    state = State.PARTIAL if writes else State.FULL
    return report("io", state, "; ".join([", ".join(done) or "accounting only", note]), leaf)


def _hugetlb(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    for size, limit in limits.hugetlb.items():
        io.write(os.path.join(leaf, f"hugetlb.{size}.limit_in_bytes"), str(limit))
        rsvd = os.path.join(leaf, f"hugetlb.{size}.rsvd.limit_in_bytes")
        if io.exists(rsvd):  # 5.7+: also refuse reservations (mmap fails, no SIGBUS later)
            io.write(rsvd, str(limit))
    sizes = ", ".join(f"{s}={n}" for s, n in limits.hugetlb.items())
    return report("hugetlb", State.FULL, f"limits {sizes}", leaf)


def _devices(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    io.write(os.path.join(leaf, "devices.deny"), "a")
    refused = []
    for rule in limits.device_rules:
        try:
            io.write(os.path.join(leaf, "devices.allow"), rule.v1())
        except PermissionError:
            refused.append(rule.v1())  # the parent does not allow it: it stays denied
    allowed = ", ".join(r.v1() for r in limits.device_rules)
    detail = f"deny all, allow {allowed or 'nothing'}"
    if refused:
        detail += f"; not granted by the parent, so denied: {', '.join(refused)}"
    return report("devices", State.FULL, detail, leaf)


def _net(io: CgroupIO, controller: str, leaf: str, limits: CgroupLimits) -> ControllerReport:
    if controller == "net_cls" and limits.net_classid is not None:
        io.write(os.path.join(leaf, "net_cls.classid"), str(limits.net_classid))
        return report(controller, State.FULL, f"classid {limits.net_classid:#x}", leaf)
    for ifname, prio in limits.net_prio.items():
        io.write(os.path.join(leaf, "net_prio.ifpriomap"), f"{ifname} {prio}")
    return report(controller, State.FULL, f"ifpriomap {dict(limits.net_prio)}", leaf)


def _service(io: CgroupIO, path: str) -> tuple[int, int]:
    """(Read, Write) totals of a blkio.throttle.io_service* file over all devices."""
    totals = {"Read": 0, "Write": 0}
    try:
        text = io.read(path)
    except FileNotFoundError:
        return 0, 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in totals:
            totals[parts[1]] += int(parts[2])
    return totals["Read"], totals["Write"]


class V1Backend:
    """cgroup v1: see the module docstring."""

    version = 1
    # "0" to tasks moves the writing thread only, so the kernel skips the
    # threadgroup lock whose RCU sync is the dearest step of a run (cgroup.procs:
    # about 6 ms over six hierarchies here; tasks: 0.15 ms). The payload is one
    # thread when it joins, and execve reaps any other.
    join_file = "tasks"

    def prepare_parent(self, io: CgroupIO, h: Hierarchy, controllers: set[str]) -> dict[str, str]:
        """Nothing to enable in v1: a child has every controller of its hierarchy."""
        return {}

    def init_leaf(self, io: CgroupIO, h: Hierarchy, leaf: str, controllers: set[str]) -> None:
        """A v1 cpuset child starts with empty cpus/mems and refuses tasks; copy the parent's."""
        if "cpuset" in controllers and h.parent is not None:
            for name in ("cpuset.mems", "cpuset.cpus"):
                io.write(os.path.join(leaf, name), io.read(os.path.join(h.parent, name)).strip())

    def apply(
        self, io: CgroupIO, controller: str, leaf: str, limits: CgroupLimits
    ) -> ControllerReport:
        """Write one controller's limits (see the module docstring for v1 caveats)."""
        if controller in ("net_cls", "net_prio"):
            return _net(io, controller, leaf, limits)
        fn = {
            "memory": _memory,
            "cpu": _cpu,
            "cpuset": _cpuset,
            "io": _io,
            "hugetlb": _hugetlb,
            "devices": _devices,
        }.get(controller)
        if fn is not None:
            return fn(io, leaf, limits)
        if controller == "pids":
            if limits.pids is None:
                return report("pids", State.FULL, "counting only", leaf)
            io.write(os.path.join(leaf, "pids.max"), str(limits.pids))
            return report("pids", State.FULL, f"max {limits.pids} tasks", leaf)
        if controller == "freezer":
            return report(
                "freezer",
                State.FULL,
                "freezer.state; kill = freeze, SIGKILL, thaw, repeat until empty",
                leaf,
            )
        return report(
            controller,
            State.FULL,
            "cpuacct.usage (exact); user/system split per tick, may not add up to it",
            leaf,
        )

    def stats(self, io: CgroupIO, controller: str, leaf: str) -> Figures:
        """Figures from v1 files; times in ns."""

        def path(name: str) -> str:
            return os.path.join(leaf, name)

        if controller == "cpuacct":
            return {
                "cpu_usage_ns": read_int(io, path("cpuacct.usage")),
                "cpu_user_ns": read_int(io, path("cpuacct.usage_user")),
                "cpu_system_ns": read_int(io, path("cpuacct.usage_sys")),
            }
        if controller == "cpu":
            st = flat_keyed(io.read(path("cpu.stat")))
            return {
                "cpu_nr_periods": st.get("nr_periods"),
                "cpu_nr_throttled": st.get("nr_throttled"),
                "cpu_throttled_ns": st.get("throttled_time"),
            }
        if controller == "memory":
            kills = flat_keyed(io.read(path("memory.oom_control"))).get("oom_kill")
            return {
                "memory_peak": read_int(io, path("memory.max_usage_in_bytes")),
                "memory_peak_source": "memory.max_usage_in_bytes",
                "memory_current": read_int(io, path("memory.usage_in_bytes")),
                "memory_limit_hits": read_int(io, path("memory.failcnt")),
                "oom_kills": kills,
                "oom_killed": bool(kills),
            }
        if controller == "pids":
            events = (
                flat_keyed(io.read(path("pids.events"))) if io.exists(path("pids.events")) else {}
            )
            return {
                "pids_current": read_int(io, path("pids.current")),
                "pids_limit_hits": events.get("max"),
            }
        if controller == "io":
            rbytes, wbytes = _service(io, path("blkio.throttle.io_service_bytes"))
            rios, wios = _service(io, path("blkio.throttle.io_serviced"))
            return {
                "io_read_bytes": rbytes,
                "io_write_bytes": wbytes,
                "io_read_ios": rios,
                "io_write_ios": wios,
            }
        if controller == "hugetlb":
            hits = [
                read_int(io, path(n)) or 0
                for n in io.entries(leaf)
                if n.startswith("hugetlb.") and n.endswith(".failcnt")
            ]
            return {"hugetlb_limit_hits": sum(hits)}
        return {}

    def usage_file(self, leaf: str) -> str:
        """cpuacct.usage: total ns, one number."""
        return os.path.join(leaf, "cpuacct.usage")

    def parse_usage(self, text: str) -> int:
        """The number in cpuacct.usage."""
        return int(text)

    def set_frozen(self, io: CgroupIO, leaf: str, frozen: bool) -> None:
        """freezer.state = FROZEN / THAWED."""
        io.write(os.path.join(leaf, "freezer.state"), "FROZEN" if frozen else "THAWED")

    def is_frozen(self, io: CgroupIO, leaf: str) -> bool:
        """freezer.state reads FREEZING until every task has stopped."""
        return io.read(os.path.join(leaf, "freezer.state")).strip() == "FROZEN"

    def kill(self, io: CgroupIO, leaf: str, deadline: float) -> None:
        """No cgroup.kill in v1: freeze, SIGKILL all, thaw, repeat."""
        freeze_kill(io, self, leaf, deadline)

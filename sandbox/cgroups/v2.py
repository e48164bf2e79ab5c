"""cgroup v2 backend: one unified hierarchy, controllers enabled per subtree.

Supervisor side. Before a leaf can use a controller, the parent must list it
in ``cgroup.subtree_control``; the *no internal processes* rule forbids that
in a non-root cgroup that holds processes, which is exactly the caller's own
cgroup when the caller sits in it. We never move the caller to work around
it (STYLE B6): the error says how the caller can (move itself into a child
such as ``<own>/supervisor``) or which delegated parent to name instead.
Controllers are only ever enabled, never disabled: siblings may use them.

Devices are an eBPF program (:mod:`sandbox.cgroups.bpfdev`), freezing is
``cgroup.freeze`` (5.2+), killing is ``cgroup.kill`` (5.14+, else freeze and
SIGKILL), the memory high-water mark ``memory.peak`` (5.19+).
"""

from __future__ import annotations

import errno
import os

from sandbox.cgroups import bpfdev
from sandbox.cgroups.base import Figures, flat_keyed, freeze_kill, read_int, report, wait_for
from sandbox.cgroups.detect import ENV_PARENT, V2_BUILTIN, Hierarchy
from sandbox.cgroups.kernel import CgroupIO
from sandbox.cgroups.model import CgroupLimits, ControllerReport, State
from sandbox.cgroups.v1 import CFS_PERIOD_US, TMPFS_NOTE, swap_active

_IO_KEYS = ("rbps", "wbps", "riops", "wiops")


def busy_fix(parent: str) -> str:
    """The no-internal-processes explanation, with both fixes."""
    return (
        f"{parent} holds processes and is not the root cgroup, and cgroup v2 lets a "
        "cgroup with processes enable no controller for its children (no internal "
        "processes rule). The sandbox never moves the caller: move the supervisor into a "
        f"child cgroup first (e.g. mkdir {parent}/supervisor and write its pid to "
        f"{parent}/supervisor/cgroup.procs), or set {ENV_PARENT} to a delegated cgroup "
        "without processes (e.g. a systemd unit with Delegate=yes)"
    )


def _busy(io: CgroupIO, cgroup: str) -> bool:
    """Holds processes and is not the root (only the root lacks cgroup.type)."""
    return io.exists(os.path.join(cgroup, "cgroup.type")) and bool(
        io.read(os.path.join(cgroup, "cgroup.procs")).split()
    )


def _memory(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    parts = [f"limit {limits.memory} bytes" if limits.memory else "no limit", TMPFS_NOTE]
    if limits.memory is not None:
        io.write(os.path.join(leaf, "memory.max"), str(limits.memory))
    # oom.group: an OOM kill takes the whole run, not one task of it (4.19+).
    io.write(os.path.join(leaf, "memory.oom.group"), "1")
    parts.append("OOM kills the whole group")
    swap = os.path.join(leaf, "memory.swap.max")
    if io.exists(swap):
        io.write(swap, "0")
        return report("memory", State.FULL, "; ".join([*parts, "swap 0"]), leaf)
    if not swap_active(io):
        return report("memory", State.FULL, "; ".join([*parts, "no swap on this host"]), leaf)
    return report(
        "memory",
        State.PARTIAL,
        "; ".join([*parts, "swap NOT limited (no memory.swap.max: swap accounting is off)"]),
        leaf,
    )


def _cpu(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    parts = []
    if limits.cpu_quota is not None:
        quota = max(1000, round(limits.cpu_quota * CFS_PERIOD_US))
        io.write(os.path.join(leaf, "cpu.max"), f"{quota} {CFS_PERIOD_US}")
        parts.append(f"cpu.max {quota} {CFS_PERIOD_US}")
    if limits.cpu_weight is not None:
        io.write(os.path.join(leaf, "cpu.weight"), str(limits.cpu_weight))
        parts.append(f"weight {limits.cpu_weight}")
    return report("cpu", State.FULL, ", ".join(parts) or "throttling figures only", leaf)


def _io(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    lines = []
    for lim in limits.io:
        keys = [f"{k}={getattr(lim, k)}" for k in _IO_KEYS if getattr(lim, k) is not None]
        if keys:
            line = f"{lim.device} {' '.join(keys)}"
            io.write(os.path.join(leaf, "io.max"), line)
            lines.append(line)
    return report("io", State.FULL, "; ".join(lines) or "accounting only", leaf)


def _hugetlb(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    for size, limit in limits.hugetlb.items():
        io.write(os.path.join(leaf, f"hugetlb.{size}.max"), str(limit))
        rsvd = os.path.join(leaf, f"hugetlb.{size}.rsvd.max")
        if io.exists(rsvd):  # 5.7+: refuse the reservation at mmap, not SIGBUS at fault
            io.write(rsvd, str(limit))
    sizes = ", ".join(f"{s}={n}" for s, n in limits.hugetlb.items())
    return report("hugetlb", State.FULL, f"limits {sizes}", leaf)


def _devices(io: CgroupIO, leaf: str, limits: CgroupLimits) -> ControllerReport:
    rules = limits.device_rules
    io.attach_device_program(leaf, bpfdev.build(rules))
    allowed = ", ".join(r.v1() for r in rules) or "nothing"
    return report(
        "devices", State.FULL, f"eBPF device program: allow {allowed}, deny the rest", leaf
    )


def _simple(io: CgroupIO, controller: str, leaf: str, limits: CgroupLimits) -> ControllerReport:
    if controller == "pids":
        if limits.pids is None:
            return report("pids", State.FULL, "counting only", leaf)
        io.write(os.path.join(leaf, "pids.max"), str(limits.pids))
        return report("pids", State.FULL, f"max {limits.pids} tasks", leaf)
    if controller == "cpuset":
        if limits.cpuset is None:
            return report("cpuset", State.FULL, "no pinning", leaf)
        io.write(os.path.join(leaf, "cpuset.cpus"), limits.cpuset)
        return report("cpuset", State.FULL, f"cpus {limits.cpuset}", leaf)
    if controller == "freezer":
        if not io.exists(os.path.join(leaf, "cgroup.freeze")):
            raise FileNotFoundError(errno.ENOENT, "no cgroup.freeze (kernel < 5.2)", leaf)
        how = (
            "cgroup.kill"
            if io.exists(os.path.join(leaf, "cgroup.kill"))
            else ("freeze, SIGKILL, thaw (no cgroup.kill before 5.14)")
        )
        return report("freezer", State.FULL, f"cgroup.freeze; kill = {how}", leaf)
    return report(controller, State.FULL, "cpu.stat usage/user/system", leaf)


class V2Backend:
    """cgroup v2: see the module docstring."""

    version = 2
    # Domain cgroups take whole processes only (cgroup.threads needs threaded mode).
    join_file = "cgroup.procs"

    def prepare_parent(self, io: CgroupIO, h: Hierarchy, controllers: set[str]) -> dict[str, str]:
        """Enable the controllers in the parent's subtree_control, all in one write.

        A busy non-root parent is never written to: the kernel accepts the
        threaded controllers (cpu, cpuset, pids) in a cgroup with processes,
        making it a thread root, and only then refuses the domain ones with
        EOPNOTSUPP (seen on 6.1), so trying would change the caller's cgroup
        and still fail.
        """
        assert h.parent is not None
        control = os.path.join(h.parent, "cgroup.subtree_control")
        enabled = set(io.read(control).split())
        problems: dict[str, str] = {}
        wanted = []
        for name in sorted(controllers - V2_BUILTIN - enabled):
            if name in h.controllers:
                wanted.append(name)
            else:
                problems[name] = (
                    f"{name} is not offered to {h.parent} (its parent does not "
                    "enable it in cgroup.subtree_control); delegate it"
                )
        if not wanted:
            return problems
        if _busy(io, h.parent):
            return problems | dict.fromkeys(wanted, busy_fix(h.parent))
        try:
            io.write(control, " ".join(f"+{name}" for name in wanted))
        except OSError:
            for name in wanted:  # find out which ones, and why
                try:
                    io.write(control, f"+{name}")
                except OSError as exc:
                    problems[name] = (
                        busy_fix(h.parent)
                        if exc.errno == errno.EBUSY
                        else f"cannot enable {name} in {control}: {exc.strerror}"
                    )
        return problems

    def init_leaf(self, io: CgroupIO, h: Hierarchy, leaf: str, controllers: set[str]) -> None:
        """Nothing: v2 cpuset inherits the parent's cpus and mems when left empty."""

    def apply(
        self, io: CgroupIO, controller: str, leaf: str, limits: CgroupLimits
    ) -> ControllerReport:
        """Write one controller's limits."""
        fn = {
            "memory": _memory,
            "cpu": _cpu,
            "io": _io,
            "hugetlb": _hugetlb,
            "devices": _devices,
        }.get(controller)
        return fn(io, leaf, limits) if fn else _simple(io, controller, leaf, limits)

    def stats(self, io: CgroupIO, controller: str, leaf: str) -> Figures:
        """Figures from v2 files; times converted to ns."""

        def path(name: str) -> str:
            return os.path.join(leaf, name)

        if controller in ("cpuacct", "cpu"):
            st = flat_keyed(io.read(path("cpu.stat")))
            if controller == "cpuacct":
                return {
                    "cpu_usage_ns": st["usage_usec"] * 1000,
                    "cpu_user_ns": st["user_usec"] * 1000,
                    "cpu_system_ns": st["system_usec"] * 1000,
                }
            throttled = st.get("throttled_usec")
            return {
                "cpu_nr_periods": st.get("nr_periods"),
                "cpu_nr_throttled": st.get("nr_throttled"),
                "cpu_throttled_ns": None if throttled is None else throttled * 1000,
            }
        if controller == "memory":
            ev = flat_keyed(io.read(path("memory.events")))
            peak = read_int(io, path("memory.peak"))
            kills = ev.get("oom_kill", 0)
            return {
                "memory_peak": peak,
                "memory_peak_source": "memory.peak" if peak is not None else None,
                "memory_current": read_int(io, path("memory.current")),
                "memory_limit_hits": ev.get("max"),
                "oom_kills": kills,
                "oom_killed": bool(kills or ev.get("oom_group_kill")),
            }
        if controller == "pids":
            return {
                "pids_current": read_int(io, path("pids.current")),
                "pids_limit_hits": flat_keyed(io.read(path("pids.events"))).get("max"),
            }
        if controller == "io":
            sums = dict.fromkeys(("rbytes", "wbytes", "rios", "wios"), 0)
            for line in io.read(path("io.stat")).splitlines():
                for kv in line.split()[1:]:
                    key, _, value = kv.partition("=")
                    if key in sums:
                        sums[key] += int(value)
            return {
                "io_read_bytes": sums["rbytes"],
                "io_write_bytes": sums["wbytes"],
                "io_read_ios": sums["rios"],
                "io_write_ios": sums["wios"],
            }
        if controller == "hugetlb":
            hits = [
                flat_keyed(io.read(path(n))).get("max", 0)
                for n in io.entries(leaf)
                if n.startswith("hugetlb.") and n.endswith(".events")
            ]
            return {"hugetlb_limit_hits": sum(hits)}
        return {}

    def usage_file(self, leaf: str) -> str:
        """cpu.stat, whose first line is ``usage_usec N`` whatever controllers are on."""
        return os.path.join(leaf, "cpu.stat")

    def parse_usage(self, text: str) -> int:
        """usage_usec in ns (first line; checked, not assumed)."""
        key, value, _ = text.split(maxsplit=2)
        if key != "usage_usec":
            return flat_keyed(text)["usage_usec"] * 1000
        return int(value) * 1000

    def set_frozen(self, io: CgroupIO, leaf: str, frozen: bool) -> None:
        """cgroup.freeze = 1 / 0."""
        io.write(os.path.join(leaf, "cgroup.freeze"), "1" if frozen else "0")

    def is_frozen(self, io: CgroupIO, leaf: str) -> bool:
        """cgroup.events says ``frozen 1`` once every task has stopped."""
        return flat_keyed(io.read(os.path.join(leaf, "cgroup.events"))).get("frozen") == 1

    def kill(self, io: CgroupIO, leaf: str, deadline: float) -> None:
        """cgroup.kill (atomic against forks), else freeze-kill; wait until empty."""
        kill_file = os.path.join(leaf, "cgroup.kill")
        if not io.exists(kill_file):
            freeze_kill(io, self, leaf, deadline)
            return
        io.write(kill_file, "1")
        events = os.path.join(leaf, "cgroup.events")
        wait_for(
            io,
            lambda: flat_keyed(io.read(events)).get("populated") == 0,
            deadline,
            f"{leaf} to empty after cgroup.kill",
        )

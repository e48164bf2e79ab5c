"""A tmpdir laid out like cgroupfs, with just enough kernel behaviour (youki set_fixture).

``FakeHost`` builds the mounts, the caller's cgroups, and the matching
/proc/self/cgroup and mountinfo text for one of three hosts: ``hybrid``
(like the development machine: v1 controllers, hugetlb on cgroup2),
``v1`` (cpu,cpuacct and net_cls,net_prio co-mounted) and ``v2``. Its
``FakeIO`` simulates what the code relies on: mkdir fills in interface files,
v2 ``subtree_control`` obeys the no-internal-processes rule, rmdir refuses a
populated cgroup, freeze/kill change state; and it records every write and
signal.
"""

from __future__ import annotations

import errno
import os
import shutil

from sandbox.cgroups.kernel import CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, CgroupIO

CALLER_PID = 4242

V1_FILES = {
    "cpu": {
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.shares": "1024",
        "cpu.stat": "nr_periods 7\nnr_throttled 3\nthrottled_time 5000\n",
    },
    "cpuacct": {
        "cpuacct.usage": "1500\n",
        "cpuacct.usage_user": "1000\n",
        "cpuacct.usage_sys": "500\n",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.limit_in_bytes": "9223372036854771712",
        "memory.memsw.limit_in_bytes": "9223372036854771712",
        "memory.max_usage_in_bytes": "1048576",
        "memory.usage_in_bytes": "4096",
        "memory.failcnt": "2",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    },
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED"},
    "blkio": {
        f"blkio.throttle.{n}": ""
        for n in ("read_bps_device", "write_bps_device", "read_iops_device", "write_iops_device")
    }
    | {
        "blkio.throttle.io_service_bytes": "7:0 Read 8192\n7:0 Write 4096\n7:0 Sync 0\n"
        "7:0 Total 12288\nTotal 12288\n",
        "blkio.throttle.io_serviced": "7:0 Read 2\n7:0 Write 1\nTotal 3\n",
    },
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 4\n"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "0", "hugetlb.2MB.failcnt": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": ""},
}
V2_FILES = {
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "memory": {
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.oom.group": "0",
        "memory.peak": "2097152",
        "memory.current": "8192",
        "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n",
    },
    "io": {
        "io.max": "",
        "io.stat": "7:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n"
        "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
    },
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"},
    "hugetlb": {
        "hugetlb.2MB.max": "max",
        "hugetlb.2MB.rsvd.max": "max",
        "hugetlb.2MB.events": "max 3\n",
    },
}
V2_CORE = {
    "cgroup.procs": "",
    "cgroup.type": "domain",
    "cgroup.subtree_control": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0",
    "cgroup.kill": "",
    "cpu.stat": "usage_usec 7\nuser_usec 4\nsystem_usec 3\n",
}
V2_CPU_STAT = "nr_periods 10\nnr_throttled 6\nthrottled_usec 9\n"

HOSTS = {
    "hybrid": [
        ("cgroup", "cpu", "cpu"),
        ("cgroup", "cpuacct", "cpuacct"),
        ("cgroup", "cpuset", "cpuset"),
        ("cgroup", "memory", "memory"),
        ("cgroup", "devices", "devices"),
        ("cgroup", "freezer", "freezer"),
        ("cgroup", "blkio", "blkio"),
        ("cgroup", "pids", "pids"),
        ("cgroup", "systemd", "name=systemd"),
        ("cgroup2", "unified", "hugetlb"),
    ],
    "v1": [
        ("cgroup", "cpu,cpuacct", "cpu,cpuacct"),
        ("cgroup", "memory", "memory"),
        ("cgroup", "pids", "pids"),
        ("cgroup", "freezer", "freezer"),
        ("cgroup", "devices", "devices"),
        ("cgroup", "net_cls,net_prio", "net_cls,net_prio"),
    ],
    "v2": [("cgroup2", "", "cpuset cpu io memory hugetlb pids")],
}


class FakeIO(CgroupIO):
    """CgroupIO over the tmpdir; see the module docstring."""

    def __init__(self, mounts: dict[str, tuple[str, list[str]]]) -> None:
        self.mounts = mounts  # fs path -> (fstype, controllers)
        self.writes: list[tuple[str, str]] = []
        self.signalled: list[int] = []
        self.programs: list[tuple[str, bytes]] = []
        self.readonly: set[str] = set()
        self.fail: dict[str, int] = {}  # file name -> errno for writes
        self.clock = 0.0

    def _mount_of(self, path: str) -> tuple[str, str, list[str]]:
        best = max((m for m in self.mounts if path == m or path.startswith(m + "/")), key=len)
        return best, *self.mounts[best]

    def _set(self, path: str, data: str) -> None:
        with open(path, "w") as f:
            f.write(data)

    def populate(self, path: str) -> None:
        """Fill a new cgroup directory like the kernel does."""
        _, fstype, ctrls = self._mount_of(path)
        if fstype == "cgroup":
            files = {"cgroup.procs": "", "tasks": ""}
            for c in ctrls:
                files |= V1_FILES.get(c, {})
        else:
            files = dict(V2_CORE)
            parent = os.path.dirname(path)
            enabled = self.read(os.path.join(parent, "cgroup.subtree_control")).split()
            files["cgroup.controllers"] = " ".join(enabled)
            for c in enabled:
                files |= V2_FILES.get(c, {})
            if "cpu" in enabled:
                files["cpu.stat"] += V2_CPU_STAT
        for name, data in files.items():
            self._set(os.path.join(path, name), data)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        self.populate(path)

    def rmdir(self, path: str) -> None:
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "no such cgroup", path)
        if self.read(os.path.join(path, "cgroup.procs")).split() or any(
            e.is_dir() for e in os.scandir(path)
        ):
            raise OSError(errno.EBUSY, "cgroup busy", path)
        shutil.rmtree(path)

    def writable(self, path: str) -> bool:
        return path not in self.readonly

    def statfs_magic(self, path: str) -> int:
        fstype = self._mount_of(path)[1]
        return CGROUP2_SUPER_MAGIC if fstype == "cgroup2" else CGROUP_SUPER_MAGIC

    def write(self, path: str, data: str) -> None:
        self.writes.append((path, data))
        name, leaf = os.path.basename(path), os.path.dirname(path)
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]), path)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "cgroupfs has no such file", path)
        if name == "cgroup.subtree_control":
            self._subtree_control(leaf, data)
        elif name == "freezer.state":
            self._set(path, data)
        elif name == "cgroup.freeze":
            self._set(path, data)
            self._set(os.path.join(leaf, "cgroup.events"), f"populated 0\nfrozen {data}\n")
        elif name == "cgroup.kill":
            self._set(os.path.join(leaf, "cgroup.procs"), "")
        elif name in ("devices.allow", "io.max") or name.startswith("blkio.throttle"):
            with open(path, "a") as f:
                f.write(data + "\n")
        else:
            self._set(path, data)

    def _subtree_control(self, cgroup: str, data: str) -> None:
        mount = self._mount_of(cgroup)[0]
        names = [t.lstrip("+-") for t in data.split()]
        offered = self.read(os.path.join(cgroup, "cgroup.controllers")).split()
        if any(n not in offered for n in names):
            raise OSError(errno.ENOENT, "controller not available", cgroup)
        if cgroup != mount and self.read(os.path.join(cgroup, "cgroup.procs")).split():
            raise OSError(errno.EBUSY, "no internal processes", cgroup)
        path = os.path.join(cgroup, "cgroup.subtree_control")
        enabled = set(self.read(path).split()) | set(names)
        self._set(path, " ".join(sorted(enabled)))

    def kill_listed(self, pids, still_listed):  # type: ignore[no-untyped-def]
        listed = self.read(still_listed).split()
        hit = [p for p in pids if str(p) in listed]
        self.signalled += hit
        self._set(still_listed, "\n".join(p for p in listed if int(p) not in hit))
        return len(hit)

    def attach_device_program(self, cgroup_dir: str, insns: bytes) -> None:
        self.programs.append((cgroup_dir, insns))

    def sleep(self, seconds: float) -> None:
        self.clock += seconds

    def monotonic(self) -> float:
        return self.clock


class FakeHost:
    """A fake host of ``kind`` under ``tmp``; the caller's cgroups are ``own``."""

    def __init__(self, tmp: str, kind: str, own: dict[str, str] | None = None) -> None:
        self.root = str(tmp)
        base = "/sys/fs/cgroup"
        mounts: dict[str, tuple[str, list[str]]] = {}
        lines, cg_lines = [], []
        own = own or {}
        for i, (fstype, sub, ctrls) in enumerate(HOSTS[kind]):
            mountpoint = f"{base}/{sub}".rstrip("/")
            fs = self.root + mountpoint
            os.makedirs(fs)
            if fstype == "cgroup":
                opts = ctrls
                mounts[fs] = (fstype, ctrls.split(","))
                cg_lines.append(f"{i + 1}:{ctrls}:{own.get(ctrls, '/')}")
                lines.append(
                    f"{30 + i} 25 0:{40 + i} / {mountpoint} rw,relatime shared:{i} "
                    f"- cgroup cgroup rw,{opts}"
                )
            else:
                mounts[fs] = (fstype, [])
                cg_lines.append(f"0::{own.get('', '/')}")
                lines.append(
                    f"{30 + i} 25 0:{40 + i} / {mountpoint} rw,relatime shared:{i} "
                    "- cgroup2 cgroup2 rw,nsdelegate"
                )
        self.io = FakeIO(mounts)
        for fs, (fstype, ctrls) in mounts.items():
            self._root_files(fs, fstype, ctrls, HOSTS[kind])
        self.mountinfo = (
            "\n".join(
                [
                    "22 1 0:21 / /proc rw - proc proc rw",
                    "25 22 0:24 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755",
                    *lines,
                ]
            )
            + "\n"
        )
        self.proc_self_cgroup = "\n".join(reversed(cg_lines)) + "\n"
        for key, path in own.items():
            self.make_cgroup(key, path, procs=[CALLER_PID])

    def _root_files(self, fs: str, fstype: str, ctrls: list[str], spec: list) -> None:
        io = self.io
        if fstype == "cgroup":
            io.populate(fs)
            for name, data in {"cpuset.cpus": "0-1", "cpuset.mems": "0"}.items():
                if "cpuset" in ctrls:
                    io._set(os.path.join(fs, name), data)
            io._set(os.path.join(fs, "cgroup.procs"), f"1\n{CALLER_PID}\n")
            return
        offered = next(c for t, _, c in spec if t == "cgroup2")
        for name, data in {
            "cgroup.procs": f"1\n{CALLER_PID}\n",
            "cgroup.controllers": offered,
            "cgroup.subtree_control": "",
            "cpu.stat": "usage_usec 1\nuser_usec 1\nsystem_usec 0\n",
        }.items():
            io._set(os.path.join(fs, name), data)
        if "memory" in offered:  # a pure v2 host: systemd enabled everything at the root
            io._set(os.path.join(fs, "cgroup.subtree_control"), offered)

    def mount_path(self, key: str) -> str:
        """Filesystem path of the mount whose controllers are ``key`` ('' for v2)."""
        for fs, (fstype, ctrls) in self.io.mounts.items():
            if (fstype == "cgroup2" and key == "") or ",".join(ctrls) == key:
                return fs
        raise KeyError(key)

    def make_cgroup(self, key: str, path: str, procs: list[int] | None = None) -> str:
        """mkdir -p a cgroup (as the kernel would fill it) and put ``procs`` in it."""
        fs = self.mount_path(key)
        parts = [p for p in path.split("/") if p]
        for i, part in enumerate(parts):
            fs = os.path.join(fs, part)
            if not os.path.isdir(fs):
                self.io.mkdir(fs)
                if key == "" and i < len(parts) - 1:  # systemd enables all below a slice
                    offered = self.io.read(os.path.join(fs, "cgroup.controllers"))
                    self.io._set(os.path.join(fs, "cgroup.subtree_control"), offered)
        self.io._set(os.path.join(fs, "cgroup.procs"), "\n".join(map(str, procs or [])))
        return fs

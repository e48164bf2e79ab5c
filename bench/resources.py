"""Counting what runs could leave behind: memory, fds, mounts, cgroups, netns, temp dirs, zombies.

``snapshot(server_pid)`` reads everything from /proc, /sys/fs/cgroup and the
sandbox's directories, for the supervisor (this process) and its fork
server. Host-wide counts (mounts, sbx-* leaves, network namespaces, /tmp)
also see other people's work on a shared machine, so ``leftovers(run_ids)``
checks exactly the resources named after this process's own runs.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

CGROUP_ROOTS = ("/sys/fs/cgroup",)
RUNTIME = Path("/run/sandbox")
STATE = Path("/var/lib/sandbox")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def status_kib(pid: int | str, field: str) -> int:
    """A ``kB`` field of /proc/PID/status (VmRSS, VmHWM, ...), 0 when unreadable."""
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rollup_kib(pid: int | str) -> dict[str, int]:
    """Rss, Pss and private (USS) kB from /proc/PID/smaps_rollup."""
    out: dict[str, int] = {}
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
            out[parts[0][:-1]] = int(parts[1])
    return {
        "rss": out.get("Rss", 0),
        "pss": out.get("Pss", 0),
        "uss": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0),
    }


def nfds(pid: int | str) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _stat(pid: str) -> tuple[str, int] | None:
    """(state, ppid) of a process."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def zombies(parents: Iterable[int]) -> int:
    """Zombie children of the given processes."""
    want = set(parents)
    n = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            st = _stat(pid)
            if st and st[0] == "Z" and st[1] in want:
                n += 1
    return n


def net_namespaces() -> int:
    """Distinct network namespaces that some process is in (host-wide)."""
    seen = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                seen.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
            except OSError:
                pass
    return len(seen)


def sbx_leaves() -> list[str]:
    """Every ``sbx-*`` cgroup directory (any hierarchy, any depth up to 8)."""
    found = []
    for base in CGROUP_ROOTS:
        for dirpath, dirnames, _ in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames if d.startswith("sbx-")]
            dirnames[:] = [d for d in dirnames if not d.startswith("sbx-")]
            if dirpath.count("/") > 8:
                dirnames[:] = []
    return found


def _count(path: Path, hidden_only: bool = False) -> int:
    try:
        return sum(1 for e in os.listdir(path) if not hidden_only or e.startswith("."))
    except OSError:
        return 0


def snapshot(server_pid: int) -> dict[str, int]:
    """Every counter, for the supervisor (this process) and the fork server."""
    me = os.getpid()
    server = rollup_kib(server_pid) if server_pid else {"rss": 0, "pss": 0, "uss": 0}
    return {
        "supervisor RSS KiB": status_kib(me, "VmRSS"),
        "supervisor Python objects": len(gc.get_objects()),
        "supervisor threads": status_kib(me, "Threads"),
        "supervisor fds": nfds(me),
        "fork server RSS KiB": server["rss"],
        "fork server PSS KiB": server["pss"],
        "fork server USS KiB": server["uss"],
        "fork server fds": nfds(server_pid) if server_pid else 0,
        "zombies (children of either)": zombies([me, server_pid]),
        "mounts (this mount ns)": len(_read("/proc/self/mountinfo").splitlines()),
        "sbx-* cgroup dirs (host)": len(sbx_leaves()),
        "network namespaces (host)": net_namespaces(),
        "/run/sandbox/runs entries": _count(RUNTIME / "runs"),
        "/run/sandbox/slots entries": _count(RUNTIME / "slots"),
        "/var/lib/sandbox temp entries": _count(STATE / "images", True)
        + _count(STATE / "seccomp", True),
        "/tmp entries (host)": _count(Path("/tmp")),
    }


def leftovers(run_ids: Iterable[str]) -> dict[str, list[str]]:
    """Resources named after these runs that still exist (cgroup leaves, run files)."""
    ids = set(run_ids)
    leaves = [p for p in sbx_leaves() if p.rsplit("/", 1)[1].removeprefix("sbx-") in ids]
    try:
        files = [e for e in os.listdir(RUNTIME / "runs") if e.split(".", 1)[0] in ids]
    except OSError:
        files = []
    return {k: v for k, v in (("cgroup leaves", leaves), ("run files", files)) if v}

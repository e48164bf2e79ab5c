"""HostFacts: what this kernel and machine can enforce, probed once and passed in.

Planning is pure: it takes a HostFacts value instead of looking at the host, so
tests can describe any kernel. ``probe()`` reads procfs/sysfs only (no
syscalls that change state). ``SANDBOX_TEST_HIDE_LAYERS=landlock,apparmor``
makes the probe report those layers missing: a test-only hook that can only
make a run refuse or degrade (loudly, in the record), never strengthen it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

HIDE_ENV = "SANDBOX_TEST_HIDE_LAYERS"


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return default


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Kernel features relevant to enforcement. All fields are plain data."""

    kernel: tuple[int, int] = (6, 1)
    arch: str = "x86_64"
    euid: int = 0
    landlock_abi: int = 0
    apparmor: bool = False
    seccomp: bool = True
    seccomp_actions: frozenset[str] = frozenset()
    time_ns: bool = True
    userns_max: int = 0
    overlay: bool = True
    in_container: str | None = None
    hidden: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_root(self) -> bool:
        """True when the supervisor runs as root in the initial user namespace."""
        return self.euid == 0

    def hide(self, layers: frozenset[str]) -> HostFacts:
        """The same facts with some layers made unavailable (test hook)."""
        facts = replace(self, hidden=self.hidden | layers)
        if "landlock" in layers:
            facts = replace(facts, landlock_abi=0)
        if "apparmor" in layers:
            facts = replace(facts, apparmor=False)
        if "seccomp" in layers:
            facts = replace(facts, seccomp=False)
        if "overlay" in layers:
            facts = replace(facts, overlay=False)
        if "namespaces" in layers:
            facts = replace(facts, userns_max=0)
        return facts


def kernel_version() -> tuple[int, int]:
    """(major, minor) of the running kernel, as numbers; (0, 0) when unparsable."""
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return (0, 0)


def _in_container() -> str | None:
    if os.path.exists("/.dockerenv"):
        return "docker"
    if os.path.exists("/run/.containerenv"):
        return "podman"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "kubernetes"
    env = _read("/proc/1/environ")
    if "container=" in env:
        return env.split("container=", 1)[1].split("\0", 1)[0] or "container"
    return None


def probe() -> HostFacts:
    """Read the running kernel's facts (cheap: a handful of small procfs/sysfs reads)."""
    from sandbox.syscalls.probes import landlock_abi

    actions = frozenset(_read("/proc/sys/kernel/seccomp/actions_avail").split())
    facts = HostFacts(
        kernel=kernel_version(),
        arch=platform.machine(),
        euid=os.geteuid(),
        landlock_abi=landlock_abi(),
        apparmor=_read("/sys/module/apparmor/parameters/enabled").strip() == "Y",
        seccomp=bool(actions) or os.path.exists("/proc/sys/kernel/seccomp"),
        seccomp_actions=actions,
        time_ns=os.path.exists("/proc/self/ns/time"),
        userns_max=int(_read("/proc/sys/user/max_user_namespaces", "0").strip() or 0),
        overlay=_filesystem_available("overlay"),
        in_container=_in_container(),
    )
    hidden = frozenset(x.strip() for x in os.environ.get(HIDE_ENV, "").split(",") if x.strip())
    return facts.hide(hidden) if hidden else facts


def _filesystem_available(name: str) -> bool:
    """Registered, or loadable on demand: the module tree may live elsewhere.

    A kernel booted with its modules outside ``/lib/modules`` (the kvm-run
    guest: Debian's 6.1 over this host's root) has no overlay in
    /proc/filesystems until the first mount autoloads it. As root,
    ``fsopen`` asks the kernel itself, which autoloads the module exactly
    as the run's own fsopen would, and creates nothing.
    """
    if name in _read("/proc/filesystems").split():
        return True
    if Path(f"/lib/modules/{platform.release()}/kernel/fs/{name}").exists():
        return True
    if os.geteuid() != 0:
        return False
    from sandbox.syscalls.probes import filesystem_available

    return filesystem_available(name)

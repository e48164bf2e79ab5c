"""Per-run artifacts of every layer, built in the supervisor before the spawn.

``LayerBuilders.build`` turns a policy into what the child applies (seccomp
BPF, Landlock rules, AppArmor profile name, kept capabilities) and what the
supervisor watches (the cgroup leaf), and updates each layer's recorded state.
Artifacts are cached by their own keys, so a judge's thousandth run of the
same profile compiles nothing.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import cgroups
from sandbox.apparmor.host import AppArmorHost
from sandbox.caps.names import CAPS, normalize
from sandbox.cgroups import CgroupLayout, CgroupLimits, IoLimit
from sandbox.errors import PolicyError, SetupError
from sandbox.fs.image import ImageSpec, image_key, read_allowlist
from sandbox.fs.image import ensure as ensure_image
from sandbox.fs.resolve import Program, interpreter_of
from sandbox.host import HostFacts
from sandbox.landlock.rules import LandlockArtifact
from sandbox.landlock.rules import prepare as landlock_prepare
from sandbox.launcher.protocol import PayloadStatus
from sandbox.layers import Enforcement
from sandbox.plan import SeccompPlan
from sandbox.policy.profile import PROFILES_DIR, LoadedProfile
from sandbox.runner.result import Usage
from sandbox.seccomp.artifact import SeccompArtifact

if TYPE_CHECKING:
    from sandbox.policy.model import Policy
    from sandbox.verify.report import Report
from sandbox.paths import runtime_dir, state_dir
from sandbox.runner.state import sweep as sweep_locks
from sandbox.seccomp.build import prepare as seccomp_prepare

log = logging.getLogger(__name__)
IMAGE_KEY_TTL = 2.0


@dataclass
class Built:
    """One run's artifacts and the hooks the supervisor needs during the wait."""

    states: dict[str, Enforcement]
    apparmor_profile: str | None = None
    caps_keep: int = 0
    landlock: LandlockArtifact | None = None
    seccomp: SeccompPlan | None = None
    seccomp_artifact: SeccompArtifact | None = None
    verified_policy: Policy | None = None  # the policy as compiled (errno mode -> notify)
    cgroup_join: list[int] = field(default_factory=list)
    cgroup_dirs: list[str] = field(default_factory=list)
    cpu_usage: Callable[[], float] | None = None
    kill: Callable[[], None] | None = None
    freeze: Callable[[], None] | None = None
    thaw: Callable[[], None] | None = None
    stats: Callable[[PayloadStatus | None, float | None], Usage] | None = None

    def usage(self, st: PayloadStatus | None, wall: float | None) -> Usage:
        """Accounting: the cgroup's figures when there is a leaf, else wait4's."""
        if self.stats is not None:
            return self.stats(st, wall)
        from sandbox.runner.supervisor import base_usage

        return base_usage(st, wall)

    def final_states(self) -> dict[str, Enforcement]:
        """The enforcement record."""
        return dict(self.states)


class LayerBuilders:
    """Builds every layer's artifacts for a run (caches live here)."""

    def __init__(self, host: HostFacts) -> None:
        self.host = host
        self._allowlists: dict[str, tuple[str, ...]] = {}
        self._image_keys: dict[ImageSpec, tuple[str, float]] = {}
        self._landlock_cache: dict[object, LandlockArtifact] = {}
        self._aa_host: AppArmorHost | None = None
        self._layout: CgroupLayout | None = None
        self._seccomp_cache = state_dir() / "seccomp" if host.is_root else None

    def image_spec(self, policy: Policy) -> ImageSpec:
        """Inputs of the default image for this policy."""
        name = policy.filesystem.etc_allowlist
        if name not in self._allowlists:
            self._allowlists[name] = read_allowlist(PROFILES_DIR / name)
        ident = policy.identity
        return ImageSpec(self._allowlists[name], ident.uid, ident.gid, ident.user, ident.hostname)

    def image(self, policy: Policy) -> tuple[Path, int]:
        """The default image's directory and a lock pinning it for the run.

        The key (a stat walk of the /etc allow-list, ~1-3 ms) is recomputed at
        most every IMAGE_KEY_TTL seconds: a judge's back-to-back runs share it,
        and an edited /etc is seen within that time.
        """
        spec = self.image_spec(policy)
        now = time.monotonic()
        hit = self._image_keys.get(spec)
        if hit is None or now - hit[1] > IMAGE_KEY_TTL:
            hit = (image_key(spec), now)
            self._image_keys[spec] = hit
        return ensure_image(spec, state_dir(), hit[0])

    def build(
        self,
        policy: Policy,
        states: dict[str, Enforcement],
        ablate: frozenset[str],
        program: Program,
        run_id: str,
        stack: ExitStack,
    ) -> Built:
        """Artifacts for one run; resources it creates are released by ``stack``."""
        built = Built(states=dict(states))
        keep = 0
        for name in policy.capabilities.keep:
            cap = normalize(name)
            if cap not in {normalize(d) for d in policy.capabilities.deny}:
                keep |= 1 << CAPS[cap]
        built.caps_keep = keep
        self._landlock(policy, built, ablate, program)
        self._seccomp(policy, built)
        self._apparmor(policy, built, program, stack)
        self._cgroups(policy, built, run_id, stack)
        return built

    def _landlock(
        self, policy: Policy, built: Built, ablate: frozenset[str], program: Program
    ) -> None:
        if built.states["landlock"].state == "off":
            return
        # The program and its interpreter run whatever exec_paths says (AppArmor
        # grants them mrix): both file layers must agree on that.
        interp = interpreter_of(program.host_path) if program.host_path else None
        files = tuple(p for p in (program.inside_path, interp) if p and p.startswith("/"))
        key = (policy.filesystem.model_dump_json(), self.host.landlock_abi, files)
        art = self._landlock_cache.get(key)
        if art is None:
            art = landlock_prepare(policy.filesystem, self.host.landlock_abi, program_files=files)
            self._landlock_cache[key] = art
        built.landlock = art if art.state != "off" else None
        built.states["landlock"] = Enforcement(art.state, art.detail or f"ABI {art.abi}")

    def _seccomp(self, policy: Policy, built: Built) -> None:
        if built.states["seccomp"].state == "off":
            return
        sec = policy.seccomp
        how = {
            "notify": "recorded by the supervisor, the run killed",
            "errno": f"answered {sec.default_errno} and listed by the supervisor",
        }.get(sec.default_action, sec.default_action)
        if sec.default_action == "errno":
            # The supervisor answers the errno itself, so it can list each denial.
            sec = sec.model_copy(update={"default_action": "notify"})
        art = seccomp_prepare(sec, self.host.arch, cache_dir=self._seccomp_cache)
        built.seccomp = SeccompPlan(art.bpf, art.flags, art.notify)
        built.seccomp_artifact = art
        if sec is not policy.seccomp:
            built.verified_policy = policy.model_copy(update={"seccomp": sec})
        built.states["seccomp"] = Enforcement(
            "full",
            f"denied syscalls {how}; {len(art.allowed)} allowed; foreign ABIs killed "
            f"({art.instructions} BPF instructions)",
        )

    def _apparmor(self, policy: Policy, built: Built, program: Program, stack: ExitStack) -> None:
        if built.states["apparmor"].state == "off":
            return
        from sandbox.apparmor import lifetime, render
        from sandbox.apparmor.host import detect

        if self._aa_host is None:
            self._aa_host = detect()
            if self._aa_host.enabled and self._aa_host.can_load:
                lifetime.sweep()
        aa = self._aa_host
        if not (aa.enabled and aa.can_load and aa.parser is not None):
            built.states["apparmor"] = Enforcement("off", aa.reason)
            return
        interp = interpreter_of(program.host_path) if program.host_path else None
        art = render.prepare(
            policy, program=program.inside_path, interpreter=interp, parser_features=aa.parser
        )
        held = lifetime.hold(art)
        stack.callback(lifetime.release, held)
        built.apparmor_profile = art.name
        skipped = f"; left out: {', '.join(art.skipped_rules)}" if art.skipped_rules else ""
        built.states["apparmor"] = Enforcement("full", f"profile {art.name}{skipped}")

    def verify(self, profile: LoadedProfile, built: Built) -> Report:
        """The run path's verification (cached by everything it depends on).

        Raises:
            VerificationError: a blocking finding: the run is refused.
        """
        from sandbox.verify.cache import cached_check

        target = built.verified_policy or profile
        return cached_check(
            target, self.host, seccomp=built.seccomp_artifact, landlock=built.landlock
        )

    # ---------------------------------------------------------- cgroups ----
    def cgroup_layout(self) -> CgroupLayout:
        """The host's hierarchies and delegated parents (detected once)."""
        if self._layout is None:
            self._layout = cgroups.detect()
        return self._layout

    def sweep(self) -> None:
        """Remove leaves and run locks of runs whose supervisor died (their flock is free)."""
        try:
            cgroups.sweep(self.cgroup_layout(), cgroups.DEFAULT_PREFIX, run_is_stale)
        except SetupError as e:
            log.warning("sweep of stale cgroup leaves: %s", e)
        sweep_locks(lambda run_id: None)

    def _cgroups(self, policy: Policy, built: Built, run_id: str, stack: ExitStack) -> None:
        if built.states["cgroups"].detail != "not set up yet":
            return  # ablated, disabled or hidden
        lim = policy.limits
        limits = CgroupLimits(
            memory=lim.memory,
            pids=lim.processes,
            cpu_quota=lim.cpu_quota,
            cpuset=lim.cpuset,
            io=io_limits(policy),
        )
        required = set(REQUIRED_CONTROLLERS) if policy.layers.cgroups == "required" else set()
        if lim.cpu_quota is not None and required:
            required.add("cpu")
        if lim.cpuset is not None and required:
            required.add("cpuset")
        if limits.io and required:
            required.add("io")
        try:
            leaf = cgroups.create(self.cgroup_layout(), run_id, limits, required)
        except SetupError as e:
            if policy.layers.cgroups == "required":
                raise
            built.states["cgroups"] = Enforcement("off", str(e))
            return
        stack.callback(leaf.remove)
        fds = leaf.open_join_fds()
        stack.callback(lambda: [os.close(fd) for fd in fds])
        built.cgroup_join = fds
        built.cgroup_dirs = [d.path for d in leaf.dirs]
        built.cpu_usage = lambda: leaf.cpu_usage_ns() / 1e9
        built.kill = leaf.kill
        built.freeze = leaf.freeze
        built.thaw = leaf.thaw
        built.stats = lambda st, wall: cgroup_usage(leaf, st, wall)
        partial = [
            r
            for r in leaf.report
            if r.state != cgroups.State.FULL and r.controller in required | set(limits.needs())
        ]
        detail = "; ".join(f"{r.controller}: {r.state.value} ({r.detail})" for r in partial)
        enforced = ", ".join(r.controller for r in leaf.report if r.state == cgroups.State.FULL)
        charged = (
            "; memory counts the run's writes to /box and /tmp (tmpfs upper layer)"
            if lim.memory is not None
            else ""
        )
        built.states["cgroups"] = Enforcement(
            "partial" if partial else "full",
            (detail or f"leaf {leaf.name}: {enforced}") + charged,
        )

    def dry_cgroups(self, policy: Policy, run_id: str) -> Enforcement:
        """The cgroups layer's state for ``policy``: its leaf made and removed at once.

        For ``sandbox doctor``: the same decision a run gets, from the same
        code. A leaf left by a killed doctor has no run lock, so the next
        supervisor's sweep removes it.
        """
        built = Built(states={"cgroups": Enforcement("off", "not set up yet")})
        with ExitStack() as stack:
            try:
                self._cgroups(policy, built, run_id, stack)
            except SetupError as e:
                return Enforcement("off", str(e))
        return built.states["cgroups"]


def device_number(spec: str) -> str:
    """``MAJ:MIN`` of a device spec: ``8:0``, a block device node, or any path (the
    device of the file system behind it, e.g. a writable bind's source).

    Raises:
        PolicyError: when the spec is neither.
    """
    if re.fullmatch(r"\d+:\d+", spec):
        return spec
    try:
        st = os.stat(spec)
    except OSError as e:
        raise PolicyError(f"io limit device {spec!r}: {e.strerror}") from e
    dev = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def io_limits(policy: Policy) -> tuple[IoLimit, ...]:
    """The profile's per-device io limits as cgroup IoLimits (one per device)."""
    lim = policy.limits
    per: dict[str, dict[str, int]] = {}
    for key, table in (
        ("rbps", lim.io_read_bps),
        ("wbps", lim.io_write_bps),
        ("riops", lim.io_read_iops),
        ("wiops", lim.io_write_iops),
    ):
        for dev, value in table.items():
            per.setdefault(device_number(dev), {})[key] = value
    return tuple(IoLimit(dev, **values) for dev, values in sorted(per.items()))


# Controllers a run cannot do without: accounting, the kill, memory and process limits.
REQUIRED_CONTROLLERS = ("cpuacct", "freezer", "memory", "pids")


def run_is_stale(run_id: str) -> bool:
    """A leaf's run is dead when its lock file is gone or nobody holds the lock."""
    path = runtime_dir() / "runs" / f"{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def cgroup_usage(leaf: cgroups.Leaf, st: PayloadStatus | None, wall: float | None) -> Usage:
    """The run's figures: CPU and memory from the leaf (all its tasks), max RSS from wait4."""
    from sandbox.runner.supervisor import base_usage

    base = base_usage(st, wall)
    s = leaf.stats()
    ns = 1e-9
    cpu = s.cpu_usage_ns * ns if s.cpu_usage_ns is not None else base.cpu_time
    return replace(
        base,
        cpu_time=cpu,
        cpu_user=s.cpu_user_ns * ns if s.cpu_user_ns is not None else base.cpu_user,
        cpu_system=s.cpu_system_ns * ns if s.cpu_system_ns is not None else base.cpu_system,
        memory_peak=s.memory_peak,
        oom_killed=bool(s.oom_killed),
        io_read_bytes=s.io_read_bytes,
        io_write_bytes=s.io_write_bytes,
    )


def profiles_dir() -> Path:
    """Where named profiles and their data files live."""
    return PROFILES_DIR

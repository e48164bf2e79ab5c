"""The compile stage: policy + host facts + request -> every artifact and the LaunchPlan.

First stage of a run (``runner.supervisor``: compile -> verify -> acquire ->
launch -> supervise -> release). Pure in the sense that matters: it creates
no resource, holds nothing and changes no kernel state; it reads files (the
program, its ``#!`` line, the /etc allow-list, bind sources) and fills
content-addressed caches (the compiled seccomp filter on disk, the default
image, both keyed by their inputs, like a compiler's object cache). What it
returns is frozen data: the artifacts the verify stage checks byte for byte
and the acquire stage loads as they are, and a LaunchPlan in which only the
per-run resources (run id, host ids, cgroup join, staged files) are left to
the acquire stage. (The test-only ablation hook weakens the plan there too,
after verification: what is verified is always the policy's own plan.)

Artifacts are kept per process by their inputs (:class:`Artifacts`), so a
judge's thousandth run of a profile compiles nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import resource
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sandbox import ablation, codec, enforce
from sandbox.apparmor.render import AppArmorArtifact
from sandbox.caps.names import CAPS, normalize
from sandbox.cgroups.model import CgroupLimits, IoLimit
from sandbox.errors import PolicyError
from sandbox.fs.exe import ExecFiles, exec_files
from sandbox.fs.image import ImageSpec, image_key, read_allowlist
from sandbox.fs.image import ensure as ensure_image
from sandbox.fs.ops import MountPlan, plan_mounts
from sandbox.fs.resolve import Program, resolve
from sandbox.fs.staging import check_name
from sandbox.host import HostFacts
from sandbox.landlock.rules import LandlockArtifact
from sandbox.layers import Enforcement
from sandbox.paths import state_dir
from sandbox.plan import LaunchPlan, Rlimit, SeccompPlan
from sandbox.policy.profile import PROFILES_DIR, LoadedProfile
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.syscalls.consts import CloneFlag

if TYPE_CHECKING:
    from sandbox.apparmor.host import AppArmorHost
    from sandbox.policy.frozen import Policy

IMAGE_KEY_TTL = 2.0
# A compiled run is reused for the same request (same policy digest, argv,
# cwd, files, collect, ablations, host) for this long, and only while the
# program's file is the same one (device, inode, size, mtime, mode); the
# image key and bind sources are looked at again after it.
COMPILE_TTL = IMAGE_KEY_TTL
MAX_REMEMBERED = 256
# Controllers a run cannot do without: accounting, the kill, memory and process limits.
REQUIRED_CONTROLLERS = ("cpuacct", "freezer", "memory", "pids")


@dataclass(frozen=True, slots=True)
class Request:
    """What the compile stage needs of a run request (no fds, no bytes)."""

    argv: tuple[str, ...]
    cwd: str | None = None
    files: tuple[str, ...] = ()  # names under /box the acquire stage will stage
    collect: tuple[str, ...] = ()
    ablate: frozenset[str] = frozenset()
    # The first bytes of a staged program (PROGRAM names one of ``files``): its
    # #! interpreter and ELF loader are read from them.
    program_head: bytes = b""
    # argv[0] and cwd are paths inside the container (an OCI bundle), never the host's
    inside: bool = False


def staged_name(argv0: str, files: tuple[str, ...]) -> str | None:
    """The staged file ``./NAME`` or ``/box/NAME`` names, if it is one of ``files``."""
    for prefix in ("./", "/box/"):
        if argv0.startswith(prefix) and argv0[len(prefix) :] in files:
            return argv0[len(prefix) :]
    return None


def staged_program(request: Request) -> Program | None:
    """A PROGRAM that names a file staged into /box runs there (``files={"a.out": ...}``
    with ``["./a.out"]``), before any host file of that name."""
    name = staged_name(request.argv[0], request.files)
    return Program(f"/box/{name}", None, None) if name is not None else None


@dataclass(frozen=True, slots=True)
class CgroupRequest:
    """The run's cgroup leaf: its limits and the controllers it cannot do without."""

    limits: CgroupLimits
    required: frozenset[str]
    degradable: bool  # layers.cgroups is not "required": a failed leaf only degrades
    # Where the leaf goes, when an engine says (OCI linux.cgroupsPath; cgroups.place),
    # instead of a leaf of our own under the delegated parent.
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Supervision:
    """What the supervise stage enforces from outside: timers, output cap, denials."""

    wall_time: float | None
    cpu_time: float | None
    output: int | None
    deny_errno: int | None  # answer denied syscalls with this errno (listed), else kill


@dataclass(frozen=True, slots=True)
class CompiledRun:
    """Everything a run will load and do, as frozen data (see module docstring).

    ``verify_policy`` is the policy as compiled (a seccomp ``errno`` default
    becomes ``notify``: the supervisor answers each denial itself so it can
    list them), the one the verify stage checks against the artifacts.
    """

    profile: LoadedProfile
    verify_policy: Policy
    states: Mapping[str, Enforcement]
    program: Program
    plan: LaunchPlan
    seccomp: SeccompArtifact | None
    landlock: LandlockArtifact | None
    apparmor: AppArmorArtifact | None
    image: tuple[ImageSpec, str] | None  # the default image's inputs and key
    cgroup: CgroupRequest | None
    supervision: Supervision
    ablate: frozenset[str] = frozenset()
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def policy(self) -> Policy:
        """The policy as written (resolved profile, overrides included)."""
        return self.profile.policy

    def artifacts_digest(self) -> str:
        """sha256 over exactly what the kernel will be given: the key of a verification."""
        hit: str | None = self._memo.get("digest")
        if hit is not None:
            return hit
        parts = {
            "policy": self.profile.digest,
            "seccomp": hashlib.sha256(self.seccomp.bpf).hexdigest() if self.seccomp else None,
            "seccomp_arch": self.seccomp.arch if self.seccomp else None,
            "landlock": self.landlock.key if self.landlock else None,
            "apparmor": hashlib.sha256(self.apparmor.text.encode()).hexdigest()
            if self.apparmor
            else None,
            "mounts": codec.dumps(replace(self.plan.mounts, program=None, copy_in=())),
            "caps": self.plan.caps_keep,
            "ns": self.plan.unshare_flags,
            "rlimits": codec.dumps(self.plan.rlimits),
        }
        digest = hashlib.sha256(codec.dumps(parts).encode()).hexdigest()
        self._memo["digest"] = digest
        return digest


class Artifacts:
    """Per-process caches of compiled artifacts, keyed by everything they depend on.

    Thread-safe. Owned by one supervisor (one per ``Sandbox``), so a judge's
    repeated runs of one profile reuse every artifact.
    """

    def __init__(self, host: HostFacts) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._allowlists: dict[str, tuple[str, ...]] = {}
        self._image_keys: dict[ImageSpec, tuple[str, float]] = {}
        self._landlock: dict[object, LandlockArtifact] = {}
        self._apparmor: dict[object, AppArmorArtifact] = {}
        self._exec_files: dict[object, ExecFiles] = {}
        self._aa_host: AppArmorHost | None = None
        self._runs: dict[object, tuple[CompiledRun, tuple[object, ...], float]] = {}
        self.seccomp_cache = state_dir() / "seccomp" if host.is_root else None

    def remembered(self, key: object) -> CompiledRun | None:
        """A run compiled for the same inputs within COMPILE_TTL, if its program is unchanged."""
        with self._lock:
            hit = self._runs.get(key)
        if hit is None or time.monotonic() - hit[2] > COMPILE_TTL:
            return None
        compiled, identity, _ = hit
        return compiled if _identity(compiled.program) == identity else None

    def remember(self, key: object, compiled: CompiledRun) -> None:
        """Keep a compiled run for later runs of the same request."""
        with self._lock:
            if len(self._runs) >= MAX_REMEMBERED:
                self._runs.pop(next(iter(self._runs)))
            self._runs[key] = (compiled, _identity(compiled.program), time.monotonic())

    def exec_files(self, program: Program, mounts: MountPlan, head: bytes) -> ExecFiles:
        """The program's interpreter and loader (``sandbox.fs.exe``), kept while the
        program's host file is unchanged (same inode, size and mtime) and the mounts
        that resolve it are the same: a judge's thousandth run reads nothing."""
        if head or not program.host_path:
            return exec_files(program, mounts, head)
        try:
            st = os.stat(program.host_path)
        except OSError:
            return exec_files(program, mounts, head)
        key = (
            program.inside_path,
            program.host_path,
            (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns),
            mounts.binds,
            mounts.lowers,
        )
        with self._lock:
            hit = self._exec_files.get(key)
        if hit is None:
            hit = exec_files(program, mounts, head)
            with self._lock:
                if len(self._exec_files) > 256:
                    self._exec_files.clear()
                self._exec_files[key] = hit
        return hit

    def apparmor_host(self) -> AppArmorHost:
        """AppArmor's state on this host and the parser's features (probed once)."""
        if self._aa_host is None:
            from sandbox.apparmor.host import detect

            self._aa_host = detect()
        return self._aa_host

    def image_spec(self, policy: Policy) -> ImageSpec:
        """Inputs of the default image for this policy."""
        name = policy.filesystem.etc_allowlist
        with self._lock:
            allow = self._allowlists.get(name)
        if allow is None:
            allow = read_allowlist(PROFILES_DIR / name)
            with self._lock:
                self._allowlists[name] = allow
        ident = policy.identity
        return ImageSpec(allow, ident.uid, ident.gid, ident.user, ident.hostname)

    def image_key(self, spec: ImageSpec) -> str:
        """The image's content key; the stat walk of /etc (~1-3 ms) is redone at most
        every IMAGE_KEY_TTL seconds, so an edited /etc is seen within that time."""
        now = time.monotonic()
        with self._lock:
            hit = self._image_keys.get(spec)
        if hit is None or now - hit[1] > IMAGE_KEY_TTL:
            hit = (image_key(spec), now)
            with self._lock:
                self._image_keys[spec] = hit
        return hit[0]

    def landlock(self, policy: Policy, files: tuple[str, ...]) -> LandlockArtifact:
        """Landlock rules for the policy's file system and the program's own files."""
        from sandbox.landlock.rules import prepare

        ports = tuple(policy.network.tcp_ports)
        key = (policy.filesystem.model_dump_json(), self.host.landlock_abi, files, ports)
        with self._lock:
            art = self._landlock.get(key)
        if art is None:
            art = prepare(
                policy.filesystem, self.host.landlock_abi, program_files=files, tcp_ports=ports
            )
            with self._lock:
                self._landlock[key] = art
        return art

    def seccomp(self, policy: Policy) -> SeccompArtifact:
        """The filter for the host's ABI (cached in memory and, as root, on disk)."""
        from sandbox.seccomp.build import prepare

        return prepare(policy.seccomp, self.host.arch, cache_dir=self.seccomp_cache)

    def apparmor(
        self, policy: Policy, digest: str, program: str, interpreter: str | None
    ) -> AppArmorArtifact:
        """The per-program profile text, rendered for the parser installed here."""
        from sandbox.apparmor.render import prepare

        key = (digest, program, interpreter)
        with self._lock:
            art = self._apparmor.get(key)
        if art is None:
            features = self.apparmor_host().parser
            assert features is not None  # checked by the caller
            art = prepare(
                policy, program=program, interpreter=interpreter, parser_features=features
            )
            with self._lock:
                self._apparmor[key] = art
        return art


def check_box_name(name: str) -> str:
    """A file name under /box: relative, any script, no '..', '.', empty part or control char.

    Raises:
        PolicyError: naming the bad name.
    """
    return check_name(name)


# "memory" stacks end a little above the cgroup limit, so a runaway recursion
# reaches the memory limit first (MEMORY_LIMIT, not a SIGSEGV at the rlimit).
STACK_HEADROOM = 16 << 20


def stack_limit(policy: Policy) -> int | None:
    """RLIMIT_STACK in bytes: ``"memory"`` follows the memory limit (unlimited without
    one, as isolate lets the stack grow to the memory limit; never above an
    address-space limit); None leaves the caller's own limit."""
    lim = policy.limits
    if lim.stack == "unlimited":
        return resource.RLIM_INFINITY
    if lim.stack == "memory":
        bounds = [v for v in (lim.memory and lim.memory + STACK_HEADROOM, lim.address_space) if v]
        return min(bounds) if bounds else resource.RLIM_INFINITY
    return lim.stack


def rlimits(policy: Policy) -> tuple[Rlimit, ...]:
    """RLIMIT_CORE=0 and the profile's limits; RLIMIT_CPU only as a backstop to polling."""
    lim = policy.limits
    out = [Rlimit(resource.RLIMIT_CORE, 0, 0)]
    pairs: list[tuple[int, int | None]] = [
        (resource.RLIMIT_NOFILE, lim.open_files),
        (resource.RLIMIT_NPROC, lim.processes),
        (resource.RLIMIT_FSIZE, lim.file_size),
        (resource.RLIMIT_STACK, stack_limit(policy)),
        (resource.RLIMIT_AS, lim.address_space),
        (resource.RLIMIT_MEMLOCK, lim.memlock),
        (resource.RLIMIT_MSGQUEUE, lim.msgqueue),
        (resource.RLIMIT_SIGPENDING, lim.sigpending),
    ]
    out += [Rlimit(r, v, v) for r, v in pairs if v is not None]
    if lim.cpu_time is not None:
        soft = math.ceil(lim.cpu_time) + 1
        out.append(Rlimit(resource.RLIMIT_CPU, soft, soft + 1))
    return tuple(out)


def unshare_flags(policy: Policy, host: HostFacts) -> int:
    """CLONE_NEW* flags for the outer child (CLONE_NEWCGROUP comes later, in the payload)."""
    ns = policy.namespaces
    flags = CloneFlag.CLONE_NEWUSER | CloneFlag.CLONE_NEWNS  # the overlay root lives there
    for on, flag in (
        (ns.pid, CloneFlag.CLONE_NEWPID),
        (ns.net, CloneFlag.CLONE_NEWNET),
        (ns.ipc, CloneFlag.CLONE_NEWIPC),
        (ns.uts, CloneFlag.CLONE_NEWUTS),
        (ns.time and host.time_ns, CloneFlag.CLONE_NEWTIME),
    ):
        if on:
            flags |= flag
    return int(flags)


def caps_keep(policy: Policy) -> int:
    """Bit mask of the capabilities the payload keeps (``keep`` minus ``deny``)."""
    denied = {normalize(d) for d in policy.capabilities.deny}
    keep = 0
    for name in policy.capabilities.keep:
        cap = normalize(name)
        if cap not in denied:
            keep |= 1 << CAPS[cap]
    return keep


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


def cgroup_request(policy: Policy) -> CgroupRequest:
    """The leaf's limits and, when the layer is required, the controllers it needs."""
    lim = policy.limits
    limits = CgroupLimits(
        memory=lim.memory,
        pids=lim.processes,
        cpu_quota=lim.cpu_quota,
        cpuset=lim.cpuset,
        io=io_limits(policy),
        hugetlb=dict(lim.hugetlb),
        net_classid=lim.net_classid,
        net_prio=dict(lim.net_prio),
    )
    required: set[str] = set()
    if policy.layers.cgroups == "required":
        required = set(REQUIRED_CONTROLLERS)
        if lim.cpu_quota is not None:
            required.add("cpu")
        if lim.cpuset is not None:
            required.add("cpuset")
        if limits.io:
            required.add("io")
        # A limit the profile names is enforced or the run refused (fail closed).
        required |= limits.needs() & {"hugetlb", "net_cls", "net_prio"}
    return CgroupRequest(limits, frozenset(required), policy.layers.cgroups != "required")


def deny_errno(policy: Policy) -> int | None:
    """errno for denials the supervisor answers (default action 'errno' compiled as notify)."""
    from sandbox.seccomp.actions import errno_number

    if policy.seccomp.default_action != "errno":
        return None
    return errno_number(policy.seccomp.default_errno)


def _seccomp(
    policy: Policy, states: dict[str, Enforcement], arts: Artifacts
) -> tuple[SeccompArtifact | None, Policy]:
    """The filter and the policy it was compiled from (errno and kill_process defaults -> notify).

    Every refusal that ends a run goes to the supervisor's listener, the one
    channel the payload can neither write nor flood: a kernel kill would be
    known only from an exit status (which a program forges with kill(2)) or the
    kernel log (which any task on the host can flood; issue 13 item 4).
    """
    if states["seccomp"].state == "off":
        return None, policy
    sec = policy.seccomp
    how = {
        "notify": "recorded by the supervisor, the run killed",
        "kill_process": "recorded by the supervisor, the run killed",
        "errno": f"answered {sec.default_errno} and listed by the supervisor",
    }.get(sec.default_action, sec.default_action)
    compiled = policy
    if sec.default_action in ("errno", "kill_process"):
        # The supervisor answers the errno itself, so it can list each denial;
        # a kill it does itself, through the run's cgroup (the whole run).
        notify = sec.model_copy(update={"default_action": "notify"})
        compiled = policy.model_copy(update={"seccomp": notify})
    art = arts.seccomp(compiled)
    states["seccomp"] = Enforcement(
        "full",
        f"denied syscalls {how}; {len(art.allowed)} allowed; foreign ABIs recorded, killed "
        f"({art.instructions} BPF instructions)",
    )
    return art, compiled


def _landlock(
    policy: Policy, exe: ExecFiles, states: dict[str, Enforcement], arts: Artifacts
) -> LandlockArtifact | None:
    if states["landlock"].state == "off":
        return None
    # The program and its interpreter run whatever exec_paths says (AppArmor
    # grants them mrix): both file layers must agree on that. The ELF loader is
    # opened for execution by the kernel during the program's execve: Landlock
    # checks EXECUTE there (AppArmor does not mediate that open).
    art = arts.landlock(policy, exe.landlock_files())
    states["landlock"] = Enforcement(art.state, art.detail or f"ABI {art.abi}")
    return art if art.state != "off" else None


def _apparmor(
    profile: LoadedProfile, exe: ExecFiles, states: dict[str, Enforcement], arts: Artifacts
) -> AppArmorArtifact | None:
    if states["apparmor"].state == "off":
        return None
    aa = arts.apparmor_host()
    if not (aa.enabled and aa.can_load and aa.parser is not None):
        states["apparmor"] = Enforcement("off", aa.reason)
        return None
    art = arts.apparmor(profile.policy, profile.digest, exe.program, exe.interpreter)
    skipped = f"; left out: {', '.join(art.skipped_rules)}" if art.skipped_rules else ""
    states["apparmor"] = Enforcement("full", f"profile {art.name}{skipped}")
    return art


def _mounts(
    policy: Policy, arts: Artifacts, host: HostFacts
) -> tuple[MountPlan, tuple[ImageSpec, str] | None]:
    image = None
    image_dir = None
    if not policy.filesystem.rootfs:
        spec = arts.image_spec(policy)
        key = arts.image_key(spec)
        # A cache fill, keyed by content (the acquire stage pins it for the run).
        image_dir, lock_fd = ensure_image(spec, state_dir(), key)
        os.close(lock_fd)
        image = (spec, key)
    mounts = plan_mounts(policy.filesystem, str(image_dir) if image_dir else None, None)
    return replace(mounts, rootless=not host.is_root), image


def _identity(program: Program) -> tuple[object, ...]:
    """What must not have changed for a remembered run: the program file (and copy source)."""
    out: list[object] = []
    for path in (program.host_path, program.copy_from):
        if path is None:
            out.append(None)
            continue
        try:
            st = os.stat(path)
        except OSError:
            out.append("missing")
            continue
        out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode))
    return tuple(out)


def compile_run(
    profile: LoadedProfile, host: HostFacts, request: Request, arts: Artifacts
) -> CompiledRun:
    """Compile one run, or take the one compiled for the same inputs moments ago.

    A judge's back-to-back runs of one program compile once per COMPILE_TTL
    seconds; the artifacts themselves are cached longer, by their own keys.
    """
    key = (profile.digest, profile.source, request, host)
    compiled = arts.remembered(key)
    if compiled is None:
        compiled = _compile_run(profile, host, request, arts)
        arts.remember(key, compiled)
    return compiled


def _compile_run(
    profile: LoadedProfile, host: HostFacts, request: Request, arts: Artifacts
) -> CompiledRun:
    """Compile one run (see module docstring).

    Raises:
        PolicyError: a bad file or collect name, a bind source that does not
            exist, an unknown ablation.
        ProgramNotFound: the program does not exist.
        UnsupportedError: a required layer cannot be enforced on this host.
        ArtifactError: an artifact failed to build.
    """
    policy = profile.policy
    ablation.check(request.ablate)
    for name in (*request.files, *request.collect):
        check_box_name(name)
    states = enforce.static_states(policy, host, request.ablate)
    enforce.check(policy, states, request.ablate, host, warn=False, pending=frozenset({"cgroups"}))
    mounts, image = _mounts(policy, arts, host)
    program = staged_program(request) or resolve(
        request.argv[0],
        policy.env.path,
        mounts.binds,
        mounts.lowers,
        request.cwd,
        in_container=request.inside,
    )
    exe = arts.exec_files(program, mounts, request.program_head)
    if program.copy_from:
        mounts = replace(mounts, program=(program.copy_from, os.path.basename(program.inside_path)))
    landlock = _landlock(policy, exe, states, arts)
    seccomp, verify_policy = _seccomp(policy, states, arts)
    apparmor = _apparmor(profile, exe, states, arts)
    cgroup = None if states["cgroups"].detail != "not set up yet" else cgroup_request(policy)
    enforce.check(policy, states, request.ablate, host, warn=False, pending=frozenset({"cgroups"}))
    argv0 = program.inside_path if "/" in request.argv[0] else request.argv[0]
    plan = LaunchPlan(
        run_id="",
        policy_digest=profile.digest,
        inside_uid=policy.identity.uid,
        inside_gid=policy.identity.gid,
        host_uid=-1,
        host_gid=-1,
        id_mode="rootless" if mounts.rootless else "slot",
        hostname=policy.identity.hostname,
        unshare_flags=unshare_flags(policy, host),
        cgroupns=policy.namespaces.cgroup,
        nested_userns=policy.namespaces.nested_userns,
        mounts=mounts,
        exec_path=program.inside_path,
        argv=(argv0, *request.argv[1:]),
        env=tuple(sorted(policy.env.resolved().items())),
        workdir=policy.filesystem.workdir,
        apparmor_profile=apparmor.name if apparmor else None,
        caps_keep=caps_keep(policy),
        rlimits=rlimits(policy),
        landlock=landlock,
        seccomp=SeccompPlan(seccomp.bpf, seccomp.flags, seccomp.notify) if seccomp else None,
        join_cgroup=False,
        collect=request.collect,
    )
    lim = policy.limits
    return CompiledRun(
        profile=profile,
        verify_policy=verify_policy,
        states=states,
        program=program,
        plan=plan,
        seccomp=seccomp,
        landlock=landlock,
        apparmor=apparmor,
        image=image,
        cgroup=cgroup,
        supervision=Supervision(lim.wall_time, lim.cpu_time, lim.output, deny_errno(policy)),
        ablate=request.ablate,
    )


__all__ = [
    "REQUIRED_CONTROLLERS",
    "Artifacts",
    "CgroupRequest",
    "CompiledRun",
    "Request",
    "Supervision",
    "caps_keep",
    "cgroup_request",
    "check_box_name",
    "compile_run",
    "rlimits",
    "unshare_flags",
]

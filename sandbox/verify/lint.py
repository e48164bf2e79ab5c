"""Lint: a registry of small rules over a policy and its generated artifacts.

Pure; runs in the supervisor (``verify.check``, on a cache miss) and in
``sandbox verify``. After runc's ``validate`` checks and youki's
``validate_spec_for_*``: each rule has a stable id (SBX1xx), a severity
(``error`` blocks the run, ``warning`` is reported), the layer it is about,
a class and the fix. A rule is a function ``(LintContext) -> Iterable[Hit]``;
the registry turns hits into :class:`~sandbox.verify.findings.Finding`.

Two classes:

- **danger**: the policy grants a way out or over other tenants (a
  capability, a syscall, a writable host tree, a mount without nosuid/nodev,
  a shared namespace, an AppArmor rule that unconfines). Monotone by
  construction: adding a grant never removes a danger finding (a property
  test holds every rule to it).
- **consistency**: the policy says something the other layers make
  pointless or contradict (a path granted that nothing mounts, a syscall
  allowed whose capability is dropped, ``degradable`` on a layer ``strict``
  requires, an allow that a deny removes).

Seccomp rules ask the reference model (``seccomp.reference``), not the text
of the profile, so a syscall reached through a group, an i386 multiplexer or
an argument rule is judged by what the filter will actually return. The
simulation (``verify.simulate``) separately proves the BPF agrees with that
model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from sandbox.caps.names import DANGEROUS, normalize
from sandbox.fs.image import MERGED_USR, MOUNT_POINTS
from sandbox.policy.model import Layers, Policy
from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG
from sandbox.seccomp.reference import runnable, syscall_ret
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import ARCHES, table
from sandbox.verify.findings import Finding, Severity
from sandbox.verify.mountflags import NODEV, NOSUID, MountFlags

Kind = Literal["danger", "consistency"]
_RUNS = frozenset({SECCOMP_RET_ALLOW, SECCOMP_RET_LOG})


@dataclass(frozen=True, slots=True)
class LintContext:
    """What the rules look at. Build it with :func:`context`.

    Attributes:
        policy: the resolved policy.
        strict: the policy is ``strict`` or extends it (some rules then block).
        spec: the resolved seccomp spec (None when the seccomp layer is disabled).
        runs: per target ABI, the syscalls the filter lets run for some arguments.
        apparmor_text: the rendered profile, or None when it could not be rendered.
        mounts: the container's mounts with their final flags, or None when
            the mount plan could not be built.
        root: the host root the default image and binds are taken from.
    """

    policy: Policy
    strict: bool
    spec: SeccompSpec | None
    runs: Mapping[str, frozenset[str]]
    apparmor_text: str | None = None
    mounts: tuple[MountFlags, ...] | None = None
    root: Path = Path("/")


def context(
    policy: Policy,
    spec: SeccompSpec | None,
    *,
    strict: bool = False,
    apparmor_text: str | None = None,
    mounts: tuple[MountFlags, ...] | None = None,
    root: Path = Path("/"),
) -> LintContext:
    """A lint context; ``runs`` is computed from ``spec`` with the reference model."""
    runs = {arch: runnable(spec, arch) for arch in ARCHES} if spec is not None else {}
    return LintContext(policy, strict, spec, MappingProxyType(runs), apparmor_text, mounts, root)


@dataclass(frozen=True, slots=True)
class Hit:
    """One thing a rule found; ``severity``/``fix`` override the rule's when set."""

    subject: str
    message: str
    severity: Severity | None = None
    fix: str | None = None


RuleFunc = Callable[[LintContext], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered lint rule."""

    id: str
    severity: Severity
    layer: str
    kind: Kind
    title: str
    fix: str
    func: RuleFunc = field(repr=False)

    def findings(self, ctx: LintContext) -> list[Finding]:
        """Run the rule."""
        return [
            Finding(
                self.id,
                hit.severity or self.severity,
                self.layer,
                hit.message,
                hit.fix or self.fix,
                hit.subject,
            )
            for hit in self.func(ctx)
        ]


RULES: dict[str, Rule] = {}


def rule(
    id: str, severity: Severity, layer: str, kind: Kind, title: str, fix: str
) -> Callable[[RuleFunc], RuleFunc]:
    """Register a rule function under ``id``."""

    def register(func: RuleFunc) -> RuleFunc:
        if id in RULES:
            raise ValueError(f"lint rule {id} registered twice")
        RULES[id] = Rule(id, severity, layer, kind, title, fix, func)
        return func

    return register


def run(ctx: LintContext, ids: Iterable[str] | None = None) -> list[Finding]:
    """Findings of every registered rule (or of ``ids`` only), in id order."""
    chosen = sorted(RULES) if ids is None else sorted(ids)
    return [f for i in chosen for f in RULES[i].findings(ctx)]


def _strict_severity(ctx: LintContext) -> Severity:
    return "error" if ctx.strict else "warning"


# --------------------------------------------------------------- capabilities
# Each of these alone is a known way out of a container (CVE-2022-0492 needs
# CAP_SYS_ADMIN; "shocker" needs CAP_DAC_READ_SEARCH; ptrace and modules need
# no explanation). The issue names the first four as blocking.
BLOCKING_CAPS = frozenset({"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_DAC_OVERRIDE"})


def kept_caps(policy: Policy) -> frozenset[str]:
    """Capabilities the payload keeps: ``keep`` minus ``deny`` (names normalised)."""
    denied = {normalize(c) for c in policy.capabilities.deny}
    return frozenset(normalize(c) for c in policy.capabilities.keep) - denied


@rule(
    "SBX101",
    "error",
    "capabilities",
    "danger",
    "a capability that breaks isolation is kept",
    "remove it from capabilities.keep; the payload runs with no capability",
)
def _blocking_caps(ctx: LintContext) -> Iterator[Hit]:
    for cap in sorted(kept_caps(ctx.policy) & BLOCKING_CAPS):
        yield Hit(cap, f"capabilities.keep grants {cap}")


@rule(
    "SBX102",
    "warning",
    "capabilities",
    "danger",
    "a dangerous capability is kept",
    "remove it from capabilities.keep unless the program cannot work without it",
)
def _dangerous_caps(ctx: LintContext) -> Iterator[Hit]:
    for cap in sorted(kept_caps(ctx.policy) & (DANGEROUS - BLOCKING_CAPS)):
        yield Hit(cap, f"capabilities.keep grants {cap}")


# ------------------------------------------------------------------- seccomp
@rule(
    "SBX103",
    "error",
    "seccomp",
    "danger",
    "the seccomp default action lets unknown syscalls run",
    'set seccomp.default_action to "kill_process" (or "errno") and list what may run',
)
def _default_runs(ctx: LintContext) -> Iterator[Hit]:
    if ctx.spec is not None and ctx.spec.default_action in ("allow", "log"):
        yield Hit(
            ctx.spec.default_action,
            f'seccomp.default_action = "{ctx.spec.default_action}": every syscall the '
            "policy does not name runs",
        )


@dataclass(frozen=True, slots=True)
class DangerousSyscalls:
    """A danger rule over a family of syscalls."""

    id: str
    title: str
    names: tuple[str, ...]
    why: str


DANGEROUS_SYSCALLS = (
    DangerousSyscalls(
        "SBX110",
        "ptrace or cross-process memory access is allowed",
        ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd"),
        "reads and writes other processes of the run (and of the host, in a shared pid ns)",
    ),
    DangerousSyscalls(
        "SBX111", "bpf is allowed", ("bpf",), "the eBPF verifier is a large kernel attack surface"
    ),
    DangerousSyscalls(
        "SBX112",
        "userfaultfd is allowed",
        ("userfaultfd",),
        "it stalls kernel code on a page fault: the classic race-exploit helper",
    ),
    DangerousSyscalls(
        "SBX113",
        "the kernel keyrings are reachable",
        ("keyctl", "add_key", "request_key"),
        "keyrings are not namespaced and have a long CVE record",
    ),
    DangerousSyscalls(
        "SBX114",
        "mount syscalls are allowed",
        (
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "open_tree",
            "mount_setattr",
        ),
        "changing the mount table undoes the container's file system",
    ),
    DangerousSyscalls(
        "SBX115",
        "unshare or setns is allowed",
        ("unshare", "setns"),
        "a new user namespace hands the payload a full capability set in it",
    ),
    DangerousSyscalls(
        "SBX117",
        "perf_event_open is allowed",
        ("perf_event_open",),
        "performance counters leak other tenants' activity and have many CVEs",
    ),
    DangerousSyscalls(
        "SBX118", "kexec is allowed", ("kexec_load", "kexec_file_load"), "it replaces the kernel"
    ),
    DangerousSyscalls(
        "SBX119",
        "kernel module syscalls are allowed",
        ("init_module", "finit_module", "delete_module", "create_module"),
        "a module runs in the kernel",
    ),
    DangerousSyscalls(
        "SBX120",
        "open_by_handle_at is allowed",
        ("open_by_handle_at",),
        "file handles bypass path-based confinement (the 'shocker' escape)",
    ),
    DangerousSyscalls(
        "SBX121",
        "io_uring is allowed",
        ("io_uring_setup", "io_uring_enter", "io_uring_register"),
        "io_uring performs I/O that seccomp never sees, and has a long CVE record",
    ),
)


def _arches_running(ctx: LintContext, name: str) -> list[str]:
    return [arch for arch, names in ctx.runs.items() if name in names]


def _register_syscall_family(fam: DangerousSyscalls) -> None:
    def check(ctx: LintContext) -> Iterator[Hit]:
        for name in fam.names:
            arches = _arches_running(ctx, name)
            if arches:
                yield Hit(name, f"{name} can run ({', '.join(arches)}): {fam.why}")

    rule(
        fam.id,
        "error",
        "seccomp",
        "danger",
        fam.title,
        "leave it out of seccomp.allow and of the groups, or add it to seccomp.deny",
    )(check)


for _fam in DANGEROUS_SYSCALLS:
    _register_syscall_family(_fam)

# CLONE_NEW* flags legacy clone can take (CLONE_NEWTIME is in its exit-signal byte).
CLONE_NS_FLAGS: Mapping[str, int] = MappingProxyType(
    {
        "CLONE_NEWNS": 0x00020000,
        "CLONE_NEWCGROUP": 0x02000000,
        "CLONE_NEWUTS": 0x04000000,
        "CLONE_NEWIPC": 0x08000000,
        "CLONE_NEWUSER": 0x10000000,
        "CLONE_NEWPID": 0x20000000,
        "CLONE_NEWNET": 0x40000000,
    }
)
_FORK_FLAGS = (0, 0x11, 0x01200011)  # bare, SIGCHLD, glibc fork()'s flags


def _runs_with(ctx: LintContext, name: str, args: tuple[int, ...]) -> list[str]:
    assert ctx.spec is not None
    return [
        arch
        for arch, info in ARCHES.items()
        if table(arch).nr(name) is not None
        and syscall_ret(ctx.spec, name, args, info.word_bits) in _RUNS
    ]


@rule(
    "SBX116",
    "error",
    "seccomp",
    "danger",
    "clone can create namespaces",
    "use the 'process' group (clone without CLONE_NEW* flags, clone3 -> ENOSYS) "
    "instead of allowing clone or clone3 outright",
)
def _clone_namespaces(ctx: LintContext) -> Iterator[Hit]:
    if ctx.spec is None:
        return
    for flag_name, flag in CLONE_NS_FLAGS.items():
        arches = sorted(
            {a for base in _FORK_FLAGS for a in _runs_with(ctx, "clone", (base | flag,))}
        )
        if arches:
            yield Hit(
                f"clone({flag_name})",
                f"clone with {flag_name} can run ({', '.join(arches)})",
            )
    arches = _arches_running(ctx, "clone3")
    if arches:
        yield Hit(
            "clone3",
            f"clone3 can run ({', '.join(arches)}): its flags are in memory, where seccomp "
            "cannot check them, so it can create any namespace",
        )


TIOCSTI, TIOCLINUX = 0x5412, 0x541C


@rule(
    "SBX122",
    "error",
    "seccomp",
    "danger",
    "ioctl TIOCSTI or TIOCLINUX is allowed",
    "use the 'basic_io' group, whose ioctl rule refuses both on the low 32 bits of cmd",
)
def _tiocsti(ctx: LintContext) -> Iterator[Hit]:
    if ctx.spec is None:
        return
    for req_name, req in (("TIOCSTI", TIOCSTI), ("TIOCLINUX", TIOCLINUX)):
        # The kernel reads cmd as an unsigned int: high bits must not hide it
        # (CVE-2019-10063, bubblewrap).
        arches = sorted(
            {a for cmd in (req, req | 1 << 32) for a in _runs_with(ctx, "ioctl", (0, cmd))}
        )
        if arches:
            yield Hit(
                f"ioctl({req_name})",
                f"ioctl {req_name} can run ({', '.join(arches)}): it types into, or "
                "pastes onto, a terminal the sandbox may share with its caller",
            )


# ---------------------------------------------------------- filesystem/mounts
@rule(
    "SBX130",
    "warning",
    "filesystem",
    "danger",
    "a host path is bound writable",
    "bind it read-only, or copy results out of /box instead of writing to the host",
)
def _writable_binds(ctx: LintContext) -> Iterator[Hit]:
    for b in ctx.policy.filesystem.binds:
        if b.writable:
            yield Hit(
                b.target,
                f"filesystem.binds: host {b.source} is writable at {b.target}: the payload "
                "changes host files, which outlive the run",
            )


@rule(
    "SBX131",
    "error",
    "filesystem",
    "danger",
    "a mount lacks nosuid or nodev",
    "mount it with MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV (sandbox/fs/mounts.py)",
)
def _mount_flags(ctx: LintContext) -> Iterator[Hit]:
    for m in ctx.mounts or ():
        missing = [n for bit, n in ((NOSUID, "nosuid"), (NODEV, "nodev")) if not m.has(bit)]
        if m.target == "/dev" and missing == ["nodev"]:
            continue  # the container's /dev holds the five safe nodes: it needs devices
        if missing:
            yield Hit(
                m.target,
                f"{m.target} ({m.source}) is mounted {m.options}, without {', '.join(missing)}",
            )


# ------------------------------------------------------------------ namespaces
@rule(
    "SBX132",
    "warning",
    "namespaces",
    "danger",
    "the payload shares the host's network",
    "set namespaces.net = true: the payload then sees only its own loopback",
)
def _shared_net(ctx: LintContext) -> Iterator[Hit]:
    if not ctx.policy.namespaces.net:
        yield Hit(
            "net",
            "namespaces.net = false: the payload uses the host's network stack"
            + (" (strict allows loopback only)" if ctx.strict else ""),
            severity=_strict_severity(ctx),
        )


@rule(
    "SBX133",
    "warning",
    "namespaces",
    "danger",
    "a namespace is shared with the host",
    "set the namespace back to true",
)
def _shared_ns(ctx: LintContext) -> Iterator[Hit]:
    for ns in ("pid", "ipc", "uts", "cgroup"):
        if not getattr(ctx.policy.namespaces, ns):
            yield Hit(
                ns,
                f"namespaces.{ns} = false: the payload shares the host's {ns} namespace",
                severity=_strict_severity(ctx),
            )


@rule(
    "SBX134",
    "warning",
    "namespaces",
    "danger",
    "the payload may create user namespaces",
    "set namespaces.nested_userns = false",
)
def _nested_userns(ctx: LintContext) -> Iterator[Hit]:
    if ctx.policy.namespaces.nested_userns:
        yield Hit(
            "nested_userns",
            "namespaces.nested_userns = true: a nested user namespace gives the payload "
            "every capability inside it, and the kernel code those reach",
            severity=_strict_severity(ctx),
        )


# -------------------------------------------------------------------- AppArmor
_QUALIFIERS = frozenset({"audit", "allow", "owner", "quiet", "priority"})


def _strip_comment(line: str) -> str:
    """The line without its ``#`` comment (a ``#`` inside quotes or escaped stays)."""
    quoted = escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
    return line


def apparmor_statements(ctx: LintContext) -> list[str]:
    """Allow-rule statements of the rendered profile and of ``apparmor.extra_rules``.

    Deny rules, comments, the profile header and braces are left out; each
    statement is stripped and ends with ``,``. Extra rules are linted even
    when rendering refused them, so a finding never depends on whether the
    renderer got that far.
    """
    raw = [] if ctx.apparmor_text is None else ctx.apparmor_text.splitlines()
    raw += [r if r.strip().endswith(",") else r + "," for r in ctx.policy.apparmor.extra_rules]
    out = []
    for line in raw:
        s = _strip_comment(line).strip()
        if not s or s in ("}", "{") or s.startswith(("abi ", "include ", "profile ")):
            continue
        words = s.split()
        while words and words[0] in _QUALIFIERS:
            words.pop(0)
        if not words or words[0] == "deny":
            continue
        out.append(" ".join(words))
    return sorted(set(out))


def _profile_flags(ctx: LintContext) -> list[str]:
    text = ctx.apparmor_text or ""
    return re.findall(r"^\s*profile\s+\S+\s+flags=\(([^)]*)\)", text, re.M)


_EXEC_UNCONFINED = re.compile(r"[pPcC]?[uU]x")


@rule(
    "SBX140",
    "error",
    "apparmor",
    "danger",
    "an AppArmor rule lets an exec leave confinement",
    "use 'ix' (inherit this profile); never ux/Ux/pux/cux",
)
def _aa_unconfined(ctx: LintContext) -> Iterator[Hit]:
    for flags in _profile_flags(ctx):
        if "unconfined" in re.split(r"[\s,]+", flags):
            yield Hit("flags=(unconfined)", "the profile is flagged unconfined")
    for stmt in apparmor_statements(ctx):
        perms = [t for t in stmt.rstrip(",").split() if not t.startswith(('"', "/", "@", "{"))]
        if any(
            re.fullmatch(r"[rwaklmixuUpPcCD]+", t) and _EXEC_UNCONFINED.search(t) for t in perms
        ):
            yield Hit(stmt, f"AppArmor rule {stmt!r} runs programs unconfined")


def _aa_rule(word: str, bare_only: bool = False) -> Callable[[LintContext], Iterator[Hit]]:
    def check(ctx: LintContext) -> Iterator[Hit]:
        for stmt in apparmor_statements(ctx):
            head = stmt.rstrip(",").split()
            names = _MOUNTISH if word == "mount" else {word}
            if not head or head[0] not in names or (bare_only and len(head) > 1):
                continue
            yield Hit(stmt, f"AppArmor allow rule {stmt!r}")

    return check


_MOUNTISH = frozenset({"mount", "remount", "umount", "pivot_root"})
rule(
    "SBX141",
    "error",
    "apparmor",
    "danger",
    "AppArmor grants every capability (bare 'capability,')",
    "list the capabilities (capabilities.keep renders them), or 'deny capability,'",
)(_aa_rule("capability", bare_only=True))
rule(
    "SBX142",
    "error",
    "apparmor",
    "danger",
    "AppArmor allows mount, remount, umount or pivot_root",
    "drop the rule; the generated profile denies mount, umount and pivot_root",
)(_aa_rule("mount"))
rule(
    "SBX143",
    "error",
    "apparmor",
    "danger",
    "AppArmor allows ptrace",
    "drop the rule; the generated profile denies ptrace",
)(_aa_rule("ptrace"))


# ------------------------------------------------------------------ consistency
def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def provided(policy: Policy, path: str, root: Path = Path("/")) -> bool:
    """Whether anything in the container provides ``path`` (inside path).

    The container is the default image (or ``rootfs`` layers), the host
    directories bound into it, the policy's binds and tmpfs, the writable
    trees, ``/proc`` and ``/dev``. Inside writable trees and tmpfs anything
    may appear at run time, so those count as provided.
    """
    fs = policy.filesystem
    if any(_under(path, t) for t in (*fs.writable, *(t.target for t in fs.tmpfs), "/proc", "/dev")):
        return True

    def host(p: str) -> str:
        return os.path.join(root, p.lstrip("/"))

    binds = [(b.target, b.source) for b in fs.binds]
    if not fs.rootfs:
        binds += [(d, d) for d in fs.host_dirs]
        binds += [(f"/{d}", f"/{d}") for d in MERGED_USR if not os.path.islink(host(d))]
    for target, source in sorted(binds, key=lambda b: -len(b[0])):
        if _under(path, target):
            return os.path.lexists(host(source + path[len(target) :]))
    if any(_under(t, path) for t, _ in binds):
        return True  # a parent directory of a mount point
    if fs.rootfs:
        return any(os.path.lexists(os.path.join(layer, path.lstrip("/"))) for layer in fs.rootfs)
    rel = path.strip("/")
    top = rel.split("/", 1)[0]
    if not rel or rel in MOUNT_POINTS or any(m.startswith(rel + "/") for m in MOUNT_POINTS):
        return True
    if top in MERGED_USR and os.path.islink(host(top)):
        return os.path.lexists(host(rel))
    return top == "etc" and os.path.lexists(host(rel))


@rule(
    "SBX150",
    "warning",
    "filesystem",
    "consistency",
    "a path is granted but nothing mounts it",
    "remove it from read_paths/exec_paths, or add the bind or tmpfs that provides it",
)
def _unmounted(ctx: LintContext) -> Iterator[Hit]:
    fs = ctx.policy.filesystem
    for key, paths in (("read_paths", fs.read_paths), ("exec_paths", fs.exec_paths)):
        for p in sorted(set(paths)):
            if not provided(ctx.policy, p, ctx.root):
                yield Hit(
                    p,
                    f"filesystem.{key} grants {p}, which does not exist in the container",
                )


# Syscalls that always need a capability, whatever their arguments (the
# payload has none it does not keep, in any user namespace).
SYSCALL_CAPS: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "mount",
                "umount",
                "umount2",
                "pivot_root",
                "move_mount",
                "fsopen",
                "fsconfig",
                "fsmount",
                "fspick",
                "open_tree",
                "mount_setattr",
                "swapon",
                "swapoff",
                "sethostname",
                "setdomainname",
                "quotactl",
                "quotactl_fd",
                "lookup_dcookie",
            ),
            "CAP_SYS_ADMIN",
        ),
        "chroot": "CAP_SYS_CHROOT",
        "reboot": "CAP_SYS_BOOT",
        "kexec_load": "CAP_SYS_BOOT",
        "kexec_file_load": "CAP_SYS_BOOT",
        "init_module": "CAP_SYS_MODULE",
        "finit_module": "CAP_SYS_MODULE",
        "delete_module": "CAP_SYS_MODULE",
        "settimeofday": "CAP_SYS_TIME",
        "clock_settime": "CAP_SYS_TIME",
        "stime": "CAP_SYS_TIME",
        "acct": "CAP_SYS_PACCT",
        "iopl": "CAP_SYS_RAWIO",
        "ioperm": "CAP_SYS_RAWIO",
        "vhangup": "CAP_SYS_TTY_CONFIG",
        "open_by_handle_at": "CAP_DAC_READ_SEARCH",
        "setgroups": "CAP_SETGID",
        "setgroups32": "CAP_SETGID",
    }
)


@rule(
    "SBX151",
    "warning",
    "seccomp",
    "consistency",
    "a syscall is allowed whose capability is dropped",
    "drop the syscall from the allow-list (it can only fail with EPERM), or keep the "
    "capability if the program really needs it",
)
def _cap_dropped(ctx: LintContext) -> Iterator[Hit]:
    kept = kept_caps(ctx.policy)
    running = {n for names in ctx.runs.values() for n in names}
    for name in sorted(running & set(SYSCALL_CAPS)):
        cap = SYSCALL_CAPS[name]
        if cap not in kept:
            yield Hit(name, f"{name} is allowed but needs {cap}, which the payload does not keep")


# The layers profiles/strict.toml requires: Layers' defaults are exactly those.
STRICT_REQUIRED = tuple(
    name for name, info in Layers.model_fields.items() if info.default == "required"
)


@rule(
    "SBX152",
    "warning",
    "layers",
    "consistency",
    "a layer strict requires may be skipped",
    'set it to "required" (a run then refuses where it cannot be enforced)',
)
def _degradable(ctx: LintContext) -> Iterator[Hit]:
    layers = ctx.policy.layers
    for name in STRICT_REQUIRED:
        mode = getattr(layers, name)
        if mode != "required":
            yield Hit(
                name,
                f'layers.{name} = "{mode}", but strict requires it'
                + (" and this profile extends strict" if ctx.strict else ""),
                severity=_strict_severity(ctx),
            )
    if not layers.file_mediation:
        yield Hit(
            "file_mediation",
            "layers.file_mediation = false: file access may go unmediated "
            "(neither Landlock nor AppArmor)",
            severity=_strict_severity(ctx),
            fix="set layers.file_mediation = true",
        )


@rule(
    "SBX153",
    "warning",
    "seccomp",
    "consistency",
    "a syscall in seccomp.allow is also denied (deny wins)",
    "drop it from seccomp.allow: a deny, here or in a profile this one extends, always wins",
)
def _allow_denied(ctx: LintContext) -> Iterator[Hit]:
    sc = ctx.policy.seccomp
    for name in sorted(set(sc.allow) & set(sc.deny)):
        yield Hit(name, f"seccomp.allow lists {name}, which seccomp.deny refuses")


@rule(
    "SBX154",
    "warning",
    "capabilities",
    "consistency",
    "a capability in keep is also denied (deny wins)",
    "drop it from capabilities.keep",
)
def _keep_denied(ctx: LintContext) -> Iterator[Hit]:
    caps = ctx.policy.capabilities
    denied = {normalize(c) for c in caps.deny}
    for cap in sorted({normalize(c) for c in caps.keep} & denied):
        yield Hit(cap, f"capabilities.keep lists {cap}, which capabilities.deny removes")


@rule(
    "SBX155",
    "warning",
    "namespaces",
    "consistency",
    "a hostname is set without a UTS namespace",
    "set namespaces.uts = true, or leave identity.hostname at its default",
)
def _hostname_without_uts(ctx: LintContext) -> Iterator[Hit]:
    pol = ctx.policy
    default = type(pol.identity).model_fields["hostname"].default
    if not pol.namespaces.uts and pol.identity.hostname != default:
        yield Hit(
            "hostname",
            f"identity.hostname = {pol.identity.hostname!r} cannot be set: "
            "namespaces.uts = false shares the host's (youki HostnameWithoutUTS)",
        )


def ids(kind: Kind | None = None) -> list[str]:
    """Registered rule ids, of one class or all."""
    return sorted(i for i, r in RULES.items() if kind is None or r.kind == kind)

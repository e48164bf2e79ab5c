"""Danger rules over capabilities and the seccomp filter (SBX101-SBX123).

Seccomp rules ask the reference model what the filter returns, for every
x86 ABI, so a syscall reached through a group, an i386 multiplexer or an
argument rule is judged by what will run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sandbox.caps.names import CAPS, DANGEROUS
from sandbox.seccomp.reference import syscall_ret
from sandbox.seccomp.tables import ARCHES, table
from sandbox.syscalls.consts import CloneFlag
from sandbox.verify.findings import Severity
from sandbox.verify.lint.base import MOUNT_SYSCALLS, RUNS, Hit, LintContext, kept_caps, rule

# Each of these alone is a known way out of a container (CVE-2022-0492 needs
# CAP_SYS_ADMIN; "shocker" needs CAP_DAC_READ_SEARCH; ptrace and modules need
# no explanation). The issue names the first four as blocking.
BLOCKING_CAPS = frozenset({"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE", "CAP_DAC_OVERRIDE"})


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


@rule(
    "SBX104",
    "warning",
    "capabilities",
    "danger",
    "a capability is kept",
    "remove it from capabilities.keep: strict's payload keeps none, and each one is kernel "
    "code the payload reaches that others cannot",
)
def _other_caps(ctx: LintContext) -> Iterator[Hit]:
    for cap in sorted(kept_caps(ctx.policy) - DANGEROUS):
        yield Hit(
            cap,
            f"capabilities.keep grants {cap} (in the run's user namespace: "
            "its ids, files and the kernel paths it opens)",
        )


# SBX101, SBX102 and SBX104 together: every kept capability is flagged.
FLAGGED_CAPS = frozenset(CAPS)


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
    severity: Severity = "error"


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
        MOUNT_SYSCALLS,
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
    DangerousSyscalls(
        "SBX123",
        "a syscall that reaches host-wide state is allowed",
        (
            "sync",
            "io_setup",
            "io_submit",
            "io_getevents",
            "io_pgetevents",
            "io_cancel",
            "io_destroy",
            "memfd_secret",
            "fanotify_init",
            "fanotify_mark",
            "vhangup",
        ),
        "strict leaves it out on purpose: sync flushes every file system of the host, "
        "native AIO draws on the host-wide fs.aio-max-nr, secret memory on a host-wide "
        "pool, fanotify watches whole file systems, vhangup hangs up a terminal the run "
        "may share with its caller",
        "warning",
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
        fam.severity,
        "seccomp",
        "danger",
        fam.title,
        "leave it out of seccomp.allow and of the groups, or add it to seccomp.deny",
    )(check)


for _fam in DANGEROUS_SYSCALLS:
    _register_syscall_family(_fam)


def flagged_syscalls() -> dict[str, str]:
    """Syscall name -> the danger rule that flags allowing it outright (``sandbox learn``
    never grants these without ``--allow-dangerous``)."""
    out = {name: fam.id for fam in DANGEROUS_SYSCALLS for name in fam.names}
    out["clone3"] = "SBX116"  # its flags are in memory: any namespace
    return out


# CLONE_NEW* flags legacy clone can take (CLONE_NEWTIME is in its exit-signal byte).
CLONE_NS_FLAGS: Mapping[str, int] = MappingProxyType(
    {str(f.name): int(f) for f in CloneFlag if f is not CloneFlag.CLONE_NEWTIME}
)
_FORK_FLAGS = (0, 0x11, 0x01200011)  # bare, SIGCHLD, glibc fork()'s flags


def _runs_with(ctx: LintContext, name: str, args: tuple[int, ...]) -> list[str]:
    assert ctx.spec is not None
    return [
        arch
        for arch, info in ARCHES.items()
        if table(arch).nr(name) is not None
        and syscall_ret(ctx.spec, name, args, info.word_bits) in RUNS
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

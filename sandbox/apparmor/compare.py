"""Where AppArmor and Landlock decide differently for the same policy.

Pure: a function of the policy and the host's Landlock ABI, for ``sandbox
explain`` (which prints :func:`differences`) and for the access-matrix tests
(tests/access_matrix.py), which run the same accesses under each layer alone
and assert equal decisions except for the differences listed here, and that
each listed difference really shows. docs/apparmor-vs-landlock.md explains
each one and holds the measured matrix.

Both layers get their grants from the same policy keys (``read_paths``,
``exec_paths``, ``writable``, ``binds``, ``tmpfs``, the program and its
interpreter, the safe device nodes), so for ordinary accesses they agree.
What remains are differences of mechanism:

- AppArmor matches *path names* at each access and has deny rules; Landlock
  grants rights to *inodes* present at ``landlock_restrict_self`` and to
  everything beneath them, and cannot deny anything inside a granted tree;
- each mediates operations the other does not (AppArmor: mmap PROT_EXEC,
  truncate on every ABI, signals by profile, every socket family; Landlock:
  TCP ports from ABI 4, scoped signals and abstract sockets from ABI 6).
  Signals and abstract sockets are left out below: inside the container
  the pid and network namespaces and the uid leave nothing to reach (the
  payload's kill(1, ...) fails with EPERM without either layer);
- Landlock's coverage grows with its ABI (REFER 2, TRUNCATE 3, TCP 4,
  IOCTL_DEV 5, scopes 6).

Not in ``sandbox.apparmor``'s ``__init__`` on purpose: the launcher imports
that package (for ``onexec``) and must not load the policy models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.policy.frozen import Policy

DOC = "docs/apparmor-vs-landlock.md"


@dataclass(frozen=True, slots=True)
class Difference:
    """One known difference between the two file layers for a policy.

    Attributes:
        key: stable identifier (also the anchor in the doc).
        summary: one line for ``sandbox explain``.
        apparmor: what AppArmor decides.
        landlock: what Landlock decides.
        example: an access that shows it under this policy, or "".
    """

    key: str
    summary: str
    apparmor: str
    landlock: str
    example: str = ""

    @property
    def doc(self) -> str:
        """Where the difference is explained."""
        return f"{DOC}#{self.key}"


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _strictly_under(path: str, tree: str) -> bool:
    return path != tree and _under(path, tree)


_DENY = re.compile(r"^\s*(?:audit\s+)?deny\s")
_FILE_ALLOW = re.compile(r'^\s*(?:audit\s+)?(?:owner\s+)?(?:file\s+)?["/]|^\s*[a-z]+\s+["/]')


def differences(policy: Policy, landlock_abi: int) -> tuple[Difference, ...]:
    """The decisions that differ between AppArmor alone and Landlock alone under ``policy``.

    Args:
        policy: the resolved policy (what both layers are generated from).
        landlock_abi: the host's Landlock ABI (0: no Landlock at all).

    Returns:
        The differences that apply, most important first. Empty only if the
        two layers decide every access alike (they never quite do).
    """
    if landlock_abi <= 0:
        return (
            Difference(
                "no-landlock",
                "this kernel has no Landlock: only AppArmor mediates files",
                "decides as the profile says",
                "off: allows everything the mounts and file modes allow",
            ),
        )
    fs = policy.filesystem
    out: list[Difference] = []
    writable = [*fs.writable, *(b.target for b in fs.binds if b.writable)]
    writable += [t.target for t in fs.tmpfs]
    execs = [*fs.exec_paths, *(b.target for b in fs.binds if b.exec)]
    out += _rules(policy)
    out += _mmap_exec(writable, execs, fs.read_paths)
    if landlock_abi < 2:
        out.append(
            Difference(
                "refer",
                "Landlock ABI 1 refuses every rename or link across directories",
                "allows them inside writable trees",
                "denies them (EXDEV), even inside one writable tree",
                f"rename of {writable[0]}/a/f to {writable[0]}/b/f" if writable else "",
            )
        )
    if landlock_abi < 3:
        ro = [p for p in fs.read_paths if not any(_under(p, w) for w in writable)]
        out.append(
            Difference(
                "truncate",
                f"Landlock ABI {landlock_abi} < 3 does not mediate truncate(2) or O_TRUNC",
                "truncation needs write permission ('w')",
                "any file the mounts and modes let the payload truncate can be truncated",
                "truncate(2) of /proc/self/comm" if "/proc" in ro else "",
            )
        )
    out.append(
        Difference(
            "host-stdio",
            "stdio the supervisor opened from a host file (--stdin FILE, an inherited "
            "/dev/null or file) is a disconnected path for AppArmor",
            "read and write work (delegated by the unconfined launcher), fstat(2) is EACCES",
            "does not look at descriptors already open: fstat works",
            "fstat(0) with --stdin FILE",
        )
    )
    out += _network(policy, landlock_abi)
    out += _late_paths(execs, writable)
    return tuple(out)


def _rules(policy: Policy) -> list[Difference]:
    out = []
    denies = [r for r in policy.apparmor.extra_rules if _DENY.match(r)]
    allows = [r for r in policy.apparmor.extra_rules if not _DENY.match(r)]
    if denies:
        out.append(
            Difference(
                "deny-inside-tree",
                "apparmor.extra_rules deny paths that Landlock cannot deny: Landlock has no "
                "deny rules, and rights on a tree cover everything in it",
                "denies what the deny rules name",
                "allows it when a granted tree contains it",
                f"apparmor.extra_rules: {denies[0]}",
            )
        )
    if allows and any(_FILE_ALLOW.match(r) for r in allows):
        out.append(
            Difference(
                "extra-allow",
                "apparmor.extra_rules grant file access that only AppArmor knows of",
                "allows what the extra rules grant",
                "denies it unless a policy path grants it",
                f"apparmor.extra_rules: {allows[0]}",
            )
        )
    return out


def _mmap_exec(writable: list[str], execs: list[str], reads: list[str]) -> list[Difference]:
    no_exec_writable = [w for w in writable if not any(_under(w, e) for e in execs)]
    no_exec_readable = [r for r in reads if not any(_under(r, e) for e in execs)]
    if not (no_exec_writable or no_exec_readable):
        return []
    where = no_exec_writable[0] if no_exec_writable else no_exec_readable[0]
    return [
        Difference(
            "mmap-exec",
            "Landlock does not mediate mmap(PROT_EXEC): files outside exec_paths can be "
            "mapped executable, so the dynamic loader runs them (ld.so FILE)",
            "mmap PROT_EXEC needs 'm' (exec_paths only): denied, ld.so FILE fails",
            "allowed: only execve(2) of the file is denied",
            f"ld.so {where}/program" + (" (a file the payload wrote)" if no_exec_writable else ""),
        )
    ]


def _inet_sockets(policy: Policy) -> bool:
    """Whether seccomp lets the payload create AF_INET sockets at all.

    The shipped groups allow AF_UNIX only (``sockets_local``); ``socket`` in
    ``allow`` or an allowing default lets every family through.
    """
    sc = policy.seccomp
    return (
        sc.default_action in ("allow", "log")
        or bool({"socket", "socketcall"} & set(sc.allow))
        or "sockets_tcp" in sc.groups
    )


def _network(policy: Policy, abi: int) -> list[Difference]:
    mode = policy.network.mode
    inet = _inet_sockets(policy)
    ports = policy.network.tcp_ports
    if mode == "loopback" and abi >= 4 and inet:
        granted = ", ".join(str(p) for p in sorted(set(ports)))
        return [
            Difference(
                "tcp",
                (
                    f"Landlock (ABI >= 4) allows TCP bind and connect on ports {granted} only; "
                    if ports
                    else "Landlock (ABI >= 4) denies every TCP bind and connect; "
                )
                + "AppArmor allows inet sockets on the loopback-only network",
                "allows TCP on lo, any port",
                (f"allows ports {granted}, denies the others" if ports else "denies TCP")
                + " (EACCES); UDP is not mediated",
                "connect(2) to 127.0.0.1 over TCP" + (" on an unlisted port" if ports else ""),
            )
        ]
    if mode == "none" and (inet or "sockets_local" in policy.seccomp.groups):
        return [
            Difference(
                "sockets",
                "network.mode = none: AppArmor denies every socket, Landlock only TCP"
                + (" (ABI >= 4)" if abi >= 4 else " (and not even that below ABI 4)"),
                "denies socket(2) of every family, AF_UNIX included",
                "allows AF_UNIX and UDP sockets"
                + ("; abstract AF_UNIX is scoped from ABI 6" if abi < 6 else ""),
                "socket(AF_UNIX, SOCK_STREAM)",
            )
        ]
    return []


def _late_paths(execs: list[str], writable: list[str]) -> list[Difference]:
    """exec_paths inside a writable tree that is not executable itself.

    (Read paths there change nothing: the writable tree grants read anyway.)
    """
    inside = sorted(
        {
            e
            for e in execs
            for w in writable
            if _strictly_under(e, w) and not any(_under(w, x) for x in execs)
        }
    )
    if not inside:
        return []
    return [
        Difference(
            "names-vs-inodes",
            "exec_paths inside a writable tree: AppArmor follows names, Landlock the "
            "inodes present when the payload started",
            f"{inside[0]} is executable whenever a file has that name, made during the run "
            "or renamed there",
            f"a {inside[0]} missing at start gets no rule (not executable); a tree renamed "
            "away keeps its rights",
            f"exec of a file the payload writes to {inside[0]}",
        )
    ]

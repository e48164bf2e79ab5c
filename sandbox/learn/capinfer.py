"""Capabilities a program needed, inferred from capability-gated syscalls (pure).

Seccomp cannot see capabilities: a notification carries the syscall and its
arguments, never the kernel's permission check, and a CONTINUE reply does not
return the result. But the learning run's capability sets are known (empty,
or what the base keeps), and for the syscalls below the kernel's rule is
simple enough to evaluate from the arguments and the task's ids: when it says
a capability the task lacks is needed, the kernel answers EPERM. That is the
inference, and the profile says so. What it cannot see (a kill() aimed at
another user's process, raising a hard rlimit, setxattr of trusted.*) is
left out rather than guessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sandbox.caps.names import CAPS
from sandbox.learn.events import CapEvent
from sandbox.syscalls.consts import CloneFlag

if TYPE_CHECKING:
    from sandbox.syscalls.taskmem import Creds

UNCHANGED = 0xFFFFFFFF  # (uid_t)-1: "leave this id alone"
S_IFMT, S_IFCHR, S_IFBLK = 0o170000, 0o020000, 0o060000
AF_INET, AF_INET6, AF_PACKET = 2, 10, 17
SOCK_RAW = 3
SCHED_FIFO, SCHED_RR = 1, 2

# Always gated, whatever the arguments (the base usually denies these outright,
# so they are refused before this table matters).
_ALWAYS = {
    "sethostname": "CAP_SYS_ADMIN",
    "setdomainname": "CAP_SYS_ADMIN",
    "chroot": "CAP_SYS_CHROOT",
    "setgroups": "CAP_SETGID",
    "vhangup": "CAP_SYS_TTY_CONFIG",
    "iopl": "CAP_SYS_RAWIO",
    "ioperm": "CAP_SYS_RAWIO",
    "reboot": "CAP_SYS_BOOT",
    "acct": "CAP_SYS_PACCT",
    "swapon": "CAP_SYS_ADMIN",
    "swapoff": "CAP_SYS_ADMIN",
    "settimeofday": "CAP_SYS_TIME",
    "clock_settime": "CAP_SYS_TIME",
    "mount": "CAP_SYS_ADMIN",
    "umount2": "CAP_SYS_ADMIN",
    "pivot_root": "CAP_SYS_ADMIN",
    "init_module": "CAP_SYS_MODULE",
    "finit_module": "CAP_SYS_MODULE",
    "delete_module": "CAP_SYS_MODULE",
}
# Namespace flags that ask for CAP_SYS_ADMIN (CLONE_NEWTIME sits in legacy clone's
# exit-signal byte). The mask has held CLONE_NEWUSER since it was written as
# 0x7E020000, though an unprivileged user namespace needs no capability: kept as
# it was here (a constants-only change), open for the learn code's owner.
_CLONE_NS = int(
    CloneFlag.CLONE_NEWNS
    | CloneFlag.CLONE_NEWCGROUP
    | CloneFlag.CLONE_NEWUTS
    | CloneFlag.CLONE_NEWIPC
    | CloneFlag.CLONE_NEWUSER
    | CloneFlag.CLONE_NEWPID
    | CloneFlag.CLONE_NEWNET
)


def _ids(values: Sequence[int]) -> set[int]:
    return {v & 0xFFFFFFFF for v in values}


def _set_ids(
    want: Sequence[int], held: Sequence[int], name: str, cap: str
) -> list[tuple[str, str]]:
    """set*id: each id asked for (not -1) must be one the task already holds."""
    have = _ids(held)
    bad = [w & 0xFFFFFFFF for w in want if w & 0xFFFFFFFF not in (UNCHANGED, *have)]
    if bad:
        return [(cap, f"{name}({', '.join(str(b) for b in bad)}): ids not held")]
    return []


def _needs(
    name: str, a: Sequence[int], creds: Callable[[], Creds | None], port: int | None
) -> list[tuple[str, str]]:
    if name in _ALWAYS:
        return [(_ALWAYS[name], f"{name}()")]
    if name in ("clone", "unshare") and a[0] & _CLONE_NS:
        return [("CAP_SYS_ADMIN", f"{name}(flags={a[0] & 0xFFFFFFFF:#x}): namespace flags")]
    if name in ("mknod", "mknodat"):
        mode = a[1] if name == "mknod" else a[2]
        if mode & S_IFMT in (S_IFCHR, S_IFBLK):
            return [("CAP_MKNOD", f"{name}(mode={mode & 0xFFFF:#o}): a device node")]
        return []
    if name == "socket":
        if a[0] & 0xFFFFFFFF == AF_PACKET or a[1] & 0xF == SOCK_RAW:
            return [("CAP_NET_RAW", f"socket({a[0]}, {a[1] & 0xF}): raw or packet socket")]
        return []
    if name == "bind" and port is not None and 0 < port < 1024:
        return [("CAP_NET_BIND_SERVICE", f"bind(port {port})")]
    if name in ("sched_setscheduler",) and a[1] & 0xFFFFFFFF in (SCHED_FIFO, SCHED_RR):
        return [("CAP_SYS_NICE", f"{name}(policy={a[1]}): real-time scheduling")]
    return _by_creds(name, a, creds)


def _by_creds(
    name: str, a: Sequence[int], creds: Callable[[], Creds | None]
) -> list[tuple[str, str]]:
    """Rules that need the task's own ids (read only for these syscalls)."""
    owner_args = {"chown": (1, 2), "lchown": (1, 2), "fchown": (1, 2), "fchownat": (2, 3)}
    uid_sets = {"setuid": 1, "setreuid": 2, "setresuid": 3, "setfsuid": 1}
    gid_sets = {"setgid": 1, "setregid": 2, "setresgid": 3, "setfsgid": 1}
    if name not in owner_args and name not in uid_sets and name not in gid_sets:
        if name == "setpriority":
            c = creds()
            prio = a[2] & 0xFFFFFFFF
            prio = prio - (1 << 32) if prio & 0x80000000 else prio
            if c is not None and a[1] == 0 and prio < c.nice:
                return [("CAP_SYS_NICE", f"setpriority({prio}): below the current nice {c.nice}")]
        return []
    c = creds()
    if c is None:
        return []
    if name in owner_args:
        u, g = (a[i] & 0xFFFFFFFF for i in owner_args[name])
        out = []
        if u != UNCHANGED and u != c.uids[3]:
            out.append(("CAP_CHOWN", f"{name}(uid={u}): another owner"))
        if g != UNCHANGED and g not in {c.gids[3], *c.groups}:
            out.append(("CAP_CHOWN", f"{name}(gid={g}): a group not held"))
        return out[:1]
    if name in uid_sets:
        return _set_ids(a[: uid_sets[name]], c.uids, name, "CAP_SETUID")
    return _set_ids(a[: gid_sets[name]], c.gids, name, "CAP_SETGID")


def infer(
    name: str, args: Sequence[int], creds: Callable[[], Creds | None], port: int | None = None
) -> list[CapEvent]:
    """Capabilities ``name(args)`` needs and the task lacks (empty when none or unknown).

    ``creds`` is called only for the syscalls whose rule depends on the task's
    ids; ``port`` is the port of a ``bind``'s address, when decoded.
    """
    needs = _needs(name, args, creds, port)
    if not needs:
        return []
    c = creds() if needs else None
    out = []
    for cap, why in needs:
        if c is not None and c.cap_eff >> CAPS[cap] & 1:
            continue  # held: the syscall succeeds
        out.append(CapEvent(cap, why))
    return out


__all__ = ["infer"]

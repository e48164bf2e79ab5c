"""Seccomp return values: the policy's action names <-> the kernel's 32-bit codes.

Pure; used by the builder, the reference model, the interpreter and the
simulator, which all compare actions as the exact value a filter returns
(``SECCOMP_RET_*`` from ``linux/seccomp.h``), never as strings.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Mapping
from types import MappingProxyType

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ACTION_FULL = 0xFFFF0000
SECCOMP_RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095  # the kernel clamps ERRNO data to this (kernel/seccomp.c)
LIBSECCOMP_MAX_ERRNO = MAX_ERRNO - 1  # libseccomp 2.5 accepts ERRNO(x) only for x < 4095

SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3

# Policy action name -> return value (ERRNO's data is added by action_ret()).
ACTION_RET: Mapping[str, int] = MappingProxyType(
    {
        "kill_process": SECCOMP_RET_KILL_PROCESS,
        "kill_thread": SECCOMP_RET_KILL_THREAD,
        "trap": SECCOMP_RET_TRAP,
        "errno": SECCOMP_RET_ERRNO,
        "notify": SECCOMP_RET_USER_NOTIF,
        "log": SECCOMP_RET_LOG,
        "allow": SECCOMP_RET_ALLOW,
    }
)

# Actions that refuse the syscall; "log" and "allow" let it run.
REFUSING = frozenset({"kill_process", "kill_thread", "trap", "errno", "notify"})

_NAMES = {
    SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
    SECCOMP_RET_KILL_THREAD: "KILL_THREAD",
    SECCOMP_RET_TRAP: "TRAP",
    SECCOMP_RET_ERRNO: "ERRNO",
    SECCOMP_RET_USER_NOTIF: "USER_NOTIF",
    SECCOMP_RET_TRACE: "TRACE",
    SECCOMP_RET_LOG: "LOG",
    SECCOMP_RET_ALLOW: "ALLOW",
}


def errno_number(name: str) -> int | None:
    """``"EPERM"`` -> 1; None for a name the errno module does not know."""
    value = getattr(_errno, name, None) if name.startswith("E") else None
    return value if isinstance(value, int) and 0 < value <= LIBSECCOMP_MAX_ERRNO else None


def errno_ret(number: int) -> int:
    """The return value of ``SCMP_ACT_ERRNO(number)``."""
    return SECCOMP_RET_ERRNO | (number & SECCOMP_RET_DATA)


def action_ret(action: str, errno: int = 0) -> int:
    """Return value for a policy action name (``errno`` only for ``"errno"``).

    Raises:
        KeyError: for an unknown action name.
    """
    base = ACTION_RET[action]
    return errno_ret(errno) if action == "errno" else base


def effective(ret: int) -> int:
    """What the kernel does with ``ret``: unknown actions kill the process,
    ERRNO data above MAX_ERRNO is clamped (``__seccomp_filter``)."""
    action = ret & SECCOMP_RET_ACTION_FULL
    if action not in _NAMES:
        return SECCOMP_RET_KILL_PROCESS
    if action == SECCOMP_RET_ERRNO:
        return SECCOMP_RET_ERRNO | min(ret & SECCOMP_RET_DATA, MAX_ERRNO)
    return ret


def describe(ret: int) -> str:
    """``0x50001`` -> ``"ERRNO(EPERM)"``; ``0x7fff0000`` -> ``"ALLOW"``."""
    action = ret & SECCOMP_RET_ACTION_FULL
    name = _NAMES.get(action, f"UNKNOWN({ret:#010x})")
    if action in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
        data = ret & SECCOMP_RET_DATA
        label = _errno.errorcode.get(data, str(data)) if action == SECCOMP_RET_ERRNO else data
        return f"{name}({label})"
    return name

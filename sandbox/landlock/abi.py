"""Landlock access rights, the ABI version that introduced each, and the host probe.

Supervisor side. Everything here is pure data except :func:`probe`, which asks
the running kernel for its Landlock ABI through ``sandbox.syscalls`` (the only
package that may touch the kernel) and can be handed a fake.

Landlock grows by ABI version, never by kernel version: a ruleset may only
*handle* the rights the running kernel knows, and an unhandled right is simply
not mediated. So :func:`rights_for` answers "what can this ABI mediate", and
``rules.prepare`` names what the host lacks compared with :data:`LATEST_ABI`
(rust-landlock's ``CompatState``: full / partial / off).

Versions (Documentation/userspace-api/landlock.rst, include/uapi/linux/landlock.h):

====  ======  ==============================================================
ABI   Linux   adds
====  ======  ==============================================================
1     5.13    the thirteen filesystem rights EXECUTE ... MAKE_SYM
2     5.19    FS_REFER (before it, every cross-directory rename/link is denied)
3     6.2     FS_TRUNCATE (before it, truncate(2) by path is not mediated)
4     6.7     NET_BIND_TCP, NET_CONNECT_TCP
5     6.10    FS_IOCTL_DEV
6     6.12    SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL
7     6.15    audit-log flags of landlock_restrict_self(2); no new right
====  ======  ==============================================================

A kernel newer than :data:`LATEST_ABI` is treated as :data:`LATEST_ABI`: we
never handle a right we do not know, because we could not say what denying
it by default would break (the same stance as rust-landlock's ``ABI`` enum).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

LATEST_ABI = 7
"""The newest ABI whose rights this module knows. ABI 7 only added logging flags."""


class AccessFs(enum.IntFlag):
    """``LANDLOCK_ACCESS_FS_*`` (linux/landlock.h), kernel spelling."""

    LANDLOCK_ACCESS_FS_EXECUTE = 1 << 0
    LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
    LANDLOCK_ACCESS_FS_READ_FILE = 1 << 2
    LANDLOCK_ACCESS_FS_READ_DIR = 1 << 3
    LANDLOCK_ACCESS_FS_REMOVE_DIR = 1 << 4
    LANDLOCK_ACCESS_FS_REMOVE_FILE = 1 << 5
    LANDLOCK_ACCESS_FS_MAKE_CHAR = 1 << 6
    LANDLOCK_ACCESS_FS_MAKE_DIR = 1 << 7
    LANDLOCK_ACCESS_FS_MAKE_REG = 1 << 8
    LANDLOCK_ACCESS_FS_MAKE_SOCK = 1 << 9
    LANDLOCK_ACCESS_FS_MAKE_FIFO = 1 << 10
    LANDLOCK_ACCESS_FS_MAKE_BLOCK = 1 << 11
    LANDLOCK_ACCESS_FS_MAKE_SYM = 1 << 12
    LANDLOCK_ACCESS_FS_REFER = 1 << 13
    LANDLOCK_ACCESS_FS_TRUNCATE = 1 << 14
    LANDLOCK_ACCESS_FS_IOCTL_DEV = 1 << 15


class AccessNet(enum.IntFlag):
    """``LANDLOCK_ACCESS_NET_*``: TCP port rights (ABI 4)."""

    LANDLOCK_ACCESS_NET_BIND_TCP = 1 << 0
    LANDLOCK_ACCESS_NET_CONNECT_TCP = 1 << 1


class Scope(enum.IntFlag):
    """``LANDLOCK_SCOPE_*``: IPC scoping to the domain (ABI 6)."""

    LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
    LANDLOCK_SCOPE_SIGNAL = 1 << 1


_FS = AccessFs
FS_V1 = (
    _FS.LANDLOCK_ACCESS_FS_EXECUTE
    | _FS.LANDLOCK_ACCESS_FS_WRITE_FILE
    | _FS.LANDLOCK_ACCESS_FS_READ_FILE
    | _FS.LANDLOCK_ACCESS_FS_READ_DIR
    | _FS.LANDLOCK_ACCESS_FS_REMOVE_DIR
    | _FS.LANDLOCK_ACCESS_FS_REMOVE_FILE
    | _FS.LANDLOCK_ACCESS_FS_MAKE_CHAR
    | _FS.LANDLOCK_ACCESS_FS_MAKE_DIR
    | _FS.LANDLOCK_ACCESS_FS_MAKE_REG
    | _FS.LANDLOCK_ACCESS_FS_MAKE_SOCK
    | _FS.LANDLOCK_ACCESS_FS_MAKE_FIFO
    | _FS.LANDLOCK_ACCESS_FS_MAKE_BLOCK
    | _FS.LANDLOCK_ACCESS_FS_MAKE_SYM
)

# The ABI that introduced each right beyond version 1 (one table, read by rights_for).
# A tuple, not a dict: members of different flag types compare equal as ints
# (NET_BIND_TCP == SCOPE_ABSTRACT_UNIX_SOCKET == 1), so they would collide as keys.
INTRODUCED: tuple[tuple[AccessFs | AccessNet | Scope, int], ...] = (
    (_FS.LANDLOCK_ACCESS_FS_REFER, 2),
    (_FS.LANDLOCK_ACCESS_FS_TRUNCATE, 3),
    (AccessNet.LANDLOCK_ACCESS_NET_BIND_TCP, 4),
    (AccessNet.LANDLOCK_ACCESS_NET_CONNECT_TCP, 4),
    (_FS.LANDLOCK_ACCESS_FS_IOCTL_DEV, 5),
    (Scope.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET, 6),
    (Scope.LANDLOCK_SCOPE_SIGNAL, 6),
)

# Rights that landlock_add_rule(2) accepts on a non-directory (LANDLOCK_ACCESS_FILE in
# security/landlock/fs.c); anything else on a file's fd is EINVAL.
FILE_RIGHTS = (
    _FS.LANDLOCK_ACCESS_FS_EXECUTE
    | _FS.LANDLOCK_ACCESS_FS_WRITE_FILE
    | _FS.LANDLOCK_ACCESS_FS_READ_FILE
    | _FS.LANDLOCK_ACCESS_FS_TRUNCATE
    | _FS.LANDLOCK_ACCESS_FS_IOCTL_DEV
)


@dataclass(frozen=True, slots=True)
class AbiRights:
    """What a Landlock ABI version can mediate (all zero for ABI 0: no Landlock)."""

    abi: int
    fs: AccessFs
    net: AccessNet
    scope: Scope


def rights_for(abi: int) -> AbiRights:
    """The rights a kernel with Landlock ABI ``abi`` can handle.

    ``abi`` <= 0 means no Landlock; above :data:`LATEST_ABI` it is clamped to it.
    """
    abi = min(max(abi, 0), LATEST_ABI)
    fs, net, scope = AccessFs(0), AccessNet(0), Scope(0)
    if abi >= 1:
        fs = FS_V1
    for right, since in INTRODUCED:
        if abi < since:
            continue
        if isinstance(right, AccessFs):
            fs |= right
        elif isinstance(right, AccessNet):
            net |= right
        else:
            scope |= right
    return AbiRights(abi, fs, net, scope)


def names(mask: int, flag: type[enum.IntFlag]) -> tuple[str, ...]:
    """Kernel names of the single-bit members of ``flag`` set in ``mask``, lowest bit first."""
    return tuple(m.name for m in flag if m.name and mask & m.value)


def missing_names(abi: int) -> tuple[str, ...]:
    """Kernel names of every right :data:`LATEST_ABI` has and ``abi`` lacks."""
    have, want = rights_for(abi), rights_for(LATEST_ABI)
    return (
        names(want.fs & ~have.fs, AccessFs)
        + names(want.net & ~have.net, AccessNet)
        + names(want.scope & ~have.scope, Scope)
    )


def probe(query: Callable[[], int] | None = None) -> int:
    """The running kernel's Landlock ABI (0 without Landlock), from ``query``.

    Args:
        query: returns the raw ABI number; defaults to
            ``sandbox.syscalls.probes.landlock_abi`` (landlock_create_ruleset with
            LANDLOCK_CREATE_RULESET_VERSION). Tests pass ``lambda: 2``.
    """
    if query is None:
        from sandbox.syscalls.probes import landlock_abi

        query = landlock_abi
    return max(query(), 0)

"""Change-on-exec: ask the kernel to confine the payload at its ``execve``.

Child side (launcher, B5 step 12): the launcher writes ``exec <profile>`` to
its own ``/proc/thread-self/attr/apparmor/exec`` after the container's new
``/proc`` is mounted and ``pivot_root`` is done, and before no_new_privs, the
capability and uid changes, Landlock (which could block the write) and
seccomp. The transition happens at the payload's ``execve``; the launcher
itself stays unconfined. Needs no capability: an unconfined task may ask for
any loaded profile (the supervisor loaded it, see :mod:`.lifetime`).
no_new_privs set afterwards does not block the transition, because it starts
from ``unconfined`` (verified in the guest).

This module is imported by the launcher before its first restriction and
must stay tiny: no imports, no allocation beyond the bytes it writes, the
write done by the caller's function (the syscall boundary, or a recorder in
unit tests).
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing would load a module the launcher
# does not otherwise need. Type checkers treat any TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# The LSM-specific file (Linux >= 5.8) first: with several LSMs stacked the
# generic attr/exec may belong to another one. runc does the same.
EXEC_ATTR = "/proc/thread-self/attr/apparmor/exec"
EXEC_ATTR_FALLBACK = "/proc/self/attr/exec"


def exec_request(name: str) -> bytes:
    """The bytes written to the attr file: ``exec <name>``."""
    return b"exec " + name.encode()


def apply_in_child(name: str, write: Callable[[str, bytes], None]) -> str:
    """Request profile ``name`` for the next ``execve`` of this thread.

    Args:
        name: the loaded profile's name (``AppArmorArtifact.name``).
        write: writes bytes to a procfs file in one ``write(2)``, raising
            ``OSError`` with the errno (``Syscalls.write_file``).

    Returns:
        The attr file that took the request.

    Raises:
        OSError: from ``write``; ``ENOENT`` on the LSM-specific file falls back
            to the generic one. ``ENOENT`` (no such profile) or ``EINVAL``
            (AppArmor not active) there mean the run must not go on.
    """
    data = exec_request(name)
    try:
        write(EXEC_ATTR, data)
    except FileNotFoundError:
        # No attr/apparmor/ directory: a kernel before 5.8.
        write(EXEC_ATTR_FALLBACK, data)
        return EXEC_ATTR_FALLBACK
    return EXEC_ATTR

"""Capability reduction in the payload (launcher child, inside the user namespace).

Order (runc finalizeNamespace, nsjail caps::initNs): the bounding set is
dropped first, because that needs CAP_SETPCAP; securebits lock out any
root-based regain; after the uid switch (done by the caller) ambient is
cleared and the final sets are written with capset. A payload that is not
root inside would get back at execve only what is ambient, so kept
capabilities are made inheritable and raised into the ambient set.
"""

from __future__ import annotations

import errno

from sandbox.syscalls.api import Syscalls
from sandbox.syscalls.consts import PR_CAP_AMBIENT_CLEAR_ALL, Prctl

PR_CAP_AMBIENT_RAISE = 2
# SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED is not set:
# kept capabilities are raised into the ambient set after this.
SECUREBITS = 0x1 | 0x2 | 0x8


def drop_bounding(sc: Syscalls, keep: int, last_cap: int) -> None:
    """Drop every capability not in ``keep`` from the bounding set."""
    sc.prctl(Prctl.PR_SET_SECUREBITS, SECUREBITS)
    for cap in range(last_cap + 1):
        if keep & (1 << cap):
            continue
        try:
            sc.prctl(Prctl.PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno != errno.EINVAL:  # EINVAL: a cap this kernel does not know
                raise


def set_final(sc: Syscalls, keep: int, hold: int = 0) -> None:
    """Clear ambient, write the final sets, re-raise the kept caps as ambient.

    ``hold`` stays in the effective and permitted sets only, never inheritable
    or ambient (nor bounding: it was dropped there), so execve clears it: the
    payload is not root in its user namespace. Used for CAP_SYS_ADMIN when
    no_new_privs is off, because Landlock and seccomp need one or the other.
    """
    sc.prctl(Prctl.PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    sc.capset(keep | hold, keep | hold, keep)
    cap = 0
    while keep >> cap:
        if keep & (1 << cap):
            sc.prctl(Prctl.PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
        cap += 1

"""Enforce a precomputed LandlockArtifact on the calling process (launcher child, step 17).

Child side. Needs no capability: no_new_privs must already be set (step 14),
otherwise landlock_restrict_self(2) wants CAP_SYS_ADMIN. Runs after every
mount and pivot_root, because a Landlock-restricted process may no longer
change its mount topology (Documentation/userspace-api/landlock.rst,
"Filesystem topology modification"), and after NNP, before closing fds and
before seccomp (which need not allow the landlock syscalls). The launcher owns
that order; the unit tests assert this module's own sequence:

    [getdents64 for a glob rule] openat(O_PATH) x N -> landlock_create_ruleset
    -> landlock_add_rule x N
    -> close(path fds) -> landlock_restrict_self -> close(ruleset)

Resolving every path before any Landlock object exists means an error leaves
nothing half built, and all the rule fds are opened while the process is still
unrestricted (O_PATH needs no right anyway).

Missing paths. A rule whose path is absent (ENOENT, or ENOTDIR from a
component) is skipped unless the rule is ``required``. Skipping can only deny
more: Landlock ties a rule to an inode, and a path created later is covered by
no rule of its own. The image decides which of ``read_paths``/``exec_paths``,
device nodes and optional binds exist, so those are skippable; the writable
trees, tmpfs targets, non-optional binds and the program directory are made by
the fs layer, and their absence means the mount plan and the rules disagree: a
bug to report (fail closed), not to hide.

No recovery here (STYLE C1): any other error propagates as OSError naming the
syscall, the launcher turns it into ``Failed(step, errno, msg)`` and exits; the
fds are O_CLOEXEC and die with it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace

from sandbox.landlock.rules import LandlockArtifact, PathRule, glob_match
from sandbox.syscalls.api import Syscalls
from sandbox.syscalls.consts import AT_FDCWD

# O_PATH: a handle for landlock_add_rule(2), no read permission needed; O_CLOEXEC: never
# leaks into the payload (CVE-2024-21626 is the cautionary tale).
O_PATH_DIR = os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY
O_PATH_ANY = os.O_PATH | os.O_CLOEXEC
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def apply_in_child(artifact: LandlockArtifact, syscalls: Syscalls) -> None:
    """Create the ruleset, add the rules and restrict the calling process.

    A no-op when ``artifact.state == "off"``: whether running without Landlock is
    acceptable was decided by the plan before fork (fail closed there).

    Raises:
        OSError: from the syscalls (e.g. ENOENT for a missing required path,
            EPERM from landlock_restrict_self without no_new_privs).
    """
    if artifact.state == "off":
        return
    opened: list[tuple[int, int]] = []
    for rule in artifact.rules:
        if rule.glob:
            opened += _open_glob(rule, syscalls)
            continue
        fd_access = _open_rule(rule, syscalls)
        if fd_access is not None:
            opened.append(fd_access)
    ruleset = syscalls.landlock_create_ruleset(
        artifact.handled_fs, artifact.handled_net, artifact.scoped
    )
    for fd, access in opened:
        syscalls.landlock_add_path_rule(ruleset, fd, access)
    for net in artifact.net_rules:
        syscalls.landlock_add_net_rule(ruleset, net.port, net.access)
    for fd, _ in opened:
        syscalls.close(fd)
    syscalls.landlock_restrict_self(ruleset)
    syscalls.close(ruleset)


def _open_glob(rule: PathRule, syscalls: Syscalls) -> list[tuple[int, int]]:
    """One rule per entry matching a ``*`` glob in the rule's last component.

    The directory is listed inside the new root, so the match is what the
    payload will see; a missing directory or no match adds nothing (deny more).
    """
    parent, _, pattern = rule.path.rpartition("/")
    try:
        names = syscalls.listdir(parent or "/")
    except OSError as e:
        if e.errno in _ABSENT:
            return []
        raise
    out = []
    for name in sorted(names):
        if glob_match(pattern, name):
            one = replace(rule, path=f"{parent}/{name}", required=False, glob=False)
            fd_access = _open_rule(one, syscalls)
            if fd_access is not None:
                out.append(fd_access)
    return out


def _open_rule(rule: PathRule, syscalls: Syscalls) -> tuple[int, int] | None:
    """O_PATH fd for the rule and the rights that fit its type; None if absent and optional.

    A directory gets ``access``; anything else gets ``file_access`` (Landlock
    refuses directory rights on a file with EINVAL). The type is learnt from
    O_DIRECTORY failing with ENOTDIR, so no stat is needed. A file whose rule
    has no file right left (``list_paths`` naming a file) gets no rule: an
    empty rule is EINVAL/ENOMSG, and no rule denies.
    """
    try:
        if rule.is_dir:
            try:
                return syscalls.openat(AT_FDCWD, rule.path, O_PATH_DIR), rule.access
            except OSError as e:
                if e.errno != errno.ENOTDIR:
                    raise
        if not rule.file_access:
            return None
        return syscalls.openat(AT_FDCWD, rule.path, O_PATH_ANY), rule.file_access
    except OSError as e:
        if e.errno in _ABSENT and not rule.required:
            return None
        raise OSError(
            e.errno,
            f"openat(AT_FDCWD, {rule.path!r}, O_PATH|O_CLOEXEC) for a "
            f"{'required ' if rule.required else ''}Landlock rule: {e.strerror}",
            rule.path,
        ) from e

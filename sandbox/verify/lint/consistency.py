"""Consistency rules: what the other layers make pointless or contradict (SBX150-SBX155)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType

from sandbox.caps.names import normalize
from sandbox.fs.image import MOUNT_POINTS
from sandbox.fs.ops import MERGED_USR
from sandbox.policy.frozen import Policy
from sandbox.verify.lint.base import MOUNT_SYSCALLS, Hit, LintContext, kept_caps, rule


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
                *MOUNT_SYSCALLS,
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


# The layers profiles/strict.toml requires: Layers' defaults are exactly those
# (tests/unit/test_lint.py holds this list to sandbox.policy.model.Layers; written
# out so that the run path's lint does not import pydantic).
DEFAULT_HOSTNAME = "sandbox"  # sandbox.policy.model.Identity's (held to it by the same test)
STRICT_REQUIRED = ("namespaces", "overlay", "capabilities", "no_new_privs", "seccomp", "cgroups")


@rule(
    "SBX152",
    "warning",
    "layers",
    "consistency",
    "a layer strict requires is only degradable",
    'set it to "required" (a run then refuses where it cannot be enforced)',
)
def _degradable(ctx: LintContext) -> Iterator[Hit]:
    layers = ctx.policy.layers
    for name in STRICT_REQUIRED:
        mode = getattr(layers, name)
        if mode == "degradable":  # "disabled" is a danger error: SBX139
            # A warning, never blocking: issue 3 lets a profile mark a layer degradable
            # on purpose, and every run records the layer's real state.
            yield Hit(
                name,
                f'layers.{name} = "{mode}", but strict requires it'
                + (" and this profile extends strict" if ctx.strict else ""),
            )
    if not layers.file_mediation:
        yield Hit(
            "file_mediation",
            "layers.file_mediation = false: file access may go unmediated "
            "(neither Landlock nor AppArmor)",
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
    if not pol.namespaces.uts and pol.identity.hostname != DEFAULT_HOSTNAME:
        yield Hit(
            "hostname",
            f"identity.hostname = {pol.identity.hostname!r} cannot be set: "
            "namespaces.uts = false shares the host's (youki HostnameWithoutUTS)",
        )

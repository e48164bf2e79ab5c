"""Danger rules: what exposes the host to the payload, or lets one run exhaust it (SBX135-SBX139,
SBX160).

Errors where a profile breaks the host's confidentiality (issue 13: verify
passed binds of the host's /proc and /, ``rootfs = ["/"]``, ``host_dirs``
with /etc, /root or /var, a disabled required layer, a shared pid or mount
namespace, and a payload under such a profile read every host process's
command line). Paths are compared as written in the profile, after the
model's normalisation (absolute, no ``.``/``..``), and as the host resolves
them now: a root-owned symlink is followed by the mount code (the
trusted-symlink rule), so ``/judge/link -> /`` is the host's root, whatever
its name says (second attack round).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import MappingProxyType

from sandbox.verify.lint.base import Hit, LintContext, rule, strict_severity
from sandbox.verify.lint.consistency import STRICT_REQUIRED

# The kernel's views of the host: any of them, or a part, inside the container is a
# window on every process, device and kernel setting (/proc/1/root is the host's root).
HOST_SYSTEM = MappingProxyType(
    {
        "/proc": "every host process: command lines, environments, and /proc/1/root, the host",
        "/sys": "the host's devices and kernel settings",
        "/dev": "the host's devices, terminals and shared memory",
    }
)
# Trees that hold the host's configuration, secrets, other users' files and the
# state of services (sandbox's own included): a source that is one of them or
# contains one exposes it whole.
HOST_PRIVATE = (
    "/etc", "/root", "/home", "/var", "/run", "/tmp", "/boot", "/srv", "/mnt", "/media",
)  # fmt: skip
# Secrets inside trees that are otherwise fine to show in part: none of these, nor
# anything in them.
HOST_SECRETS = (
    "/root",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/var/lib/sandbox",
    "/run/sandbox",
    "/run/secrets",
    "/run/user",
)


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _named_sources(ctx: LintContext) -> Iterator[tuple[str, str]]:
    """(key, host path) of everything the profile shows of the host, as written."""
    fs = ctx.policy.filesystem
    for layer in fs.rootfs:
        yield "filesystem.rootfs", layer
    if not fs.rootfs:  # host_dirs make the default image, which rootfs replaces
        for d in fs.host_dirs:
            yield "filesystem.host_dirs", d
    for b in fs.binds:
        yield f"filesystem.binds ({b.target})", b.source


def _host_sources(ctx: LintContext) -> Iterator[tuple[str, str]]:
    """(key, host path) of everything the profile shows of the host: each path as
    written, and where it resolves to when that differs (a symlink on the way)."""
    for key, src in _named_sources(ctx):
        yield key, src
        try:
            real = os.path.realpath(src, strict=True)
        except OSError:
            continue  # not there: nothing of the host is shown through it
        if real != src:
            yield f"{key}, through a symlink", real


@rule(
    "SBX135",
    "error",
    "filesystem",
    "danger",
    "the host's root, /proc, /sys or /dev is visible",
    "remove it: bind only the files the program needs, from trees outside /proc, /sys and /dev",
)
def _host_system(ctx: LintContext) -> Iterator[Hit]:
    for key, src in _host_sources(ctx):
        if src == "/":
            yield Hit(src, f"{key}: the host's whole root file system is visible")
        for tree, what in HOST_SYSTEM.items():
            if _under(src, tree):
                yield Hit(src, f"{key}: host {src} is visible: {what}")


@rule(
    "SBX136",
    "error",
    "filesystem",
    "danger",
    "a host tree with secrets or other users' data is visible",
    "bind the one file or directory the program needs (e.g. /etc/ssl/certs), never its parent",
)
def _host_private(ctx: LintContext) -> Iterator[Hit]:
    for key, src in _host_sources(ctx):
        if src == "/" or any(_under(src, tree) for tree in HOST_SYSTEM):
            continue  # SBX135's
        whole = [t for t in HOST_PRIVATE if _under(t, src)]
        secrets = [s for s in HOST_SECRETS if _under(s, src) or _under(src, s)]
        if whole or secrets:
            inside = [p for p in (*whole, *secrets) if p != src]
            yield Hit(
                src,
                f"{key}: host {src} is visible"
                + (f", and with it {', '.join(inside)}" if inside else ""),
            )


@rule(
    "SBX137",
    "warning",
    "filesystem",
    "danger",
    "file mediation grants the whole root",
    "list the trees the program reads, executes or lists instead of '/'",
)
def _whole_root(ctx: LintContext) -> Iterator[Hit]:
    fs = ctx.policy.filesystem
    for key, paths in (
        ("read_paths", fs.read_paths),
        ("exec_paths", fs.exec_paths),
        ("list_paths", fs.list_paths),
    ):
        # "/" itself, or a glob in the first component ("/*", "/u*"...), which
        # reaches the top directories the same way.
        for p in sorted({p for p in paths if p == "/" or "*" in p.split("/")[1]}):
            yield Hit(
                key,
                f"filesystem.{key} grants {p!r}: Landlock and AppArmor then allow it "
                "everywhere, whatever a bind or a lower layer puts in the container",
                severity=strict_severity(ctx),
            )


@rule(
    "SBX138",
    "error",
    "namespaces",
    "danger",
    "the payload shares the host's pid or mount namespace",
    "set the namespace back to true",
)
def _host_namespaces(ctx: LintContext) -> Iterator[Hit]:
    why = {
        "pid": "it sees the host's processes, their command lines and environments in /proc",
        "mount": "it shares the host's mount table: the container's file system is the host's",
    }
    for ns, what in why.items():
        if not getattr(ctx.policy.namespaces, ns):
            yield Hit(ns, f"namespaces.{ns} = false: {what}")


@rule(
    "SBX139",
    "error",
    "layers",
    "danger",
    "a layer is disabled",
    'set it to "required" (or "degradable" where the host may lack it); '
    '"disabled" never applies it on any host',
)
def _disabled(ctx: LintContext) -> Iterator[Hit]:
    for name in STRICT_REQUIRED:
        if getattr(ctx.policy.layers, name) == "disabled":
            yield Hit(name, f'layers.{name} = "disabled": no run ever applies it')


GIB = 1 << 30
# Beyond these a limit bounds nothing on any machine sandbox runs on: one run can
# take the host's memory, disk, processes or time from every other run.
HUGE: MappingProxyType[str, tuple[float, str]] = MappingProxyType(
    {
        "limits.cpu_time": (7 * 86400, "a week of CPU"),
        "limits.wall_time": (7 * 86400, "a week"),
        "limits.cpu_quota": (1024, "1024 CPUs"),
        "limits.memory": (1024 * GIB, "1 TiB"),
        "limits.output": (1024 * GIB, "1 TiB"),
        "limits.file_size": (1024 * GIB, "1 TiB"),
        "limits.stack": (64 * GIB, "64 GiB"),
        "limits.address_space": (1024 * GIB, "1 TiB"),
        "limits.memlock": (64 * GIB, "64 GiB"),
        "limits.msgqueue": (64 * GIB, "64 GiB"),
        "limits.processes": (1 << 16, "65536 tasks"),
        "limits.open_files": (1 << 20, "fs.nr_open's default"),
        "limits.sigpending": (1 << 22, "PID_MAX_LIMIT"),
        "filesystem.disk": (1024 * GIB, "1 TiB of tmpfs (memory)"),
        "filesystem.disk_inodes": (1 << 32, "2^32 inodes"),
    }
)


@rule(
    "SBX160",
    "warning",
    "limits",
    "danger",
    "a limit is too large to bound anything",
    "give a limit the program can actually need, or leave the base's",
)
def _huge_limits(ctx: LintContext) -> Iterator[Hit]:
    pol = ctx.policy
    for key, (high, what) in HUGE.items():
        table, field = key.split(".")
        value = getattr(getattr(pol, table), field)
        # A word is not a number: stack = "memory" follows the memory limit, and
        # "unlimited" is the judge's explicit choice (isolate's default).
        if isinstance(value, int | float) and value > high:
            yield Hit(
                key,
                f"{key} = {value} is more than {what}: it bounds nothing",
                severity=strict_severity(ctx),
            )
    for t in pol.filesystem.tmpfs:
        if t.size > HUGE["filesystem.disk"][0]:
            yield Hit(
                f"tmpfs {t.target}",
                f"filesystem.tmpfs {t.target}: size {t.size} is more than 1 TiB of memory",
                severity=strict_severity(ctx),
            )

"""Danger rules over the file system and the namespaces (SBX130-SBX134; the host: danger_host)."""

from __future__ import annotations

from collections.abc import Iterator

from sandbox.fs.ops import DEV_NODES
from sandbox.verify.lint.base import Hit, LintContext, rule, strict_severity
from sandbox.verify.mountflags import NODEV, NOSUID


@rule(
    "SBX130",
    "warning",
    "filesystem",
    "danger",
    "a host path is bound writable",
    "bind it read-only, or copy results out of /box instead of writing to the host",
)
def _writable_binds(ctx: LintContext) -> Iterator[Hit]:
    for b in ctx.policy.filesystem.binds:
        if b.writable:
            yield Hit(
                b.target,
                f"filesystem.binds: host {b.source} is writable at {b.target}: the payload "
                "changes host files, which outlive the run",
            )


_DEV_NODES = {f"/dev/{name}" for name, _, _ in DEV_NODES}  # rootless: bound from the host


@rule(
    "SBX131",
    "error",
    "filesystem",
    "danger",
    "a mount lacks nosuid or nodev",
    "mount it with MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV (sandbox/fs/mounts.py)",
)
def _mount_flags(ctx: LintContext) -> Iterator[Hit]:
    for m in ctx.mounts or ():
        missing = [n for bit, n in ((NOSUID, "nosuid"), (NODEV, "nodev")) if not m.has(bit)]
        if missing == ["nodev"] and (m.target == "/dev" or m.target in _DEV_NODES):
            continue  # the container's /dev holds the five safe nodes: they must be devices
        if missing == ["nodev"] and m.target == "/dev/pts" and m.source == "devpts":
            continue  # the run's own devpts instance: its ptys must be devices
        if missing:
            yield Hit(
                m.target,
                f"{m.target} ({m.source}) is mounted {m.options}, without {', '.join(missing)}",
            )


# ------------------------------------------------------------------ namespaces
@rule(
    "SBX132",
    "warning",
    "namespaces",
    "danger",
    "the payload shares the host's network",
    "set namespaces.net = true: the payload then sees only its own loopback",
)
def _shared_net(ctx: LintContext) -> Iterator[Hit]:
    if not ctx.policy.namespaces.net:
        yield Hit(
            "net",
            "namespaces.net = false: the payload uses the host's network stack"
            + (" (strict allows loopback only)" if ctx.strict else ""),
            severity=strict_severity(ctx),
        )


@rule(
    "SBX133",
    "warning",
    "namespaces",
    "danger",
    "a namespace is shared with the host",
    "set the namespace back to true",
)
def _shared_ns(ctx: LintContext) -> Iterator[Hit]:
    for ns in ("ipc", "uts", "cgroup"):  # pid and mount: SBX138, an error
        if not getattr(ctx.policy.namespaces, ns):
            yield Hit(
                ns,
                f"namespaces.{ns} = false: the payload shares the host's {ns} namespace",
                severity=strict_severity(ctx),
            )


@rule(
    "SBX134",
    "warning",
    "namespaces",
    "danger",
    "the payload may create user namespaces",
    "set namespaces.nested_userns = false",
)
def _nested_userns(ctx: LintContext) -> Iterator[Hit]:
    if ctx.policy.namespaces.nested_userns:
        yield Hit(
            "nested_userns",
            "namespaces.nested_userns = true: a nested user namespace gives the payload "
            "every capability inside it, and the kernel code those reach",
            severity=strict_severity(ctx),
        )

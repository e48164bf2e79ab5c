"""The container supervisor's side of ``exec``: a join plan, never more than the container.

A joining process gets the container's own verified plan (seccomp filter,
Landlock rules, AppArmor profile, bounding set) with only the process-level
fields replaced from the exec's process object: argv, env, cwd, rlimits
(each no higher than the container's), and capabilities intersected with the
container's. Its uid and gid must be the container's (only those are mapped
in its user namespace). The fds returned with the plan are the container
init's namespaces (opened by us, root, from the host's /proc: the init is
ours, never the payload) and fresh join fds of the container's leaf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from sandbox import codec
from sandbox.oci.bundle import BundleError, Process, _process
from sandbox.syscalls.consts import CloneFlag

# runc's wording, which podman and containerd's shim map to exit status 127.
NOT_FOUND = "executable file not found in $PATH"
# The order setns takes them: the user namespace first (it owns the others).
NS_ORDER = (
    ("user", CloneFlag.CLONE_NEWUSER),
    ("mnt", CloneFlag.CLONE_NEWNS),
    ("ipc", CloneFlag.CLONE_NEWIPC),
    ("uts", CloneFlag.CLONE_NEWUTS),
    ("net", CloneFlag.CLONE_NEWNET),
    ("pid", CloneFlag.CLONE_NEWPID),
)


@dataclass(frozen=True, slots=True)
class Running:
    """What a join needs of the running container (from its supervisor)."""

    process: Process  # the container's first process, as its bundle says
    plan: Any  # its final LaunchPlan
    leaf: Any  # its cgroups.Leaf, or None
    outer_pid: int  # the launcher's outer process (its child is the container's init)
    deny_errno: int | None


def _merged(run: Running, raw: Any) -> dict[str, Any]:
    """The exec's process object over the container's own (args and env required)."""
    if not isinstance(raw, dict):
        raise BundleError("exec: the process must be a JSON object")
    base = run.process
    out: dict[str, Any] = {
        "user": {"uid": base.uid, "gid": base.gid},
        "cwd": base.cwd,
        "env": [f"{k}={v}" for k, v in base.env],
        "capabilities": {k: sorted(base.caps) for k in ("bounding", "effective", "permitted")},
    }
    out.update(raw)
    return out


def join_plan(run: Running, raw: Any) -> tuple[dict[str, Any], list[int]]:
    """Reply to a ``join`` request and the fds it carries (ns, leaf), named in ``fds``."""
    from sandbox.errors import SandboxError
    from sandbox.fs.resolve import resolve
    from sandbox.plan import tightened
    from sandbox.syscalls.procfs import child_pids

    notes: list[str] = []
    try:
        proc = _process(_merged(run, raw), notes)
    except SandboxError as e:
        return {"error": str(e)}, []
    base = run.plan
    if (proc.uid, proc.gid) != (base.inside_uid, base.inside_gid):
        return {
            "error": f"exec as {proc.uid}:{proc.gid}: only the container's own ids "
            f"({base.inside_uid}:{base.inside_gid}) exist in its user namespace"
        }, []
    path = dict(proc.env).get("PATH", "/usr/local/bin:/usr/bin:/bin")
    try:
        program = resolve(
            proc.args[0], path, base.mounts.binds, base.mounts.lowers, proc.cwd, in_container=True
        )
    except SandboxError as e:  # engines map runc's wording to 127 (podman: "not found in")
        return {"error": f"{e}: {NOT_FOUND}", "exit": 127}, []
    caps = 0
    from sandbox.caps.names import CAPS

    for name in proc.caps:
        if name in CAPS:
            caps |= 1 << CAPS[name]
    plan = replace(
        base,
        exec_path=program.inside_path,
        argv=proc.args,
        env=proc.env,
        workdir=proc.cwd,
        caps_keep=base.caps_keep & caps,
        rlimits=tightened(base.rlimits, proc.rlimits),
        collect=(),
    )
    inits = child_pids(run.outer_pid)
    if not inits:
        return {"error": "the container's init is gone"}, []
    fds: list[int] = []
    names: list[str] = []
    # Namespaces the container joined by path belong to the host's user namespace:
    # entered first, while we still hold our capabilities over it; then the
    # container's own user namespace, then the namespaces it owns.
    joined = {_NS_NAME[k] for k, _ in base.join_ns}
    order = [n for n in NS_ORDER if n[0] in joined]
    order += [n for n in NS_ORDER if n[0] not in joined and _own(base, n[1])]
    try:
        for name, flag in order:
            fds.append(os.open(f"/proc/{inits[0]}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
            names.append(f"ns:{int(flag)}")
        if run.leaf is not None:
            for fd in run.leaf.open_join_fds():
                fds.append(fd)
                names.append("cgroup")
    except OSError as e:
        for fd in fds:
            os.close(fd)
        return {"error": f"exec: opening the container's namespaces: {e}"}, []
    reply = {"plan": codec.dumps(plan), "fds": names, "deny_errno": run.deny_errno}
    return reply, fds


_NS_NAME = {"network": "net", "ipc": "ipc", "uts": "uts"}


def _own(plan: Any, flag: int) -> bool:
    """The container made this namespace itself (user and mount: always)."""
    return flag in (CloneFlag.CLONE_NEWUSER, CloneFlag.CLONE_NEWNS) or bool(
        plan.unshare_flags & flag
    )

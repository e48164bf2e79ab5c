"""A checked bundle -> the profile, request and plan adjustments of one container run.

Supervisor side, pure apart from reading profiles. The bundle drives the
same pipeline as a profile: its root, mounts, limits, capabilities and
seccomp filter become a policy, validated at the same trust boundary
(``sandbox.policy.load.validate``) and compiled and verified like any
other. What a profile cannot say (the process's exact argv, env, ids,
rlimits, the writable root, a sysctl) adjusts the compiled LaunchPlan
*before* verification, so the verified digest covers it.

With a ``run.sandbox.profile`` annotation the named profile is the base and
the result never allows more than either side, by construction:

- syscalls: the profile's filter with every syscall the bundle's filter does
  not allow added to ``seccomp.deny`` (deny always wins, ``policy.load``);
- capabilities: the profile's ``keep`` intersected with the bundle's sets;
- limits: the smaller of each; namespaces: all of them;
- files: the bundle's root and mounts, under the profile's Landlock and
  AppArmor path rules; the root read-only except the profile's writable trees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from sandbox.cgroups.model import DEVICES_TTY
from sandbox.compile import CompiledRun, Request
from sandbox.errors import PolicyError
from sandbox.fs.ops import DEV_NODES, DevptsMount
from sandbox.host import HostFacts
from sandbox.layers import Enforcement
from sandbox.oci.bundle import PROFILE_ANNOTATION, Bundle
from sandbox.plan import tightened
from sandbox.policy.profile import LoadedProfile, dump
from sandbox.seccomp.setid import MODE_ARG, setid_rule
from sandbox.syscalls.consts import CloneFlag

BASE_PROFILE = "oci"
TTY_NODE = ("tty", 5, 0)
PTMX_LINK = ("ptmx", "pts/ptmx")  # /dev/ptmx opens the container's own devpts instance
_JOINED = {
    "network": CloneFlag.CLONE_NEWNET,
    "ipc": CloneFlag.CLONE_NEWIPC,
    "uts": CloneFlag.CLONE_NEWUTS,
}


@dataclass(frozen=True, slots=True)
class Converted:
    """The container's profile and run request, and the notes for its record."""

    profile: LoadedProfile
    request: Request
    notes: tuple[str, ...]


def _min(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _snapshot(raw: dict[str, Any], source: str) -> Any:
    """The frozen policy of a table built here from checked parts (see :func:`convert`)."""
    from sandbox import codec
    from sandbox.policy import frozen
    from sandbox.policy.names import check_names

    try:
        policy = codec.from_data(frozen.Policy, raw)
    except (TypeError, ValueError, KeyError) as e:
        raise PolicyError(f"{source}: {e}") from None
    check_names(policy, source)
    return policy


def _allowed(seccomp: dict[str, Any]) -> set[str]:
    """Every syscall a seccomp table lets run under some argument values."""
    from sandbox.policy.profile import dump
    from sandbox.seccomp.groups import resolve

    base = dump(_BASE_SECCOMP())
    pol = _snapshot({**base, "name": "probe", "seccomp": _full_seccomp(seccomp)}, "probe")
    spec = resolve(pol.seccomp)
    return set(spec.allow) | {r.syscall for r in spec.rules}


def _bundle_seccomp(bundle: Bundle) -> tuple[dict[str, Any] | None, list[str]]:
    if bundle.seccomp is None:
        return None, []
    from sandbox.seccomp.oci import import_oci

    caps = frozenset(bundle.process.caps)
    kernel = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    imported = import_oci(
        dict(bundle.seccomp), source="config.json: linux.seccomp", kernel=kernel, caps=caps
    )
    table = imported.seccomp
    notes = [f"seccomp: {n}" for n in imported.notes]
    rules, kept = _conditional_rules(bundle.seccomp, table)
    if rules:
        table = table | {"rules": [*table.get("rules", []), *rules]}
        notes.append(
            f"seccomp: {', '.join(kept)}: allowed under one of the JSON's argument "
            "conditions (a subset of what it allows), not left to the default"
        )
    return table, notes


_FULL = 0xFFFFFFFFFFFFFFFF


def _conditional_rules(sec: Any, table: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Argument rules for syscalls the JSON allows only under conditions, never more.

    The import leaves such syscalls to the default action (a profile rule holds
    one condition on one argument). Where the JSON's allowing entries are one
    condition each, a rule keeps what one rule can say of them: equalities on
    one argument (``personality``) as a value list, else the first
    ``!=``/masked condition alone (``socket``: moby allows it when
    ``arg2 != NETLINK_AUDIT`` or when ``arg0 != AF_NETLINK``; one of the two is
    a subset of their union). Entries with includes/excludes are left out.
    """
    taken = set(table.get("allow", [])) | set(table.get("errno", {})) | set(table.get("deny", []))
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in sec.get("syscalls") or []:
        if not isinstance(e, dict) or e.get("includes") or e.get("excludes") or not e.get("args"):
            continue
        for name in e.get("names") or []:
            by_name.setdefault(name, []).append(e)
    rules: list[dict[str, Any]] = []
    for name, entries in sorted(by_name.items()):
        if name in taken:
            continue
        allows = [e for e in entries if e.get("action") == "SCMP_ACT_ALLOW"]
        conds = [e["args"][0] for e in allows if len(e["args"]) == 1]
        if not conds or any(not isinstance(c, dict) for c in conds):
            continue
        # Equalities, plain or masked, on one argument under one mask (moby's
        # personality; an exported prctl option list): one rule says them all.
        eqs = [_as_masked_eq(c) for c in conds]
        shapes = {(e[0], e[1]) for e in eqs if e is not None}
        rule: dict[str, Any] | None = None
        if None not in eqs and len(shapes) == 1:
            ((arg, mask),) = shapes
            rule = {
                "arg": arg,
                "mask": mask,
                "values": sorted({e[2] for e in eqs if e is not None}),
                "match": "allow",
                "otherwise": "default",
            }
        else:
            for c in conds:
                if c.get("op") == "SCMP_CMP_NE":
                    rule = {
                        "arg": c["index"],
                        "mask": _FULL,
                        "values": [int(c["value"])],
                        "match": "default",
                        "otherwise": "allow",
                    }
                    break
                if c.get("op") == "SCMP_CMP_MASKED_EQ" and c.get("value"):
                    rule = {
                        "arg": c["index"],
                        "mask": int(c["value"]),
                        "values": [int(c.get("valueTwo", 0))],
                        "match": "allow",
                        "otherwise": "default",
                    }
                    break
        if rule is not None and 0 <= int(rule["arg"]) <= 5:
            rules.append({"syscall": name, **rule})
    return rules, [r["syscall"] for r in rules]


def _as_masked_eq(c: dict[str, Any]) -> tuple[int, int, int] | None:
    """``(arg, mask, value)`` of an EQ or MASKED_EQ condition, else None."""
    try:
        if c.get("op") == "SCMP_CMP_EQ":
            return int(c["index"]), _FULL, int(c["value"])
        if c.get("op") == "SCMP_CMP_MASKED_EQ" and int(c.get("value", 0)):
            mask = int(c["value"])
            return int(c["index"]), mask, int(c.get("valueTwo", 0)) & mask
    except (KeyError, TypeError, ValueError):
        return None
    return None


# Where a bundle's run.sandbox.profile may name a profile file (":"-separated).
PROFILE_DIRS_ENV = "SANDBOX_RUNTIME_PROFILES"
DEFAULT_PROFILE_DIRS = "/etc/sandbox/profiles"


def _profile_allowed(named: str) -> None:
    """A shipped profile's name, or a path under the host's profile directories.

    The annotation is the pod author's, and the runtime reads as root: a path
    anywhere would let it learn which host files exist and how they parse
    ("not found" against "malformed TOML at line 1"). Nothing is read before
    this check.

    Raises:
        PolicyError: a path outside the allowed directories, naming them.
    """
    if "/" not in named and not named.endswith(".toml"):
        return  # a shipped profile's name: find_profile checks it
    dirs = [d for d in os.environ.get(PROFILE_DIRS_ENV, DEFAULT_PROFILE_DIRS).split(":") if d]
    path = os.path.normpath(named)
    if os.path.isabs(path) and any(path.startswith(d.rstrip("/") + "/") for d in dirs):
        return
    raise PolicyError(
        f"config.json: annotations: {PROFILE_ANNOTATION}: a profile path must be under "
        f"{':'.join(dirs)} (the runtime's {PROFILE_DIRS_ENV}), or name a shipped profile"
    )


# clone's namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET): moby's mask.
CLONE_NS_MASK = 0x7E020000


def _clone_rule(sec: dict[str, Any]) -> dict[str, Any]:
    """Narrow what engines allow outright and our floor does not (the lint's reasons).

    clone without namespace flags, clone3 answering ENOSYS (its flags sit in
    memory a filter cannot read; libc falls back to clone): engines resolve
    moby's conditional clone rule away for a container without CAP_SYS_ADMIN,
    our floor forbids new namespaces from inside (SBX116). ioctl without
    TIOCSTI/TIOCLINUX, as the basic_io group (SBX122). chmod, creat, open and
    their kin without set-id modes, openat2 answering ENOSYS, as fs_read and
    fs_write (``sandbox.seccomp.setid``).
    """
    allow = set(sec.get("allow", []))
    setid = allow & set(MODE_ARG)
    if not allow & {"clone", "clone3", "ioctl", "openat2"} and not setid:
        return sec
    errno = dict(sec.get("errno", {}))
    if "clone3" in allow:
        errno["clone3"] = "ENOSYS"
    if "openat2" in allow:  # its mode is in a struct: set-id modes could not be refused
        errno["openat2"] = "ENOSYS"
    rules = list(sec.get("rules", []))
    if "clone" in allow:
        rules.append(
            {
                "syscall": "clone",
                "arg": 0,
                "mask": CLONE_NS_MASK,
                "values": [0],
                "match": "allow",
                "otherwise": "EPERM",
            }
        )
    if "ioctl" in allow:  # the terminal-injection requests, as the basic_io group (SBX122)
        rules.append(
            {
                "syscall": "ioctl",
                "arg": 1,
                "mask": 0xFFFFFFFF,
                "values": [0x5412, 0x541C],
                "match": "EPERM",
                "otherwise": "allow",
            }
        )
    # No set-uid/set-gid file through an rw bind, whatever the bundle's filter
    # allows (engines' default profiles allow chmod with any mode): as fs_write.
    rules += [setid_rule(name) for name in sorted(setid)]
    narrowed = {"clone", "clone3", "ioctl", "openat2", *setid}
    return sec | {"allow": sorted(allow - narrowed), "errno": errno, "rules": rules}


_SECCOMP_KEYS = {
    "default_action": "kill_process",
    "default_errno": "EPERM",
    "groups": [],
    "allow": [],
    "deny": [],
    "errno": {},
    "rules": [],
}


def _full_seccomp(table: dict[str, Any]) -> dict[str, Any]:
    """A seccomp table with every key (frozen data has no defaults)."""
    return {**_SECCOMP_KEYS, **table}


def _BASE_SECCOMP() -> Any:
    from sandbox.policy.cache import load

    return load(BASE_PROFILE).policy


def convert(bundle: Bundle) -> Converted:
    """The profile (base ``oci`` or the annotation's) and request for ``bundle``.

    No pydantic here: the profile is validated where it is loaded (the cache
    keeps its validated snapshot), and every value taken from the bundle was
    checked by ``oci.bundle`` (types, ranges, paths), the trust boundary of this
    path; the result is built as frozen data and its names checked.

    Raises:
        PolicyError: the annotation names no profile, or the result is invalid.
    """
    from sandbox.policy.cache import load as load_profile

    named = bundle.profile
    if named is not None:
        _profile_allowed(named)
    base = load_profile(named or BASE_PROFILE)
    raw: dict[str, Any] = dump(base.policy)
    notes = list(bundle.notes)
    proc = bundle.process
    res = bundle.resources
    fs = raw["filesystem"]
    fs.update(
        rootfs=[bundle.root],
        host_dirs=[],
        binds=[
            {
                "source": m.source,
                "target": m.target,
                "writable": not m.readonly,
                "exec": m.exec,
                "optional": False,
            }
            for m in bundle.mounts
            if m.kind == "bind"
        ],
        tmpfs=[{"target": m.target, "size": m.size} for m in bundle.mounts if m.kind == "tmpfs"],
        workdir=proc.cwd,
    )
    if not named:
        fs["writable"] = []
    lim = raw["limits"]
    lim["memory"] = _min(lim.get("memory"), res.memory)
    lim["processes"] = _min(lim.get("processes"), res.pids)
    lim["cpu_quota"] = _min(lim.get("cpu_quota"), res.cpu_quota)
    if res.cpuset is not None:
        if lim.get("cpuset") not in (None, res.cpuset):
            raise PolicyError(
                f"linux.resources.cpu.cpus {res.cpuset!r} differs from the profile's cpuset "
                f"{lim['cpuset']!r}"
            )
        lim["cpuset"] = res.cpuset
    for dev, key, value in res.io:
        table = lim.setdefault(f"io_{'read' if key[0] == 'r' else 'write'}_{key[1:]}", {})
        table[dev] = _min(table.get(dev), value)
    if res.hugetlb:
        lim["hugetlb"] = {
            size: _min(lim.get("hugetlb", {}).get(size), v) for size, v in res.hugetlb
        }
    if res.net_classid is not None:
        lim["net_classid"] = res.net_classid
    if res.net_prio:
        lim["net_prio"] = dict(res.net_prio)
    raw["namespaces"].update(pid=True, mount=True, net=True, ipc=True, uts=True, cgroup=True)
    if bundle.hostname:
        raw["identity"]["hostname"] = bundle.hostname
    kept = sorted(proc.caps)
    if named:
        kept = sorted(set(raw["capabilities"]["keep"]) & proc.caps)
    raw["capabilities"]["keep"] = kept
    path = dict(proc.env).get("PATH")
    if path:
        raw["env"]["path"] = path
    sec, sec_notes = _bundle_seccomp(bundle)
    notes += sec_notes
    pts = bundle.devpts
    for key, want, have in (("gid", pts and pts.gid, proc.gid), ("uid", pts and pts.uid, proc.uid)):
        if want is not None and want != have:
            notes.append(
                f"/dev/pts: {key}={want} is not mapped in the container's user namespace "
                f"(only {have} is): ptys belong to their opener's {key}"
            )
    notes += _sysctl(bundle)[1]
    if sec is not None:
        sec = _clone_rule(sec)
    if sec is not None and not named:
        # The base's deny stays (see oci.toml), except where the bundle refuses with an errno.
        floor = set(raw["seccomp"].get("deny", [])) - set(sec.get("errno", {}))
        raw["seccomp"] = _full_seccomp(sec | {"deny": sorted(set(sec.get("deny", [])) | floor)})
    elif sec is not None:
        extra = _allowed(raw["seccomp"]) - _allowed(sec) - set(raw["seccomp"].get("errno", {}))
        raw["seccomp"]["deny"] = sorted(set(raw["seccomp"].get("deny", [])) | extra)
    raw["name"] = (raw["name"] if named else "oci")[:64]
    raw["description"] = f"OCI bundle {bundle.path}" + (f" under {named}" if named else "")
    source = os.path.join(bundle.path, "config.json")
    policy = _snapshot(raw, source)
    profile = LoadedProfile(policy=policy, source=source, chain=(*base.chain, source))
    request = Request(argv=proc.args, cwd=proc.cwd, inside=True)
    return Converted(profile, request, tuple(notes))


def _apparmor(compiled: CompiledRun, bundle: Bundle, host: HostFacts) -> CompiledRun:
    """process.apparmorProfile: a profile the engine loaded, entered at exec (fail closed)."""
    name = bundle.process.apparmor
    if name is None:
        return compiled
    if not host.apparmor:
        raise PolicyError(
            f"config.json: process.apparmorProfile {name!r}: AppArmor is not enabled in this kernel"
        )
    if compiled.apparmor is not None:
        raise PolicyError(
            f"config.json: process.apparmorProfile {name!r}: the profile "
            f"{compiled.profile.policy.name!r} already confines the payload with its own "
            "AppArmor profile (a task has one)"
        )
    states = dict(compiled.states)
    states["apparmor"] = Enforcement("full", f"profile {name} (the bundle's, loaded by the engine)")
    return replace(compiled, plan=replace(compiled.plan, apparmor_profile=name), states=states)


def adjust(compiled: CompiledRun, bundle: Bundle, host: HostFacts) -> CompiledRun:
    """What the policy cannot say, written into the compiled plan before verification.

    Raises:
        PolicyError: an AppArmor profile the kernel cannot apply.
    """
    compiled = _apparmor(compiled, bundle, host)
    proc = bundle.process
    plan = compiled.plan
    devpts = _devpts(bundle)
    if proc.terminal and devpts is None:
        raise PolicyError(
            "config.json: process.terminal needs a devpts mount at /dev/pts in mounts "
            "(the console is a pty of the container's own instance)"
        )
    mounts = replace(
        plan.mounts,
        read_only_root=bundle.readonly or bool(bundle.profile),
        dev_nodes=(*DEV_NODES, TTY_NODE),
        dev_links=(*plan.mounts.dev_links, PTMX_LINK) if devpts else plan.mounts.dev_links,
        devpts=devpts,
    )
    joined = 0
    for kind, _ in bundle.ns_paths:
        joined |= int(_JOINED[kind])
    plan = replace(
        plan,
        unshare_flags=plan.unshare_flags & ~joined,
        inside_uid=proc.uid,
        inside_gid=proc.gid,
        env=proc.env,
        workdir=proc.cwd,
        hostname=bundle.hostname or plan.hostname,
        rlimits=tightened(plan.rlimits, proc.rlimits),
        mounts=mounts,
        sysctl=_sysctl(bundle)[0],
        join_ns=bundle.ns_paths,
        console=proc.terminal,
    )
    cgroup = compiled.cgroup
    if devpts is not None and cgroup is not None:
        # The container's own ptys (136:*), its /dev/ptmx (5:2) and /dev/tty (5:0)
        # pass the device controller, as runc's default list lets them; a pty of
        # the host's is out of reach anyway: no node of it exists in the container.
        lim = cgroup.limits
        devices = (*lim.device_rules, *(d for d in DEVICES_TTY if d not in lim.device_rules))
        cgroup = replace(cgroup, limits=replace(lim, devices=devices))
    if cgroup is not None and bundle.cgroups_path is not None:
        cgroup = replace(cgroup, path=bundle.cgroups_path)  # the engine's place for the leaf
    return replace(compiled, plan=plan, cgroup=cgroup)


PING_GROUPS = "net.ipv4.ping_group_range"


def _sysctl(bundle: Bundle) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """The bundle's sysctls as the container's user namespace can take them, and notes.

    ``net.ipv4.ping_group_range`` names gids, and the kernel refuses an unmapped
    one (EINVAL); only the process's own gid is mapped there. So the range
    becomes that gid alone when it holds it (the same processes may ping) and
    is not written when it does not: a new net namespace's range is already
    empty, which is what the range means for every gid the container can have.
    podman sets ``0 0`` for every container, so ``--user 1000:1000`` hit this.
    """
    out: list[tuple[str, str]] = []
    notes: list[str] = []
    gid = bundle.process.gid
    for k, v in bundle.sysctl:
        if k == PING_GROUPS:
            parts = v.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise PolicyError(f"config.json: linux.sysctl.{k}: {v!r} is not two gids")
            lo, hi = int(parts[0]), int(parts[1])
            if lo <= gid <= hi:
                if (lo, hi) != (gid, gid):
                    notes.append(
                        f"{k} {v!r}: only gid {gid} is mapped in the container, "
                        f"so the range is {gid} {gid}"
                    )
                out.append((k, f"{gid} {gid}"))
            else:
                notes.append(
                    f"{k} {v!r}: holds no gid of the container (only {gid} is mapped): "
                    "left empty, as a new network namespace has it"
                )
            continue
        out.append((k, v))
    return tuple(out), notes


def _devpts(bundle: Bundle) -> DevptsMount | None:
    """The bundle's devpts as the run's user namespace can mount it.

    Only the process's own uid and gid are mapped there, and devpts refuses an
    unmapped ``gid=``/``uid=`` (EINVAL): podman's ``gid=5`` (tty) then goes,
    and a pty's group is its opener's (the payload's, for the console), as
    said in the notes (``convert``).
    """
    d = bundle.devpts
    if d is None:
        return None
    proc = bundle.process
    if d.gid is not None and d.gid != proc.gid:
        d = replace(d, gid=None)
    if d.uid is not None and d.uid != proc.uid:
        d = replace(d, uid=None)
    return d

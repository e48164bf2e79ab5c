"""``sandbox doctor [--json]``: what this host can enforce, and how to fix what it cannot.

Supervisor side. It reads procfs, sysfs and securityfs through a
:class:`~sandbox.apparmor.host.HostFiles` reader (a tmpdir laid out like
``/`` in the unit tests) and makes two short trials, both gone when it
returns: a cgroup leaf created and removed per shipped profile (the same code
a run uses, ``Acquirer.dry_cgroups``), and a forked child that mounts an
overlay inside a user namespace (``syscalls.probes.userns_overlay_probe``).
Every probe is injectable through :class:`Probes`, so any host can be
described in a test. Needs root for the cgroup trial and for securityfs;
without root it reports what it could not see.

Checks: kernel, cgroups (v1/v2/hybrid, delegated parents), Landlock ABI,
AppArmor (and Ubuntu's ``kernel.apparmor_restrict_unprivileged_userns``),
seccomp actions, user namespaces (``user.max_user_namespaces``, Debian's
``kernel.unprivileged_userns_clone``, Ubuntu's restriction), overlayfs and
overlay inside a user namespace, containers (Docker/Kubernetes markers and a
masked ``/proc``), and for each ``profiles/*.toml`` the state of every layer
and whether a run would be refused (``enforce.static_states`` and
``enforce.check``, as the supervisor decides).

The exit status is 0 when every shipped profile runs here, 1 otherwise.
"""

from __future__ import annotations

import json
import platform
import secrets
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox import enforce
from sandbox.apparmor.host import USERNS_FIX, AppArmorHost, HostFiles
from sandbox.cgroups import CgroupLayout
from sandbox.errors import SandboxError, UnsupportedError
from sandbox.host import HostFacts
from sandbox.landlock.abi import LATEST_ABI, missing_names
from sandbox.layers import LAYERS, Enforcement
from sandbox.policy.frozen import Policy

Status = Literal["ok", "warn", "off", "info"]
MIN_KERNEL = (6, 1)  # THREAT_MODEL.md
# Seccomp actions the filters use: kill for strict, errno for compat and
# ENOSYS answers, user notification for recorded violations, log for audits.
SECCOMP_ACTIONS = ("kill_process", "kill_thread", "trap", "errno", "user_notif", "log", "allow")
USERNS_CLONE_FIX = (
    "Debian's kernel.unprivileged_userns_clone=0 stops users without CAP_SYS_ADMIN from "
    "creating user namespaces: rootless runs fail at unshare (EPERM). Root runs are not "
    "affected. Fix: 'sysctl kernel.unprivileged_userns_clone=1' (and in /etc/sysctl.d/ to keep it)."
)
MAX_USERNS_FIX = (
    "user.max_user_namespaces=0 forbids user namespaces for everyone, root included: every "
    "run fails at unshare (ENOSPC). Fix: 'sysctl user.max_user_namespaces=15000' (the "
    "usual default) and in /etc/sysctl.d/ to keep it."
)
MASKED_PROC_FIX = (
    "/proc has mounts over some of its entries (a container runtime's masked paths): the "
    "kernel then refuses to mount a new /proc for the sandbox's pid namespace (EPERM). "
    "Fix: give the container an unmasked /proc (Docker: --security-opt "
    "systempaths=unconfined; Kubernetes: securityContext.procMount: Unmasked) and "
    "CAP_SYS_ADMIN, or run the sandbox on the host."
)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: a host feature, its status and, when it hurts, the fix."""

    name: str
    status: Status
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileReport:
    """What a shipped profile gets here: each layer's state, and a refusal if any."""

    name: str
    path: str
    runs: bool
    refused: str | None
    layers: dict[str, Enforcement]


def _default_cgroup_state(host: HostFacts) -> Callable[[Policy], Enforcement]:
    from sandbox.compile import cgroup_request
    from sandbox.runner.acquire import Acquirer

    acquirer = Acquirer(host)

    def state(policy: Policy) -> Enforcement:
        return acquirer.dry_cgroups(
            cgroup_request(policy), policy.limits.memory, f"doctor-{secrets.token_hex(4)}"
        )

    return state


@dataclass
class Probes:
    """Where the doctor's facts come from; tests replace any of them."""

    files: HostFiles = field(default_factory=HostFiles)
    host: Callable[[], HostFacts] | None = None
    apparmor: Callable[[HostFiles], AppArmorHost] | None = None
    cgroup_layout: Callable[[], CgroupLayout] | None = None
    cgroup_state: Callable[[Policy], Enforcement] | None = None
    userns_overlay: Callable[[], tuple[bool, str]] | None = None
    profiles_dir: Path | None = None
    release: str = field(default_factory=platform.release)

    def resolved(self) -> _Resolved:
        """Fill in the real probes for whatever a test did not replace."""
        from sandbox import cgroups
        from sandbox.apparmor.host import detect
        from sandbox.host import probe
        from sandbox.policy.profile import PROFILES_DIR
        from sandbox.syscalls.probes import userns_overlay_probe

        host = (self.host or probe)()
        return _Resolved(
            files=self.files,
            host=host,
            aa=(self.apparmor or (lambda f: detect(f)))(self.files),
            layout=(self.cgroup_layout or cgroups.detect)(),
            cgroup_state=self.cgroup_state or _default_cgroup_state(host),
            userns_overlay=self.userns_overlay or userns_overlay_probe,
            profiles_dir=self.profiles_dir or PROFILES_DIR,
            release=self.release,
        )


@dataclass(frozen=True, slots=True)
class _Resolved:
    files: HostFiles
    host: HostFacts
    aa: AppArmorHost
    layout: CgroupLayout
    cgroup_state: Callable[[Policy], Enforcement]
    userns_overlay: Callable[[], tuple[bool, str]]
    profiles_dir: Path
    release: str


def _int(files: HostFiles, path: str) -> int | None:
    text = (files.read(path) or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


# ------------------------------------------------------------------ checks ----


def check_kernel(r: _Resolved) -> Check:
    """The running kernel against the supported minimum."""
    k = r.host.kernel
    detail = {"release": r.release, "version": list(k), "arch": r.host.arch}
    if k < MIN_KERNEL:
        return Check(
            "kernel",
            "warn",
            f"{r.release} ({r.host.arch}): older than the supported minimum "
            f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]}",
            detail,
            "run on Linux 6.1 or newer (THREAT_MODEL.md)",
        )
    return Check("kernel", "ok", f"{r.release} ({r.host.arch})", detail)


def check_cgroups(r: _Resolved) -> Check:
    """Hierarchies, where each controller lives and the delegated parent in each."""
    lay = r.layout
    placement = {
        c: {"version": h.version, "hierarchy": h.name, "parent": h.parent}
        for c, h in sorted(lay.placement.items())
    }
    parents = sorted({h.parent for h in lay.placement.values() if h.parent})
    problems = sorted({h.problem for h in lay.hierarchies if h.problem})
    detail: dict[str, Any] = {
        "mode": lay.mode,
        "placement": placement,
        "missing": dict(sorted(lay.missing.items())),
        "delegated_parents": parents,
        "problems": problems,
    }
    from sandbox.compile import REQUIRED_CONTROLLERS

    lacking = [c for c in REQUIRED_CONTROLLERS if c not in lay.placement]
    busy = sorted({h.parent for h in lay.hierarchies if h.parent_busy and h.parent})
    detail["busy_parents"] = busy
    if lay.mode == "none":
        return Check("cgroups", "off", "no cgroup hierarchy is mounted", detail, "mount cgroup2")
    where = ", ".join(parents) or "nowhere"
    if lacking:
        why = "; ".join(f"{c}: {lay.missing.get(c, '?')}" for c in lacking)
        return Check(
            "cgroups",
            "warn",
            f"{lay.mode}; runs cannot get {', '.join(lacking)} ({why})",
            detail,
            problems[0] if problems else None,
        )
    if busy:
        return Check(
            "cgroups",
            "warn",
            f"{lay.mode}; {', '.join(busy)} holds processes, so cgroup v2 lets it give its "
            "children no controller (no internal processes rule): runs get no limits",
            detail,
            f"move the supervisor into a child cgroup (mkdir {busy[0]}/supervisor and write "
            f"its pid to {busy[0]}/supervisor/cgroup.procs), or set SANDBOX_CGROUP_PARENT to "
            "a delegated cgroup without processes (a systemd unit with Delegate=yes)",
        )
    return Check("cgroups", "ok", f"{lay.mode}; leaves go under {where}", detail)


def check_landlock(r: _Resolved) -> Check:
    """Landlock's ABI and what it cannot mediate compared with the newest ABI."""
    abi = r.host.landlock_abi
    missing = list(missing_names(abi)) if abi else []
    detail = {"abi": abi, "latest_abi": LATEST_ABI, "missing": missing}
    if abi == 0:
        return Check(
            "landlock",
            "off",
            "no Landlock (not built in, or not in the lsm= list): file mediation needs AppArmor",
            detail,
            "boot a kernel with CONFIG_SECURITY_LANDLOCK=y and landlock in lsm=",
        )
    if abi < 2:
        return Check(
            "landlock",
            "warn",
            f"ABI {abi}: no REFER right, so it does not count as file mediation for strict",
            detail,
            "Linux 5.19 or newer",
        )
    if missing:
        return Check("landlock", "warn", f"ABI {abi}: cannot mediate {', '.join(missing)}", detail)
    return Check("landlock", "ok", f"ABI {abi}", detail)


def check_apparmor(r: _Resolved) -> Check:
    """AppArmor on, loadable, parser, and the host-wide notes (Ubuntu's sysctls)."""
    aa = r.aa
    detail = {
        "enabled": aa.enabled,
        "module_enabled": aa.module_enabled,
        "lsm_active": aa.lsm_active,
        "securityfs": aa.securityfs,
        "can_load": aa.can_load,
        "parser": aa.parser.version_text if aa.parser else None,
        "parser_abi": aa.parser.abi if aa.parser else None,
        "parser_error": aa.parser_error,
        "self_label": aa.self_label,
        "restrict_unprivileged_userns": aa.restrict_unprivileged_userns,
        "restrict_unprivileged_unconfined": aa.restrict_unprivileged_unconfined,
        "notes": list(aa.notes),
    }
    usable = aa.enabled and aa.can_load and aa.parser is not None
    usable = usable and aa.self_label in (None, "unconfined")
    if usable:
        return Check("apparmor", "ok", aa.reason, detail, " ".join(aa.notes) or None)
    status: Status = "off" if not aa.enabled else "warn"
    return Check("apparmor", status, aa.reason, detail, " ".join(aa.notes) or None)


def check_seccomp(r: _Resolved) -> Check:
    """Filter support and the actions the kernel offers."""
    acts = sorted(r.host.seccomp_actions)
    lacking = [a for a in SECCOMP_ACTIONS if acts and a not in acts]
    detail = {"filter": r.host.seccomp, "actions": acts, "lacking": lacking}
    if not r.host.seccomp:
        return Check(
            "seccomp", "off", "no seccomp filter support", detail, "CONFIG_SECCOMP_FILTER=y"
        )
    if lacking:
        return Check("seccomp", "warn", f"actions missing: {', '.join(lacking)}", detail)
    return Check("seccomp", "ok", f"filters; actions: {' '.join(acts) or 'unknown'}", detail)


def check_userns(r: _Resolved) -> Check:
    """User namespaces: the global limit, Debian's and Ubuntu's restrictions."""
    f = r.files
    max_ns = _int(f, "/proc/sys/user/max_user_namespaces")
    clone = _int(f, "/proc/sys/kernel/unprivileged_userns_clone")
    restrict = r.aa.restrict_unprivileged_userns
    detail = {
        "max_user_namespaces": max_ns,
        "unprivileged_userns_clone": clone,
        "apparmor_restrict_unprivileged_userns": restrict,
        "root": r.host.is_root,
    }
    if max_ns == 0:
        return Check("userns", "off", "user namespaces are disabled for everyone", detail,
                     MAX_USERNS_FIX)  # fmt: skip
    fixes, notes = [], []
    if clone == 0:
        notes.append("unprivileged creation off (kernel.unprivileged_userns_clone=0)")
        fixes.append(USERNS_CLONE_FIX)
    if restrict:
        notes.append("Ubuntu's kernel.apparmor_restrict_unprivileged_userns=1")
        fixes.append(USERNS_FIX)
    summary = f"allowed (max {max_ns})" if max_ns is not None else "allowed"
    if notes:
        who = "root runs unaffected" if r.host.is_root else "rootless runs are affected"
        return Check("userns", "warn", f"{summary}; {'; '.join(notes)}: {who}", detail,
                     " ".join(fixes))  # fmt: skip
    return Check("userns", "ok", summary, detail)


def check_overlay(r: _Resolved) -> Check:
    """overlayfs, and whether it works inside a user namespace (rootless runs need it)."""
    if not r.host.overlay:
        return Check(
            "overlay", "off", "overlayfs is not available", {"available": False},
            "load the overlay module (CONFIG_OVERLAY_FS)",
        )  # fmt: skip
    works, why = r.userns_overlay()
    detail = {"available": True, "in_userns": works, "in_userns_detail": why}
    if works:
        return Check("overlay", "ok", "available; also inside a user namespace", detail)
    note = (
        "root runs build it outside the user namespace and are not affected"
        if r.host.is_root
        else "rootless runs cannot build their overlay root"
    )
    return Check(
        "overlay",
        "ok" if r.host.is_root else "warn",
        f"available; inside a user namespace it fails ({why}): {note}",
        detail,
        None if r.host.is_root else "Linux 6.6 or newer (tmpfs upper layers in user namespaces)",
    )


def masked_proc(files: HostFiles) -> list[str]:
    """Mount points over entries of /proc (binfmt_misc, which hosts have, left out)."""
    out = []
    for line in (files.read("/proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5:
            continue
        fstype = right.split()[0] if right.split() else ""
        point = fields[4]
        if point.startswith("/proc/") and fstype != "binfmt_misc":
            out.append(point)
    return sorted(out)


def container_markers(files: HostFiles) -> list[str]:
    """The files that make ``HostFacts.in_container`` say what it says."""
    marks = [p for p in ("/.dockerenv", "/run/.containerenv") if files.exists(p)]
    if "container=" in (files.read("/proc/1/environ") or ""):
        marks.append("container= in /proc/1/environ")
    return marks


def check_container(r: _Resolved) -> Check:
    """Inside Docker/Kubernetes/Podman? A masked /proc stops the sandbox's own /proc."""
    masked = masked_proc(r.files)
    where = r.host.in_container
    marks = container_markers(r.files)
    detail = {"container": where, "markers": marks, "masked_proc": masked}
    if masked:
        shown = ", ".join(masked[:6]) + (" ..." if len(masked) > 6 else "")
        return Check(
            "container",
            "warn",
            f"{'inside ' + where if where else 'masked /proc'}: mounts over {shown}",
            detail,
            MASKED_PROC_FIX,
        )
    if where:
        why = f" ({', '.join(marks)})" if marks else ""
        return Check("container", "info", f"inside {where}{why}; /proc is not masked", detail)
    return Check("container", "ok", "not in a container", detail)


# ---------------------------------------------------------------- profiles ----


def _apparmor_state(r: _Resolved, policy: Policy, state: Enforcement) -> Enforcement:
    """As ``LayerBuilders._apparmor`` would decide, without loading anything."""
    if state.state == "off":
        return state
    aa = r.aa
    if not (aa.enabled and aa.can_load and aa.parser is not None):
        return Enforcement("off", aa.reason)
    from sandbox.apparmor import parser, render

    try:
        art = render.prepare(
            policy, program="/box/program", interpreter=None, parser_features=aa.parser
        )
    except SandboxError as e:
        return Enforcement("off", f"profile not rendered: {e}")
    result = parser.compile_check(art.text, features_file=aa.parser.abi_file)
    if not result.ok:
        return Enforcement("off", f"apparmor_parser refuses the profile: {result.message}")
    return Enforcement("full", f"a generated profile compiles ({aa.reason})")


def _landlock_state(r: _Resolved, policy: Policy, state: Enforcement) -> Enforcement:
    if state.state == "off":
        return state
    from sandbox.landlock.rules import prepare

    art = prepare(
        policy.filesystem, r.host.landlock_abi, tcp_ports=tuple(policy.network.tcp_ports)
    )
    return Enforcement(art.state, art.detail)


def profile_report(r: _Resolved, path: Path) -> ProfileReport:
    """Each layer's state for one profile file and whether a run would be refused."""
    from sandbox.policy.load import load_profile

    try:
        policy = load_profile(str(path)).policy
    except SandboxError as e:
        return ProfileReport(path.stem, str(path), False, f"profile does not load: {e}", {})
    states = enforce.static_states(policy, r.host, frozenset())
    states["landlock"] = _landlock_state(r, policy, states["landlock"])
    states["apparmor"] = _apparmor_state(r, policy, states["apparmor"])
    if policy.layers.cgroups != "disabled" and "cgroups" not in r.host.hidden:
        states["cgroups"] = r.cgroup_state(policy)
    refused = None
    try:
        enforce.check(policy, states, frozenset(), r.host, warn=False)
    except UnsupportedError as e:
        refused = str(e)
    layers = {layer: states[layer] for layer in LAYERS if layer in states}
    return ProfileReport(policy.name, str(path), refused is None, refused, layers)


CHECKS: tuple[Callable[[_Resolved], Check], ...] = (
    check_kernel,
    check_cgroups,
    check_landlock,
    check_apparmor,
    check_seccomp,
    check_userns,
    check_overlay,
    check_container,
)


def collect(probes: Probes | None = None) -> dict[str, Any]:
    """The whole report as JSON-able data: ``checks`` and ``profiles``."""
    r = (probes or Probes()).resolved()
    checks = [c(r) for c in CHECKS]
    profiles = [profile_report(r, p) for p in sorted(r.profiles_dir.glob("*.toml"))]
    return {
        "checks": [asdict(c) for c in checks],
        "profiles": {
            p.name: {
                "path": p.path,
                "runs": p.runs,
                "refused": p.refused,
                "layers": {k: {"state": v.state, "detail": v.detail} for k, v in p.layers.items()},
            }
            for p in profiles
        },
    }


def render_text(data: dict[str, Any]) -> str:
    """The human report: one line per check (with its fix), then one block per profile."""
    lines = ["sandbox doctor: what this host can enforce", ""]
    for c in data["checks"]:
        lines.append(f"{c['name']:<10} {c['status']:<5} {c['summary']}")
        if c["fix"]:
            lines.append(f"{'':<16} fix: {c['fix']}")
    lines += ["", "shipped profiles:"]
    for name, p in data["profiles"].items():
        verdict = "runs here" if p["runs"] else f"REFUSED: {p['refused']}"
        lines.append(f"  {name}: {verdict}")
        for layer, st in p["layers"].items():
            extra = f" ({st['detail']})" if st["detail"] and st["state"] != "full" else ""
            lines.append(f"    {layer:<13} {st['state']}{extra}")
    return "\n".join(lines) + "\n"


def report(as_json: bool = False, probes: Probes | None = None) -> int:
    """Print the report (text or JSON); 0 when every shipped profile runs here, else 1."""
    data = collect(probes)
    sys.stdout.write(json.dumps(data, indent=2) + "\n" if as_json else render_text(data))
    return 0 if all(p["runs"] for p in data["profiles"].values()) else 1

"""Parse and check an OCI bundle's config.json (runtime-spec 1.x), failing closed.

Pure (no kernel calls; it reads the bundle directory). Every field the
runtime-spec defines is either mapped onto something sandbox enforces,
accepted because sandbox is stricter than what it asks (each such case is
a note in the run record), or refused with one line naming the JSON path
(:class:`BundleError`, exit 1 of ``create``, nothing left behind). Unknown
keys are refused too, except under ``annotations`` and vendor extensions the
spec allows to be ignored.
"""

from __future__ import annotations

import json
import os
import re
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.errors import PolicyError
from sandbox.fs.ops import DevptsMount

PROFILE_ANNOTATION = "run.sandbox.profile"
NS_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
# Namespaces sandbox always makes new; a bundle that leaves one out asks to share the host's.
REQUIRED_NS = ("pid", "network", "mount", "ipc", "uts")
# Namespaces an engine may hand over by path (podman's network namespace, a pod's ipc/uts):
# owned by the initial user namespace, joined before ours is created.
JOINABLE_NS = ("network", "ipc", "uts")
_RLIMITS = {n: getattr(resource, n) for n in dir(resource) if n.startswith("RLIMIT_")}
_HOSTNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$")
_CAP = re.compile(r"^CAP_[A-Z_]+$")
_DEFAULT_DEVICES = {
    "/dev/null": (1, 3),
    "/dev/zero": (1, 5),
    "/dev/full": (1, 7),
    "/dev/random": (1, 8),
    "/dev/urandom": (1, 9),
    "/dev/tty": (5, 0),
}
# Namespaced sysctls (runc's validator: what a container may set in its own namespaces).
_SYSCTL_IPC = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)
_SYSCTL = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_-]+)+$")
# Mount options: those we apply, and those that only describe what we do anyway.
_MOUNT_OPTS_OK = frozenset(
    {
        "bind",
        "rbind",
        "ro",
        "rw",
        "nosuid",
        "nodev",
        "noexec",
        "exec",
        "private",
        "rprivate",
        "slave",
        "rslave",
        "shared",
        "rshared",
        "unbindable",
        "runbindable",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "noatime",
        "atime",
        "nodiratime",
        "diratime",
        "newinstance",
        "tmpcopyup",
        "notmpcopyup",
        "z",
        "Z",
    }
)
_MOUNT_KEYS_OK = ("mode", "size", "nr_inodes", "ptmxmode", "gid", "uid")
# Mount types sandbox does not make: the payload sees less than the bundle asked.
_NO_CGROUPFS = "no cgroup file system: the payload's cgroup is its leaf, seen through its namespace"
SKIPPED_MOUNTS = {
    "sysfs": "no /sys: a sysfs of the host's devices is not mounted",
    "cgroup": _NO_CGROUPFS,
    "cgroup2": _NO_CGROUPFS,
    "mqueue": "no mqueue file system: POSIX queues still work through the ipc namespace",
}
# devpts (made at /dev/pts only): the options we honour, and those that describe what
# we do anyway (newinstance is always passed; nosuid and noexec always set).
_DEVPTS_FLAGS = frozenset(
    {
        "newinstance",
        "nosuid",
        "noexec",
        "rw",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "noatime",
        "atime",
        "nodiratime",
        "diratime",
    }
)
_DEVPTS_KEYS = ("mode", "ptmxmode", "gid", "uid", "max")


class BundleError(PolicyError):
    """A bundle that is malformed or asks for what sandbox cannot enforce (one line)."""


@dataclass(frozen=True, slots=True)
class Mount:
    """One entry of ``mounts`` that sandbox makes: a bind or a tmpfs."""

    target: str
    kind: str  # "bind" | "tmpfs"
    source: str = ""
    readonly: bool = False
    exec: bool = True
    size: int | None = None
    mode: int = 0o755
    devpts: DevptsMount | None = None  # kind "devpts": its options


@dataclass(frozen=True, slots=True)
class Hook:
    """A runtime-namespace hook (prestart/createRuntime/poststart/poststop)."""

    path: str
    args: tuple[str, ...]
    env: tuple[str, ...]
    timeout: int | None


@dataclass(frozen=True, slots=True)
class Resources:
    """``linux.resources`` as sandbox enforces it (None: no limit asked)."""

    memory: int | None = None
    pids: int | None = None
    cpu_quota: float | None = None  # CPUs worth of time
    cpuset: str | None = None
    io: tuple[tuple[str, str, int], ...] = ()  # (MAJ:MIN, rbps|wbps|riops|wiops, value)
    hugetlb: tuple[tuple[str, int], ...] = ()  # (page size "2MB", bytes)
    net_classid: int | None = None
    net_prio: tuple[tuple[str, int], ...] = ()  # (interface, priority)


@dataclass(frozen=True, slots=True)
class Process:
    """``process``: what runs, as whom, with which limits."""

    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str
    uid: int
    gid: int
    terminal: bool = False
    caps: frozenset[str] = frozenset()
    rlimits: tuple[tuple[int, int, int], ...] = ()  # (resource, soft, hard)
    apparmor: str | None = None
    oom_score_adj: int | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    """A checked bundle (see module docstring)."""

    path: str
    root: str
    readonly: bool
    process: Process
    hostname: str | None
    mounts: tuple[Mount, ...]
    ns_paths: tuple[tuple[str, str], ...]  # (type, path) joined, not created
    resources: Resources
    seccomp: Mapping[str, Any] | None
    sysctl: tuple[tuple[str, str], ...]
    hooks: Mapping[str, tuple[Hook, ...]]
    annotations: Mapping[str, str]
    notes: tuple[str, ...] = field(default=())
    cgroups_path: str | None = None  # checked (cgroups.place.check_path); None: our own leaf

    @property
    def devpts(self) -> DevptsMount | None:
        """The bundle's devpts mount at /dev/pts (its options), if it lists one."""
        return next((m.devpts for m in self.mounts if m.devpts is not None), None)

    @property
    def profile(self) -> str | None:
        """The ``run.sandbox.profile`` annotation (a profile name or path), if any."""
        return self.annotations.get(PROFILE_ANNOTATION)


def _err(where: str, message: str) -> BundleError:
    return BundleError(f"config.json: {where}: {message}")


def _obj(v: Any, where: str) -> Mapping[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, Mapping):
        raise _err(where, "must be an object")
    return v


def _list(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _err(where, "must be a list")
    return v


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or "\0" in v:
        raise _err(where, "must be a string")
    return v


def _int(v: Any, where: str, lo: int = 0, hi: int = (1 << 63) - 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _err(where, f"must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _abs(v: Any, where: str) -> str:
    s = _str(v, where)
    if not s.startswith("/"):
        raise _err(where, f"{s!r} must be an absolute path")
    norm = os.path.normpath(s)
    if ".." in s.split("/"):
        raise _err(where, f"{s!r} must not contain '..'")
    return "/" if norm == "//" else norm


def _unknown(obj: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = sorted(set(obj) - set(known))
    if extra:
        raise _err(f"{where}.{extra[0]}" if where else extra[0], "not supported by sandbox-runtime")


def load(bundle: str) -> Bundle:
    """Read and check ``<bundle>/config.json``.

    Raises:
        BundleError: one line naming the problem (malformed JSON, a missing
            root, a relative path escaping the bundle, an unknown namespace, a
            seccomp section or any setting sandbox cannot honour).
    """
    path = os.path.abspath(bundle)
    try:
        with open(os.path.join(path, "config.json"), "rb") as f:
            raw = f.read(16 << 20)
    except OSError as e:
        raise BundleError(f"bundle {bundle!r}: config.json: {e.strerror}") from None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BundleError(f"config.json: malformed JSON: {e}") from None
    return parse(doc, path)


def parse(doc: Any, bundle: str) -> Bundle:
    """Check a parsed config.json whose bundle directory is ``bundle`` (see :func:`load`).

    Raises:
        BundleError: as :func:`load`.
    """
    top = _obj(doc, "(top level)")
    _unknown(
        top,
        (
            "ociVersion",
            "root",
            "process",
            "hostname",
            "domainname",
            "mounts",
            "hooks",
            "annotations",
            "linux",
        ),
        "",
    )
    version = _str(top.get("ociVersion"), "ociVersion")
    if not version.startswith("1."):
        raise _err("ociVersion", f"{version!r}: only runtime-spec 1.x bundles are supported")
    if top.get("domainname"):
        raise _err("domainname", "setting a NIS domain name is not supported")
    notes: list[str] = []
    root, readonly = _root(top.get("root"), bundle)
    if "process" not in top:
        raise _err("process", "missing (create needs the process to run)")
    process = _process(_obj(top["process"], "process"), notes)
    hostname = top.get("hostname")
    if hostname is not None and hostname != "":
        if not isinstance(hostname, str) or not _HOSTNAME.match(hostname):
            raise _err("hostname", f"{hostname!r} is not a valid host name")
    else:
        hostname = None
    linux = _obj(top.get("linux"), "linux")
    _unknown(
        linux,
        (
            "namespaces",
            "uidMappings",
            "gidMappings",
            "resources",
            "cgroupsPath",
            "devices",
            "seccomp",
            "sysctl",
            "maskedPaths",
            "readonlyPaths",
            "rootfsPropagation",
            "mountLabel",
        ),
        "linux",
    )
    if linux.get("mountLabel"):
        raise _err("linux.mountLabel", "SELinux labels are not supported")
    ns_paths = _namespaces(linux, notes)
    mounts = _mounts(_list(top.get("mounts"), "mounts"), bundle, notes)
    _devices(_list(linux.get("devices"), "linux.devices"))
    _paths(linux, notes)
    cgroups_path = _cgroups_path(linux.get("cgroupsPath"))
    annotations = _obj(top.get("annotations"), "annotations")
    for k, v in annotations.items():
        _str(v, f"annotations.{k}")
    sec = linux.get("seccomp")
    return Bundle(
        path=bundle,
        root=root,
        readonly=readonly,
        process=process,
        hostname=hostname,
        mounts=mounts,
        ns_paths=ns_paths,
        resources=_resources(_obj(linux.get("resources"), "linux.resources")),
        seccomp=_obj(sec, "linux.seccomp") if sec is not None else None,
        sysctl=_sysctl(_obj(linux.get("sysctl"), "linux.sysctl")),
        hooks=_hooks(_obj(top.get("hooks"), "hooks")),
        annotations=dict(annotations),
        notes=tuple(notes),
        cgroups_path=cgroups_path,
    )


def _cgroups_path(v: Any) -> str | None:
    """``linux.cgroupsPath``: where the container's leaf goes (``cgroups.place``); empty
    or absent: a leaf of sandbox's own under the runtime's delegated parent."""
    if v is None or v == "":
        return None
    from sandbox.cgroups.place import CgroupPathError, check_path

    try:
        return check_path(_str(v, "linux.cgroupsPath"))
    except CgroupPathError as e:
        raise _err("linux.cgroupsPath", str(e)) from None


def _root(v: Any, bundle: str) -> tuple[str, bool]:
    root = _obj(v, "root")
    _unknown(root, ("path", "readonly"), "root")
    p = _str(root.get("path"), "root.path")
    full = p if p.startswith("/") else os.path.normpath(os.path.join(bundle, p))
    if not p.startswith("/") and not (full + "/").startswith(bundle.rstrip("/") + "/"):
        raise _err("root.path", f"{p!r} escapes the bundle directory")
    if not os.path.isdir(full):
        raise _err("root.path", f"{full} is not a directory")
    # The engine's own path (as runc does, a symlink to the rootfs is followed here,
    # once); everything inside the rootfs is then opened without following links.
    full = os.path.realpath(full)
    ro = root.get("readonly", False)
    if not isinstance(ro, bool):
        raise _err("root.readonly", "must be true or false")
    return full, ro


def _process(p: Mapping[str, Any], notes: list[str]) -> Process:
    _unknown(
        p,
        (
            "terminal",
            "consoleSize",
            "user",
            "args",
            "env",
            "cwd",
            "capabilities",
            "rlimits",
            "noNewPrivileges",
            "apparmorProfile",
            "oomScoreAdj",
            "selinuxLabel",
            "commandLine",
        ),
        "process",
    )
    args = _list(p.get("args"), "process.args")
    if not args:
        raise _err("process.args", "must name the program to run")
    args = [_str(a, f"process.args[{i}]") for i, a in enumerate(args)]
    env: list[tuple[str, str]] = []
    for i, e in enumerate(_list(p.get("env"), "process.env")):
        s = _str(e, f"process.env[{i}]")
        if "=" not in s:
            raise _err(f"process.env[{i}]", f"{s!r} is not NAME=VALUE")
        k, v = s.split("=", 1)
        env.append((k, v))
    cwd = _abs(p.get("cwd", "/"), "process.cwd")
    user = _obj(p.get("user"), "process.user")
    _unknown(user, ("uid", "gid", "umask", "additionalGids", "username"), "process.user")
    uid = _int(user.get("uid", 0), "process.user.uid", 0, 65533)
    gid = _int(user.get("gid", 0), "process.user.gid", 0, 65533)
    if [g for g in _list(user.get("additionalGids"), "process.user.additionalGids") if g != gid]:
        raise _err("process.user.additionalGids", "supplementary groups are not supported")
    if user.get("umask", 0o022) != 0o022:
        raise _err("process.user.umask", "only the default umask 0022 is supported")
    if p.get("selinuxLabel"):
        raise _err("process.selinuxLabel", "SELinux labels are not supported")
    if p.get("commandLine"):
        raise _err("process.commandLine", "Windows command lines are not supported")
    terminal = p.get("terminal", False)
    if not isinstance(terminal, bool):
        raise _err("process.terminal", "must be true or false")
    if p.get("noNewPrivileges") is False or "noNewPrivileges" not in p:
        notes.append("no_new_privs is set whatever process.noNewPrivileges says")
    aa = p.get("apparmorProfile")
    aa = _str(aa, "process.apparmorProfile") if aa else None
    oom = p.get("oomScoreAdj")
    return Process(
        args=tuple(args),
        env=tuple(env),
        cwd=cwd,
        uid=uid,
        gid=gid,
        terminal=terminal,
        caps=_caps(_obj(p.get("capabilities"), "process.capabilities"), notes),
        rlimits=_rlimits(_list(p.get("rlimits"), "process.rlimits")),
        apparmor=None if aa in (None, "unconfined") else aa,
        oom_score_adj=None if oom is None else _int(oom, "process.oomScoreAdj", -1000, 1000),
    )


def _caps(c: Mapping[str, Any], notes: list[str]) -> frozenset[str]:
    """The payload's capabilities: bounding ∩ effective ∩ permitted (ambient is cleared)."""
    _unknown(
        c, ("bounding", "effective", "permitted", "inheritable", "ambient"), "process.capabilities"
    )
    sets: dict[str, set[str]] = {}
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = [_str(n, f"process.capabilities.{key}") for n in _list(c.get(key), key)]
        bad = [n for n in names if not _CAP.match(n)]
        if bad:
            raise _err(f"process.capabilities.{key}", f"{bad[0]!r} is not a capability name")
        sets[key] = set(names)
    kept = sets["bounding"] & sets["effective"] & sets["permitted"]
    if sets["ambient"] != kept or sets["inheritable"] != kept:
        notes.append("inheritable and ambient sets equal the kept capabilities")
    if (sets["bounding"] | sets["effective"] | sets["permitted"]) - kept:
        notes.append("capabilities not in all of bounding, effective and permitted are dropped")
    return frozenset(kept)


def _rlimits(items: list[Any]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for i, r in enumerate(items):
        where = f"process.rlimits[{i}]"
        r = _obj(r, where)
        _unknown(r, ("type", "soft", "hard"), where)
        name = _str(r.get("type"), f"{where}.type")
        if name not in _RLIMITS:
            raise _err(f"{where}.type", f"unknown resource {name!r}")
        soft = _int(r.get("soft"), f"{where}.soft", 0, (1 << 64) - 1)
        hard = _int(r.get("hard"), f"{where}.hard", 0, (1 << 64) - 1)
        if soft > hard:
            raise _err(where, "soft limit above the hard limit")
        inf = resource.RLIM_INFINITY
        out.append(
            (_RLIMITS[name], inf if soft >= 1 << 63 else soft, inf if hard >= 1 << 63 else hard)
        )
    return tuple(out)


def _namespaces(linux: Mapping[str, Any], notes: list[str]) -> tuple[tuple[str, str], ...]:
    seen: dict[str, str | None] = {}
    for i, n in enumerate(_list(linux.get("namespaces"), "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        n = _obj(n, where)
        _unknown(n, ("type", "path"), where)
        t = _str(n.get("type"), f"{where}.type")
        if t not in NS_TYPES:
            raise _err(f"{where}.type", f"unknown namespace type {t!r}")
        if t in seen:
            raise _err(f"{where}.type", f"namespace {t!r} listed twice")
        path = n.get("path")
        if path:
            path = _abs(path, f"{where}.path")
            if t not in JOINABLE_NS:
                raise _err(
                    f"{where}.path",
                    f"joining a {t} namespace is not supported (only {', '.join(JOINABLE_NS)})",
                )
        seen[t] = path or None
    for t in REQUIRED_NS:
        if t not in seen:
            raise _err("linux.namespaces", f"no {t} namespace: sharing the host's is not supported")
    if "user" in seen or linux.get("uidMappings") or linux.get("gidMappings"):
        notes.append(
            "user namespace: sandbox maps exactly the process's uid and gid, each onto a run "
            "slot of its own; other uidMappings/gidMappings entries are not mapped"
        )
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(_list(linux.get(key), f"linux.{key}")):
            m = _obj(m, f"linux.{key}[{i}]")
            _unknown(m, ("containerID", "hostID", "size"), f"linux.{key}[{i}]")
            for k in ("containerID", "hostID", "size"):
                _int(m.get(k), f"linux.{key}[{i}].{k}", 0, (1 << 32) - 1)
    return tuple((t, p) for t, p in seen.items() if p)


def _mount_opts(opts: list[Any], where: str) -> tuple[set[str], dict[str, str]]:
    flags: set[str] = set()
    keys: dict[str, str] = {}
    for j, o in enumerate(opts):
        o = _str(o, f"{where}.options[{j}]")
        if "=" in o:
            k, v = o.split("=", 1)
            if k not in _MOUNT_KEYS_OK:
                raise _err(f"{where}.options[{j}]", f"mount option {o!r} is not supported")
            keys[k] = v
        elif o in _MOUNT_OPTS_OK:
            flags.add(o)
        elif o in ("suid", "dev"):
            flags.add(o)  # stricter: every mount is nosuid,nodev (noted by the caller)
        else:
            raise _err(f"{where}.options[{j}]", f"mount option {o!r} is not supported")
    return flags, keys


def _devpts(opts: Any, where: str, notes: list[str]) -> DevptsMount:
    """A devpts mount's options: each known or refused, naming its JSON path."""
    keys: dict[str, int] = {}
    for j, o in enumerate(_list(opts, f"{where}.options")):
        at = f"{where}.options[{j}]"
        o = _str(o, at)
        k, eq, v = o.partition("=")
        if not eq:
            if o == "suid":
                notes.append("/dev/pts: mounted nosuid whatever its options say")
            elif o not in _DEVPTS_FLAGS and o != "dev":
                raise _err(at, f"devpts option {o!r} is not supported")
            continue
        if k not in _DEVPTS_KEYS:
            raise _err(at, f"devpts option {o!r} is not supported")
        try:
            n = int(v, 8) if k.endswith("mode") else int(v, 10)
        except ValueError:
            raise _err(at, f"devpts option {o!r}: not a number") from None
        if k.endswith("mode") and not 0 <= n <= 0o777:
            raise _err(at, f"devpts option {o!r}: a mode is at most 0777")
        if not k.endswith("mode") and not 0 <= n < (1 << 32) - 1:
            raise _err(at, f"devpts option {o!r}: out of range")
        keys[k] = n
    return DevptsMount(
        mode=keys.get("mode", 0o600),
        ptmxmode=keys.get("ptmxmode", 0),
        gid=keys.get("gid"),
        uid=keys.get("uid"),
        max=keys.get("max"),
    )


def _size(v: str, where: str) -> int:
    m = re.fullmatch(r"(\d+)([kmgKMG]?)", v)
    if not m:
        raise _err(where, f"bad size {v!r}")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]


def _mounts(items: list[Any], bundle: str, notes: list[str]) -> tuple[Mount, ...]:
    out: list[Mount] = []
    for i, m in enumerate(items):
        where = f"mounts[{i}]"
        m = _obj(m, where)
        _unknown(
            m, ("destination", "type", "source", "options", "uidMappings", "gidMappings"), where
        )
        if m.get("uidMappings") or m.get("gidMappings"):
            raise _err(where, "id-mapped mounts are not supported")
        dest = _abs(m.get("destination"), f"{where}.destination")
        if m.get("type") == "devpts":
            if dest != "/dev/pts":
                raise _err(f"{where}.destination", f"{dest}: devpts is mounted at /dev/pts only")
            if any(x.devpts is not None for x in out):
                raise _err(where, "a second devpts mount")
            out.append(Mount(dest, "devpts", devpts=_devpts(m.get("options"), where, notes)))
            continue
        flags, keys = _mount_opts(_list(m.get("options"), f"{where}.options"), where)
        kind = m.get("type") or ("bind" if flags & {"bind", "rbind"} else None)
        if kind is None:
            raise _err(f"{where}.type", "missing")
        kind = _str(kind, f"{where}.type")
        if flags & {"suid", "dev"}:
            notes.append(f"{dest}: mounted nosuid,nodev whatever its options say")
        if dest == "/proc" and kind == "proc":
            continue  # sandbox's own /proc of the container's pid namespace
        if dest == "/dev" and kind == "tmpfs":
            continue  # sandbox's own minimal /dev
        if dest == "/dev/shm":
            notes.append("/dev/shm is a link to the container's /tmp")
            continue
        if kind in SKIPPED_MOUNTS:
            notes.append(f"{dest}: {SKIPPED_MOUNTS[kind]}")
            continue
        if (
            dest == "/"
            or dest.startswith(("/proc/", "/dev/", "/sys/"))
            or dest in ("/proc", "/dev")
        ):
            raise _err(f"{where}.destination", f"{dest}: mounts over /, /proc or /dev are refused")
        if kind == "bind":
            src = _str(m.get("source"), f"{where}.source")
            if ".." in src.split("/"):
                raise _err(f"{where}.source", f"{src!r} must not contain '..'")
            if not src.startswith("/"):
                src = os.path.normpath(os.path.join(bundle, src))
                if not (src + "/").startswith(bundle.rstrip("/") + "/"):
                    raise _err(f"{where}.source", f"{m.get('source')!r} escapes the bundle")
            src = os.path.normpath(src)
            if not os.path.exists(src):
                raise _err(f"{where}.source", f"{src} does not exist")
            out.append(Mount(dest, "bind", src, readonly="ro" in flags, exec="noexec" not in flags))
        elif kind == "tmpfs":
            if "ro" in flags:
                raise _err(f"{where}.options", "a read-only tmpfs is not supported")
            size = _size(keys["size"], f"{where}.options") if "size" in keys else 64 << 20
            try:
                mode = int(keys.get("mode", "755"), 8)
            except ValueError:
                raise _err(f"{where}.options", f"bad mode {keys['mode']!r}") from None
            out.append(
                Mount(
                    dest,
                    "tmpfs",
                    size=size,
                    mode=mode & 0o7777,
                    readonly="ro" in flags,
                    exec="noexec" not in flags,
                )
            )
        else:
            raise _err(f"{where}.type", f"mount type {kind!r} is not supported")
    return tuple(out)


def _devices(items: list[Any]) -> None:
    for i, d in enumerate(items):
        where = f"linux.devices[{i}]"
        d = _obj(d, where)
        path = _abs(d.get("path"), f"{where}.path")
        want = _DEFAULT_DEVICES.get(path)
        if want is None or (d.get("major"), d.get("minor")) != want or d.get("type", "c") != "c":
            raise _err(where, f"device {path} is not supported (only the default nodes exist)")


def _paths(linux: Mapping[str, Any], notes: list[str]) -> None:
    """maskedPaths/readonlyPaths: under /proc (subset=pid) and /sys (absent) they hold already."""
    for key in ("maskedPaths", "readonlyPaths"):
        for i, p in enumerate(_list(linux.get(key), f"linux.{key}")):
            p = _abs(p, f"linux.{key}[{i}]")
            if not (p.startswith(("/proc/", "/sys/")) or p in ("/proc", "/sys")):
                raise _err(
                    f"linux.{key}[{i}]", f"{p}: only paths under /proc and /sys are supported"
                )


def _resources(r: Mapping[str, Any]) -> Resources:
    _unknown(
        r,
        ("devices", "memory", "pids", "cpu", "blockIO", "hugepageLimits", "network", "unified"),
        "linux.resources",
    )
    if r.get("unified"):
        raise _err("linux.resources.unified", "raw cgroup v2 files are not supported")
    for i, d in enumerate(_list(r.get("devices"), "linux.resources.devices")):
        d = _obj(d, f"linux.resources.devices[{i}]")
        if not isinstance(d.get("allow"), bool):
            raise _err(f"linux.resources.devices[{i}].allow", "must be true or false")
    mem = _obj(r.get("memory"), "linux.resources.memory")
    _unknown(
        mem,
        (
            "limit",
            "reservation",
            "swap",
            "kernel",
            "kernelTCP",
            "swappiness",
            "disableOOMKiller",
            "useHierarchy",
        ),
        "linux.resources.memory",
    )
    memory = mem.get("limit")
    if memory is not None and memory != -1:
        memory = _int(memory, "linux.resources.memory.limit", 1)
    else:
        memory = None
    if mem.get("disableOOMKiller"):
        raise _err("linux.resources.memory.disableOOMKiller", "the OOM killer stays on")
    pids_obj = _obj(r.get("pids"), "linux.resources.pids")
    pids = pids_obj.get("limit")
    pids = None if pids in (None, -1, 0) else _int(pids, "linux.resources.pids.limit", 1)
    cpu = _obj(r.get("cpu"), "linux.resources.cpu")
    _unknown(
        cpu,
        (
            "shares",
            "quota",
            "period",
            "cpus",
            "mems",
            "realtimeRuntime",
            "realtimePeriod",
            "idle",
            "burst",
        ),
        "linux.resources.cpu",
    )
    if cpu.get("shares") not in (None, 0, 1024):  # 1024: the kernel's default weight, a no-op
        raise _err("linux.resources.cpu.shares", "cpu weights are not supported")
    for k in ("realtimeRuntime", "realtimePeriod", "idle", "burst"):
        if cpu.get(k):
            raise _err(f"linux.resources.cpu.{k}", "not supported by sandbox-runtime")
    quota = None
    if cpu.get("quota") not in (None, -1, 0):
        q = _int(cpu["quota"], "linux.resources.cpu.quota", 1000)
        period = _int(cpu.get("period", 100000), "linux.resources.cpu.period", 1000, 1000000)
        quota = q / period
    cpus = cpu.get("cpus") or None
    if cpus is not None and not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", _str(cpus, "cpus")):
        raise _err("linux.resources.cpu.cpus", f"bad cpu list {cpus!r}")
    if cpu.get("mems"):
        raise _err("linux.resources.cpu.mems", "memory nodes are not supported")
    return Resources(
        memory=memory,
        pids=pids,
        cpu_quota=quota,
        cpuset=cpus,
        io=_blockio(_obj(r.get("blockIO"), "linux.resources.blockIO")),
        hugetlb=_hugetlb(_list(r.get("hugepageLimits"), "linux.resources.hugepageLimits")),
        **_network(_obj(r.get("network"), "linux.resources.network")),
    )


def _blockio(b: Mapping[str, Any]) -> tuple[tuple[str, str, int], ...]:
    _unknown(
        b,
        (
            "weight",
            "leafWeight",
            "weightDevice",
            "throttleReadBpsDevice",
            "throttleWriteBpsDevice",
            "throttleReadIOPSDevice",
            "throttleWriteIOPSDevice",
        ),
        "linux.resources.blockIO",
    )
    for k in ("weight", "leafWeight", "weightDevice"):
        if b.get(k):
            raise _err(f"linux.resources.blockIO.{k}", "io weights are not supported")
    out = []
    for key, name in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for i, d in enumerate(_list(b.get(key), key)):
            where = f"linux.resources.blockIO.{key}[{i}]"
            d = _obj(d, where)
            dev = (
                f"{_int(d.get('major'), where + '.major')}:{_int(d.get('minor'), where + '.minor')}"
            )
            out.append((dev, name, _int(d.get("rate"), f"{where}.rate", 1)))
    return tuple(out)


def _hugetlb(items: list[Any]) -> tuple[tuple[str, int], ...]:
    out = []
    for i, h in enumerate(items):
        where = f"linux.resources.hugepageLimits[{i}]"
        h = _obj(h, where)
        size = _str(h.get("pageSize"), f"{where}.pageSize")
        if not re.fullmatch(r"\d+[KMG]B", size):
            raise _err(f"{where}.pageSize", f"bad page size {size!r} (e.g. '2MB')")
        out.append((size, _int(h.get("limit"), f"{where}.limit", 0)))
    return tuple(out)


def _network(n: Mapping[str, Any]) -> dict[str, Any]:
    _unknown(n, ("classID", "priorities"), "linux.resources.network")
    classid = n.get("classID")
    prio = []
    for i, p in enumerate(_list(n.get("priorities"), "priorities")):
        where = f"linux.resources.network.priorities[{i}]"
        p = _obj(p, where)
        name = _str(p.get("name"), f"{where}.name")
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,15}", name):
            raise _err(f"{where}.name", f"bad interface name {name!r}")
        prio.append((name, _int(p.get("priority"), f"{where}.priority", 0, (1 << 32) - 1)))
    return {
        "net_classid": None if classid is None else _int(classid, "classID", 0, (1 << 32) - 1),
        "net_prio": tuple(prio),
    }


def _sysctl(s: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for k, v in s.items():
        where = f"linux.sysctl.{k}"
        v = _str(v, where)
        if not _SYSCTL.match(k) or "\n" in v:
            raise _err(where, "bad sysctl")
        if not (k.startswith("net.") or k in _SYSCTL_IPC or k.startswith("fs.mqueue.")):
            raise _err(
                where, "only sysctls of the container's own net/ipc namespaces are supported"
            )
        out.append((k, v))
    return tuple(out)


def _hooks(h: Mapping[str, Any]) -> Mapping[str, tuple[Hook, ...]]:
    _unknown(
        h,
        ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"),
        "hooks",
    )
    out: dict[str, tuple[Hook, ...]] = {}
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        hooks = []
        for i, x in enumerate(_list(h.get(kind), f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            x = _obj(x, where)
            _unknown(x, ("path", "args", "env", "timeout"), where)
            t = x.get("timeout")
            hooks.append(
                Hook(
                    path=_abs(x.get("path"), f"{where}.path"),
                    args=tuple(_str(a, f"{where}.args") for a in _list(x.get("args"), where)),
                    env=tuple(_str(a, f"{where}.env") for a in _list(x.get("env"), where)),
                    timeout=None if t is None else _int(t, f"{where}.timeout", 1, 3600),
                )
            )
        out[kind] = tuple(hooks)
    for kind in ("createContainer", "startContainer"):
        if h.get(kind):
            raise _err(f"hooks.{kind}", "hooks inside the container's namespaces are not supported")
    return out

"""Policy -> LandlockArtifact: which rights Landlock grants on which path of the container.

Supervisor side, pure: no syscalls, no filesystem access. The host's ABI is
passed in (``abi.probe()`` reads it), so the same policy can be planned for any
kernel and tested at every ABI. Everything the child needs is computed here,
as plain ints and strings (they cross to the launcher as JSON), so
``restrict.apply_in_child`` only makes syscalls.

Semantics (STYLE B8 "Landlock", issue 3 item 2):

- handled rights = every right the host's ABI knows, so whatever is not granted
  below is denied;
- ``read_paths``: read files and list directories; ``exec_paths``: read and
  execute (execve(2) opens the file for reading, so EXECUTE alone is useless);
  either may name a single file, which gets the file rights only (Landlock
  accepts rules on files for file rights: a learned profile grants
  ``/etc/hostname`` without the rest of ``/etc``), or a ``*`` glob in the last
  component (``libz.so.1.*``: a learned library that survives a minor
  upgrade), expanded by the child inside the new root;
- ``list_paths``: list directories (READ_DIR) without reading their files;
- ``map_paths`` (shared libraries mapped as code, never executed): read, since
  Landlock does not mediate mmap(PROT_EXEC);
- writable trees (``writable``, writable binds, tmpfs): read plus create,
  write, remove, truncate and REFER (rename/link). Never MAKE_CHAR/MAKE_BLOCK:
  the payload has no CAP_MKNOD, and Landlock says no as well;
- the safe device nodes ``/dev/null /dev/zero /dev/full``: read, write,
  truncate (``> /dev/null`` opens with O_TRUNC) and IOCTL_DEV; ``/dev/random
  /dev/urandom``: read and IOCTL_DEV only (as the AppArmor profile). Landlock
  grants IOCTL_DEV on no other path (these ioctls are harmless: ENOTTY, or
  CAP_SYS_ADMIN-only entropy ioctls);
- no TCP bind/connect (ABI >= 4) except on ``network.tcp_ports`` (one NET_PORT
  rule each, bind and connect), and scoped abstract unix sockets and signals
  (ABI >= 6): the payload has no network and no business outside its domain.

Rights accumulate down a tree (Landlock unions the rules of a path's ancestors),
so a read-only path *inside* a writable tree stays writable. Paths are the
paths *as seen inside the container* after pivot_root.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sandbox.errors import ArtifactError
from sandbox.landlock.abi import (
    FILE_RIGHTS,
    LATEST_ABI,
    AccessFs,
    AccessNet,
    missing_names,
    names,
    rights_for,
)

if TYPE_CHECKING:  # the launcher imports this module: no pydantic at run time
    from sandbox.policy.frozen import Filesystem

_FS = AccessFs
READ = _FS.LANDLOCK_ACCESS_FS_READ_FILE | _FS.LANDLOCK_ACCESS_FS_READ_DIR
LIST = _FS.LANDLOCK_ACCESS_FS_READ_DIR
EXECUTE = _FS.LANDLOCK_ACCESS_FS_EXECUTE
WRITE = (
    _FS.LANDLOCK_ACCESS_FS_WRITE_FILE
    | _FS.LANDLOCK_ACCESS_FS_REMOVE_DIR
    | _FS.LANDLOCK_ACCESS_FS_REMOVE_FILE
    | _FS.LANDLOCK_ACCESS_FS_MAKE_DIR
    | _FS.LANDLOCK_ACCESS_FS_MAKE_REG
    | _FS.LANDLOCK_ACCESS_FS_MAKE_SOCK
    | _FS.LANDLOCK_ACCESS_FS_MAKE_FIFO
    | _FS.LANDLOCK_ACCESS_FS_MAKE_SYM
    | _FS.LANDLOCK_ACCESS_FS_REFER
    | _FS.LANDLOCK_ACCESS_FS_TRUNCATE
)
DEVICE = (
    _FS.LANDLOCK_ACCESS_FS_READ_FILE
    | _FS.LANDLOCK_ACCESS_FS_WRITE_FILE
    | _FS.LANDLOCK_ACCESS_FS_TRUNCATE
    | _FS.LANDLOCK_ACCESS_FS_IOCTL_DEV
)
# Read-only devices: reading randomness needs no write, and the AppArmor
# profile grants these two 'r' only; the same decision on both layers.
READ_ONLY_DEVICE = _FS.LANDLOCK_ACCESS_FS_READ_FILE | _FS.LANDLOCK_ACCESS_FS_IOCTL_DEV
TCP = int(AccessNet.LANDLOCK_ACCESS_NET_BIND_TCP | AccessNet.LANDLOCK_ACCESS_NET_CONNECT_TCP)
SAFE_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
READ_ONLY_DEVICES = ("/dev/random", "/dev/urandom")

State = Literal["full", "partial", "off"]


@dataclass(frozen=True, slots=True)
class PathRule:
    """One ``landlock_add_rule(PATH_BENEATH)`` for a path inside the container.

    Attributes:
        path: absolute path inside the new root.
        access: rights granted if the path is a directory (masked to the ABI).
        file_access: rights granted if it turns out to be a file (``access``
            restricted to what Landlock accepts on a non-directory).
        required: a missing path fails the run (the fs layer creates it, so
            its absence means the plan and the mounts disagree); otherwise it is
            skipped, which can only deny more.
        is_dir: expected to be a directory (opened with O_DIRECTORY first).
        glob: the last component holds ``*`` (``libz.so.1.*``): the rule applies to
            every entry of the directory it matches when the child applies the
            ruleset (inside the new root), and to none when none matches.
    """

    path: str
    access: int
    file_access: int
    required: bool
    is_dir: bool
    glob: bool = False


@dataclass(frozen=True, slots=True)
class NetRule:
    """One ``landlock_add_rule(NET_PORT)``: allow ``access`` on TCP ``port``."""

    port: int
    access: int


@dataclass(frozen=True, slots=True)
class LandlockArtifact:
    """Everything the child needs to enforce Landlock, precomputed.

    Attributes:
        abi: the ABI the ruleset is built for (the host's, clamped to LATEST_ABI).
        handled_fs / handled_net / scoped: the landlock_ruleset_attr fields.
        rules / net_rules: the rules, path rules sorted by path.
        state: ``full``, ``partial`` (the ABI lacks rights; ``missing`` names
            them) or ``off`` (no Landlock; ``detail`` says why).
        missing: kernel names of the rights the host's ABI cannot mediate.
        key: digest of all of the above, for caching and the run record.
        detail: one human sentence for the enforcement report.
    """

    abi: int
    handled_fs: int
    handled_net: int
    scoped: int
    rules: tuple[PathRule, ...]
    net_rules: tuple[NetRule, ...]
    state: State
    missing: tuple[str, ...]
    key: str
    detail: str

    @property
    def has_file_mediation(self) -> bool:
        """Landlock mediates file access well enough for ``strict`` (ABI >= 2).

        ABI 1 cannot express REFER, so every cross-directory rename or link is
        refused; the issue asks for ABI >= 2 before Landlock alone counts.
        """
        return self.state != "off" and self.abi >= 2

    def describe(self) -> dict[str, list[str]]:
        """Rule paths -> right names, for ``sandbox explain`` and test messages."""
        return {r.path: list(names(r.access, AccessFs)) for r in self.rules}


def _inside_file(path: str) -> str:
    """A program file's inside path, cleaned; ArtifactError unless absolute without . or .."""
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or "\0" in path or any(p in (".", "..") for p in parts):
        raise ArtifactError(
            "landlock", f"program file {path!r} must be an absolute path without '.' or '..'"
        )
    return "/" + "/".join(parts)


def prepare(
    fs: Filesystem,
    abi: int,
    *,
    program_dir: str | None = None,
    program_files: tuple[str, ...] = (),
    tcp_ports: tuple[int, ...] = (),
) -> LandlockArtifact:
    """Compile the filesystem policy into a Landlock ruleset for ABI ``abi``.

    Args:
        fs: the policy's filesystem section (paths inside the container).
        abi: the host's Landlock ABI (``abi.probe()``); 0 means no Landlock.
        program_dir: inside directory holding the payload's executable, granted
            read and execute (it must exist: required).
        program_files: the payload's executable and its script interpreter
            (inside paths), each granted read and execute on that file alone,
            as the AppArmor profile grants them ``mrix`` whatever
            ``exec_paths`` says. Skipped when missing (exec then fails anyway).
        tcp_ports: ``network.tcp_ports``: TCP ports granted bind and connect (one
            NET_PORT rule each); every other port stays denied.

    Returns:
        The artifact; ``state`` says whether the ruleset is full, partial or off.
        Whether a non-full state is acceptable is the plan's decision, not this one.

    Raises:
        ArtifactError: ``program_dir`` or a program file is not a clean
            absolute path.
    """
    have = rights_for(abi)
    missing = missing_names(have.abi)
    if have.abi == 0:
        return _artifact(
            0,
            AccessFs(0),
            0,
            0,
            (),
            "off",
            missing,
            f"no Landlock on this kernel (ABI {abi}): not built in, or not "
            "enabled on the lsm= command line",
        )
    wanted = _wanted(fs, program_dir, program_files)
    rules = tuple(
        PathRule(
            path,
            int(acc & have.fs),
            int(acc & have.fs & FILE_RIGHTS),
            req and not is_glob(path),
            is_dir,
            is_glob(path),
        )
        for path, (acc, req, is_dir) in sorted(wanted.items())
    )
    state: State = "partial" if missing else "full"
    # BIND_TCP/CONNECT_TCP are handled: a port no rule grants is denied.
    net_access = int(have.net) & TCP
    net_rules = tuple(NetRule(p, net_access) for p in sorted(set(tcp_ports))) if net_access else ()
    tcp = f"TCP only on ports {_ports(tcp_ports)}" if net_rules else "no TCP"
    detail = (
        f"Landlock ABI {have.abi}: {len(rules)} path rules, {tcp}, scoped IPC"
        if state == "full"
        else f"Landlock ABI {have.abi} < {LATEST_ABI}: cannot mediate {', '.join(missing)}"
    )
    return _artifact(
        have.abi, have.fs, int(have.net), int(have.scope), rules, state, missing, detail, net_rules
    )


def _ports(ports: tuple[int, ...]) -> str:
    return ", ".join(str(p) for p in sorted(set(ports)))


def _wanted(
    fs: Filesystem, program_dir: str | None, program_files: tuple[str, ...] = ()
) -> dict[str, tuple[AccessFs, bool, bool]]:
    """Path -> (rights, required, is_dir) before masking to the ABI, merged per path."""
    out: dict[str, tuple[AccessFs, bool, bool]] = {}

    def grant(path: str, access: AccessFs, required: bool, is_dir: bool = True) -> None:
        old = out.get(path)
        if old:
            out[path] = (old[0] | access, old[1] or required, old[2] and is_dir)
        else:
            out[path] = (access, required, is_dir)

    for dev in SAFE_DEVICES:
        grant(dev, DEVICE, required=False, is_dir=False)
    for p in fs.list_paths:
        grant(p, LIST, required=False)
    for p in (*fs.read_paths, *fs.map_paths):  # Landlock cannot see mmap(PROT_EXEC)
        grant(p, READ, required=False)
    for p in fs.exec_paths:
        grant(p, READ | EXECUTE, required=False)
    for p in fs.writable:
        grant(p, READ | WRITE, required=True)
    for b in fs.binds:
        access = READ | (WRITE if b.writable else 0) | (EXECUTE if b.exec else 0)
        grant(b.target, access, required=not b.optional)
    for t in fs.tmpfs:
        grant(t.target, READ | WRITE, required=True)
    if program_dir is not None:
        grant(_inside_path(program_dir), READ | EXECUTE, required=True)
    for f in program_files:
        grant(_inside_file(f), READ | EXECUTE, required=False, is_dir=False)
    for dev in READ_ONLY_DEVICES:  # read only, as the AppArmor profile has them
        out[dev] = (READ_ONLY_DEVICE, False, False)
    return out


def is_glob(path: str) -> bool:
    """A path whose last component holds ``*`` (the only glob policies may use)."""
    return "*" in path.rsplit("/", 1)[-1]


def glob_match(pattern: str, name: str) -> bool:
    """``fnmatch`` for ``*`` alone (no other character is special); pure, import-free,
    so the launcher child loads nothing new for it."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    if not name.startswith(parts[0]) or len(name) < len(pattern) - len(parts) + 1:
        return False
    pos = len(parts[0])
    for part in parts[1:-1]:
        found = name.find(part, pos)
        if found < 0:
            return False
        pos = found + len(part)
    return name.endswith(parts[-1]) and len(name) - len(parts[-1]) >= pos


def _inside_path(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if not path.startswith("/") or "\0" in path or any(p in (".", "..") for p in parts):
        raise ArtifactError(
            "landlock",
            f"program_dir {path!r} must be an absolute path without '.' or '..' components",
        )
    return "/" + "/".join(parts)


def _artifact(
    abi: int,
    handled_fs: int,
    handled_net: int,
    scoped: int,
    rules: tuple[PathRule, ...],
    state: State,
    missing: tuple[str, ...],
    detail: str,
    net_rules: tuple[NetRule, ...] = (),
) -> LandlockArtifact:
    body = {
        "abi": abi,
        "fs": handled_fs,
        "net": handled_net,
        "scoped": scoped,
        "rules": [[r.path, r.access, r.file_access, r.required, r.is_dir, r.glob] for r in rules],
        "net_rules": [[n.port, n.access] for n in net_rules],
        "state": state,
    }
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return LandlockArtifact(
        abi, int(handled_fs), handled_net, scoped, rules, net_rules, state, missing, key, detail
    )


__all__ = [
    "DEVICE",
    "EXECUTE",
    "LIST",
    "READ",
    "SAFE_DEVICES",
    "WRITE",
    "LandlockArtifact",
    "NetRule",
    "PathRule",
    "glob_match",
    "is_glob",
    "prepare",
]

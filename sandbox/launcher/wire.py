"""Binary encoding of a LaunchPlan and of the native launcher's control messages.

The native launcher (``sandbox/launcher/native``) reads this and nothing else:
its decoder (``plan.c``) is the only parser, bounds-checks every length and
count, and rejects a message that does not end exactly at its last field. The
format is versioned (``PLAN_VERSION``, ``PROTOCOL_VERSION``, the same numbers
as ``sbx.h``; a test compares them) and compact: little-endian integers; a
bool is one byte 0/1; a string is its u32 length, its UTF-8 bytes and a NUL
(so the C side uses it in place); a list is a u32 count and its items. The
field order is :func:`encode_plan`'s, mirrored line by line in ``plan.c``.

Pure: no I/O. Raises ``ValueError`` naming the field for a value the format
cannot carry (a NUL inside a string, a negative id, a list over its bound).
"""

from __future__ import annotations

import functools
import stat
import struct
from collections.abc import Iterable, Sequence

from sandbox.fs.ops import MountPlan
from sandbox.landlock.rules import LandlockArtifact
from sandbox.plan import LaunchPlan
from sandbox.syscalls.consts import CloneFlag

# 2: a writable bind's idmap flag; 3: private binds, staged entries; 4: devpts, console
PLAN_VERSION = 4
PROTOCOL_VERSION = 4  # 2: staged-file directories in SPAWN; 3: HOLD; 4: the gate flag
MAGIC = b"SBXP"
# Bounds (sbx.h has the same numbers).
MAX_MSG = 1 << 20
MAX_STR = 4096
MAX_ARG = 128 * 1024
MAX_ARGV = 4096
MAX_ENV = 4096

# Control messages (client <-> native server)
OP_SPAWN, OP_KILL, OP_RELEASE, OP_PING, OP_HOLD = 1, 2, 3, 4, 5
R_HELLO, R_SPAWNED, R_FAILED, R_EXITED, R_PONG = 100, 101, 102, 103, 104

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U64_MASK = (1 << 64) - 1


class Writer:
    """Appends wire primitives; ``field`` names the current field for errors."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.field = ""

    def u8(self, v: int) -> None:
        """One byte."""
        self.buf.append(v)

    def flag(self, v: bool) -> None:
        """0 or 1."""
        self.buf.append(1 if v else 0)

    def u32(self, v: int) -> None:
        """Unsigned 32-bit; refuses what does not fit."""
        if not 0 <= v < 1 << 32:
            raise ValueError(f"{self.field}: {v} does not fit in 32 bits")
        self.buf += _U32.pack(v)

    def u64(self, v: int) -> None:
        """64-bit, two's complement for negatives (RLIM_INFINITY is -1)."""
        if not -(1 << 63) <= v < 1 << 64:
            raise ValueError(f"{self.field}: {v} does not fit in 64 bits")
        self.buf += _U64.pack(v & _U64_MASK)

    def text(self, s: str, limit: int = MAX_STR) -> None:
        """Length, UTF-8 bytes (surrogateescape: paths may be any bytes), NUL."""
        raw = s.encode("utf-8", "surrogateescape")
        if b"\0" in raw:
            raise ValueError(f"{self.field}: NUL inside {s[:40]!r}")
        if len(raw) > limit:
            raise ValueError(f"{self.field}: longer than {limit} bytes: {s[:40]!r}...")
        self.u32(len(raw))
        self.buf += raw + b"\0"

    def blob(self, b: bytes) -> None:
        """Length and bytes."""
        self.u32(len(b))
        self.buf += b

    def strs(self, items: Sequence[str], limit: int = MAX_STR) -> None:
        """A list of strings."""
        self.u32(len(items))
        for s in items:
            self.text(s, limit)


def encode_plan(plan: LaunchPlan) -> bytes:
    """The plan as the native launcher reads it (see module docstring)."""
    w = Writer()
    w.buf += MAGIC
    w.u32(PLAN_VERSION)
    w.u32(0)  # total length, patched below
    w.field = "run_id"
    w.text(plan.run_id, 255)
    w.field = "policy_digest"
    w.text(plan.policy_digest, 255)
    w.field = "ids"
    for v in (plan.inside_uid, plan.inside_gid, plan.host_uid, plan.host_gid):
        w.u32(v)
    w.flag(plan.id_mode == "rootless")
    w.field = "hostname"
    w.text(plan.hostname, 64)
    w.field = "unshare_flags"
    w.u64(plan.unshare_flags)
    w.flag(plan.cgroupns)
    w.flag(plan.nested_userns)
    _mounts(w, plan)
    w.field = "exec_path"
    w.text(plan.exec_path)
    w.field = "argv"
    _bounded(w, plan.argv, MAX_ARGV)
    w.strs(plan.argv, MAX_ARG)
    w.field = "env"
    _bounded(w, plan.env, MAX_ENV)
    w.strs([f"{k}={v}" for k, v in plan.env], MAX_ARG)
    w.field = "workdir"
    w.text(plan.workdir)
    w.field = "apparmor_profile"
    w.flag(plan.apparmor_profile is not None)
    if plan.apparmor_profile is not None:
        w.text(plan.apparmor_profile, 255)
    w.flag(plan.no_new_privs)
    w.flag(plan.drop_caps)
    w.u64(plan.caps_keep)
    w.field = "rlimits"
    w.u32(len(plan.rlimits))
    for r in plan.rlimits:
        w.u32(r.resource)
        w.u64(r.soft)
        w.u64(r.hard)
    _landlock(w, plan)
    w.field = "seccomp"
    sec = plan.seccomp
    w.flag(sec is not None)
    if sec is not None:
        w.blob(sec.bpf)
        w.u32(sec.flags)
        w.flag(sec.notify)
    w.flag(plan.join_cgroup)
    w.field = "collect"
    w.strs(plan.collect, 255)
    w.u64(plan.collect_limit)
    w.flag(prepared_netns_ok(plan))
    w.field = "join_ns"
    _pairs(w, plan.join_ns, MAX_JOIN_NS)
    w.field = "sysctl"
    _pairs(w, plan.sysctl, MAX_SYSCTL)
    w.field = "console"
    if plan.console and plan.mounts.devpts is None:
        raise ValueError("console: a console needs the run's own devpts (mounts.devpts)")
    w.flag(plan.console)
    if len(w.buf) > MAX_MSG - 4096:
        raise ValueError(f"plan of {len(w.buf)} bytes is over the launcher's limit")
    w.buf[8:12] = _U32.pack(len(w.buf))
    return bytes(w.buf)


def prepared_netns_ok(plan: LaunchPlan) -> bool:
    """May a network namespace prepared ahead serve this run (the server's pool)?

    Such a namespace belongs to the initial user namespace, not the run's: a
    payload holding capabilities in its own user namespace could use them on
    a namespace of its own (a raw socket with CAP_NET_RAW) but not on this
    one. Only when the payload keeps no capability at all is there no
    difference to see, so only then (and as root: rootless runs cannot make
    one outside their user namespace).
    """
    return bool(
        plan.unshare_flags & CloneFlag.CLONE_NEWNET
        and plan.drop_caps
        and plan.caps_keep == 0
        and plan.id_mode == "slot"
        and not plan.mounts.rootless
    )


MAX_JOIN_NS = 3  # network, ipc, uts (launcher.steps.step_join_namespaces)
MAX_SYSCTL = 64


def _pairs(w: Writer, items: Sequence[tuple[str, str]], limit: int) -> None:
    _bounded(w, items, limit)
    w.u32(len(items))
    for a, b in items:
        w.text(a, 255)
        w.text(b)


def _bounded(w: Writer, items: Sequence[object], limit: int) -> None:
    if len(items) > limit:
        raise ValueError(f"{w.field}: {len(items)} entries, at most {limit}")


# The mount plan and the Landlock rules are most of a plan's bytes and of the
# time to encode it (~40 of ~60 us a run), and they repeat from run to run of a
# profile (frozen, hashable): each is encoded once and reused by value.


def _mounts(w: Writer, plan: LaunchPlan) -> None:
    w.buf += _mounts_bytes(plan.mounts)


def _landlock(w: Writer, plan: LaunchPlan) -> None:
    w.buf += _landlock_bytes(plan.landlock)


@functools.lru_cache(maxsize=64)
def _mounts_bytes(m: MountPlan) -> bytes:
    w = Writer()
    w.field = "mounts.lowers"
    w.strs(m.lowers)
    w.u64(m.upper_size)
    w.u64(m.upper_inodes)
    w.field = "mounts.upper_entries"
    w.u32(len(m.upper_entries))
    for e in m.upper_entries:
        w.text(e.path)
        w.u32(e.mode | (stat.S_IFREG if e.file else 0))  # a file: a single-file bind's point
        w.flag(e.owner == "payload")
    w.field = "mounts.binds"
    w.u32(len(m.binds))
    for b in m.binds:
        w.text(b.source)
        w.text(b.target)
        w.flag(b.writable)
        w.flag(b.exec)
        w.flag(b.idmap)  # idmapped to its source's owner (read by the launcher)
        w.flag(b.private)
    w.field = "mounts.tmpfs"
    w.u32(len(m.tmpfs))
    for t in m.tmpfs:
        w.text(t.target)
        w.u64(t.size)
        w.u32(t.mode)
    w.field = "mounts.writable"
    w.strs(m.writable)
    w.flag(m.proc_subset_pid)
    w.field = "mounts.dev_nodes"
    w.u32(len(m.dev_nodes))
    for name, major, minor in m.dev_nodes:
        w.text(name, 255)
        w.u32(major)
        w.u32(minor)
    w.field = "mounts.dev_links"
    w.u32(len(m.dev_links))
    for name, target in m.dev_links:
        w.text(name, 255)
        w.text(target)
    w.field = "mounts.program"
    w.flag(m.program is not None)
    if m.program is not None:
        w.text(m.program[0])
        w.text(m.program[1], 255)
    w.field = "mounts.copy_in"
    w.u32(len(m.copy_in))
    for f in m.copy_in:  # files first, links last (sandbox.fs.staging)
        w.text(f.name)
        w.u32(f.mode)
        w.flag(f.link is not None)
        w.text(f.source if f.link is None else f.link)
    w.flag(m.overlay)
    w.flag(m.nosuid)
    w.flag(m.proc_masks)
    w.field = "mounts.staging"
    w.text(m.staging, MAX_STR - 256)
    w.flag(m.rootless)
    w.flag(m.read_only_root)
    w.field = "mounts.devpts"
    pts = m.devpts
    w.flag(pts is not None)
    if pts is not None:
        if not (0 <= pts.mode <= 0o777 and 0 <= pts.ptmxmode <= 0o777):
            raise ValueError(f"{w.field}: a mode is at most 0777")
        w.u32(pts.mode)
        w.u32(pts.ptmxmode)
        for v in (pts.gid, pts.uid, pts.max):  # each: present, value
            w.flag(v is not None)
            w.u32(0 if v is None else v)
    return bytes(w.buf)


@functools.lru_cache(maxsize=64)
def _landlock_bytes(ll: LandlockArtifact | None) -> bytes:
    w = Writer()
    w.field = "landlock"
    w.flag(ll is not None)
    if ll is None:
        return bytes(w.buf)
    w.flag(ll.state != "off")
    w.u64(ll.handled_fs)
    w.u64(ll.handled_net)
    w.u64(ll.scoped)
    w.field = "landlock.rules"
    w.u32(len(ll.rules))
    for r in ll.rules:
        w.text(r.path, MAX_STR - 256)
        w.u64(r.access)
        w.u64(r.file_access)
        w.flag(r.required)
        w.flag(r.is_dir)
        w.flag(r.glob)
    w.u32(len(ll.net_rules))
    for n in ll.net_rules:
        w.u64(n.port)
        w.u64(n.access)
    return bytes(w.buf)


# ------------------------------------------------------- control messages ----


def encode_spawn(
    run_id: str,
    plan: bytes,
    has_notify: bool,
    n_cgroup: int,
    cleanup_dirs: Iterable[str],
    cleanup_files: Iterable[str],
    staged_dirs: Iterable[str] = (),
    has_gate: bool = False,
) -> bytes:
    """SPAWN: the fds travel with it in a fixed order (stdin, stdout, stderr,
    errpipe, status, [notify], [gate: an OCI create's start barrier], cgroup join
    fds...)."""
    w = Writer()
    w.field = "spawn"
    w.u32(OP_SPAWN)
    w.text(run_id, 255)
    w.flag(has_notify)
    w.flag(has_gate)
    w.u32(n_cgroup)
    w.strs(list(cleanup_dirs))
    w.strs(list(staged_dirs))  # flat directories of staged files, removed before the files
    w.strs(list(cleanup_files))
    w.blob(plan)
    return bytes(w.buf)


def encode_hold(run_id: str, cleanup_dirs: Iterable[str], cleanup_files: Iterable[str]) -> bytes:
    """HOLD: what to remove for a run id that has no process yet (a pooled leaf
    and its lock), should the client die; a SPAWN of that id or a RELEASE ends it."""
    w = Writer()
    w.field = "hold"
    w.u32(OP_HOLD)
    w.text(run_id, 255)
    w.strs(list(cleanup_dirs))
    w.strs(list(cleanup_files))
    return bytes(w.buf)


def encode_op(op: int, run_id: str = "") -> bytes:
    """KILL / RELEASE / PING."""
    w = Writer()
    w.field = "op"
    w.u32(op)
    w.text(run_id, 255)
    return bytes(w.buf)


class Reader:
    """Reads the server's replies (trusted, but checked all the same)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.off = data, 0

    def u32(self) -> int:
        """Unsigned 32-bit."""
        (v,) = _U32.unpack_from(self.data, self.off)
        self.off += 4
        return int(v)

    def i32(self) -> int:
        """Signed 32-bit."""
        (v,) = struct.unpack_from("<i", self.data, self.off)
        self.off += 4
        return int(v)

    def text(self) -> str:
        """A string as :meth:`Writer.text` writes it."""
        n = self.u32()
        raw = self.data[self.off : self.off + n]
        if len(raw) != n or self.data[self.off + n : self.off + n + 1] != b"\0":
            raise ValueError("truncated string in a launcher reply")
        self.off += n + 1
        return raw.decode("utf-8", "replace")


def decode_reply(data: bytes) -> dict[str, object]:
    """A server reply as the dict the supervisor expects (``op`` and its fields).

    Raises:
        ValueError: for a malformed or unknown reply.
    """
    r = Reader(data)
    try:
        op = r.u32()
        if op == R_HELLO:
            return {"op": "hello", "protocol": r.u32(), "plan": r.u32(), "build": r.text()}
        if op == R_SPAWNED:
            return {"op": "spawned", "run_id": r.text(), "pid": r.u32()}
        if op == R_FAILED:
            return {"op": "failed", "run_id": r.text(), "error": r.text()}
        if op == R_EXITED:
            return {"op": "exited", "run_id": r.text(), "status": r.i32()}
        if op == R_PONG:
            return {"op": "pong"}
    except struct.error as e:
        raise ValueError(f"truncated launcher reply: {e}") from e
    raise ValueError(f"unknown launcher reply op {op}")

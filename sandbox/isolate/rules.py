"""isolate's directory and environment rules, mapped onto a sandbox policy (pure but for stat).

Directory rules (``-d in=out:opts``) keep isolate's grammar and order: the
defaults first (``box``, ``bin``, ``dev``, ``dev/shm``, ``lib``, ``lib64``,
``proc``, ``tmp``, ``usr``), a rule for an ``in`` that already has one
replaces it, ``in=`` removes it, ``-D`` drops the defaults. What each becomes:

- ``box`` and other directory binds: read-only binds (``rw``: writable,
  ``noexec``: no exec), relative ``out`` under the box directory;
- ``tmp``: a directory of the box (``tmp/<in>``) bound read-write, handed to
  the run's uid, as isolate makes it;
- ``fs`` with ``tmpfs``: a tmpfs;
- the trees the default image already shows from the host (``usr``, ``bin``,
  ``lib``, ``lib64``, ``sbin``, ``etc`` and anything under ``usr/``) when bound
  to themselves: nothing to do (``/etc`` is the image's allow-listed copy,
  never the host's);
- ``proc``, ``dev`` and ``dev/...``: the sandbox's own /proc (this run's
  processes only) and minimal /dev; ``fs`` with ``sysfs`` or ``devpts`` is
  refused (the host's devices and kernel state);
- ``dev`` (device access) and ``norec`` are accepted and change nothing:
  devices are never reachable, binds always carry their submounts read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sandbox.isolate.box import BoxError

DEFAULTS = (
    "box=./box:rw",
    "bin",
    "dev:dev:norec",
    "dev/shm=tmpfs:fs:rw",
    "lib",
    "lib64:maybe",
    "proc=proc:fs",
    "tmp:tmp",
    "usr",
)
FLAGS = ("rw", "noexec", "fs", "maybe", "dev", "tmp", "norec")
FILESYSTEMS = ("proc", "sysfs", "tmpfs", "devpts")
# Trees the default image shows from the host (sandbox.fs.image): binding them
# onto themselves changes nothing.
IMAGE_TREES = ("usr", "bin", "sbin", "lib", "lib64", "lib32", "libx32", "etc")
DEVICES = ("null", "zero", "full", "random", "urandom")


@dataclass
class DirRule:
    """One rule: ``inside`` (no leading slash), ``outside`` (None: removed), flags."""

    inside: str
    outside: str | None
    flags: frozenset[str]
    default: bool = False


@dataclass(frozen=True)
class Mounts:
    """What the rules make: binds (source, target, writable, exec), tmpfs targets, the
    ``tmp`` directories of the box (host path, inside path), and notes for ``-v``."""

    binds: tuple[tuple[str, str, bool, bool], ...]
    tmpfs: tuple[str, ...]
    tmp_dirs: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]


def _sanitize(path: str) -> str:
    inside = path.lstrip("/")
    if not inside or ".." in inside.split("/"):
        raise ValueError("Invalid path")
    return inside.rstrip("/")


def parse_rule(arg: str, default: bool = False) -> DirRule:
    """One ``-d`` argument, as isolate reads it.

    Raises:
        ValueError: isolate's message for a bad rule.
    """
    head, *opts = arg.split(":")
    flags = set()
    for o in opts:
        if o not in FLAGS:
            raise ValueError(f"Unknown option '{o}'")
        flags.add(o)
    inside, eq, out = head.partition("=")
    if "fs" in flags and "tmp" in flags:
        raise ValueError("Flags 'fs' and 'tmp' are mutually exclusive")
    if "fs" in flags:
        if not eq:
            raise ValueError("Missing filesystem name")
        if out not in FILESYSTEMS:
            raise ValueError("This filesystem is not supported")
        return DirRule(_sanitize(inside), out, frozenset(flags), default)
    if "tmp" in flags:
        if eq:
            raise ValueError("Temporary directory mounts do not have a right-hand side")
        name = _sanitize(inside)
        return DirRule(name, "./tmp/" + name.replace("/", ":"), frozenset(flags | {"rw"}), default)
    if eq:
        if not out:
            return DirRule(_sanitize(inside), None, frozenset(flags), default)
        if not (out.startswith("/") or out.startswith("./")):
            raise ValueError("Right-hand side must start with '/' or './'")
        if ".." in out.split("/"):
            raise ValueError("Right-hand side must not contain '..'")
        return DirRule(_sanitize(inside), out, frozenset(flags), default)
    name = _sanitize(inside)
    return DirRule(name, "/" + name, frozenset(flags), default)


def rule_list(user: list[str], no_defaults: bool) -> list[DirRule]:
    """Defaults then the user's rules; a rule for an existing ``inside`` replaces it in place.

    Raises:
        ValueError: ``Invalid directory rule 'X': why``.
    """
    rules: dict[str, DirRule] = {}
    for arg in DEFAULTS:
        r = parse_rule(arg, default=True)
        rules[r.inside] = r
    for arg in user:
        try:
            r = parse_rule(arg)
        except ValueError as e:
            raise ValueError(f"Invalid directory rule '{arg}': {e}") from None
        rules[r.inside] = r
    return [r for r in rules.values() if not (no_defaults and r.default)]


def mounts(rules: list[DirRule], box_dir: str) -> Mounts:
    """The binds, tmpfs and box tmp directories the rules make (see module docstring).

    Raises:
        BoxError: a rule that cannot be honoured (a missing directory without
            ``maybe``, sysfs or devpts).
    """
    binds: list[tuple[str, str, bool, bool]] = []
    tmpfs: list[str] = []
    tmp_dirs: list[tuple[str, str]] = []
    notes: list[str] = []
    for r in rules:
        target = "/" + r.inside
        top = r.inside.split("/")[0]
        if r.outside is None:
            continue
        if top in ("proc", "dev"):
            notes.append(
                f"{target}: the sandbox's own ({'this run only' if top == 'proc' else 'minimal'})"
            )
            if "fs" in r.flags and r.outside in ("sysfs", "devpts"):
                raise BoxError(f"Cannot mount {r.outside} on {target}: not supported here")
            continue
        if "fs" in r.flags:
            if r.outside != "tmpfs":
                raise BoxError(f"Cannot mount {r.outside} on {target}: not supported here")
            tmpfs.append(target)
            continue
        source = (
            os.path.normpath(os.path.join(box_dir, r.outside))
            if r.outside.startswith("./")
            else r.outside
        )
        if "tmp" in r.flags:
            tmp_dirs.append((source, target))
        elif source == target and ((top in IMAGE_TREES and r.inside == top) or top == "usr"):
            notes.append(f"{target}: shown by the default image")
            continue
        elif not os.path.isdir(source):
            if "maybe" in r.flags:
                notes.append(f"Not binding {source} on {target} (does not exist)")
                continue
            raise BoxError(f"Cannot bind {source} on {target}: not a directory")
        binds.append((source, target, "rw" in r.flags, "noexec" not in r.flags))
    return Mounts(tuple(binds), tuple(tmpfs), tuple(tmp_dirs), tuple(notes))


def environment(rules: list[str], full: bool, caller: dict[str, str]) -> dict[str, str]:
    """isolate's environment: the caller's with ``-e``, then ``LIBC_FATAL_STDERR_=1`` and
    the ``-E`` rules in order (``VAR`` inherits, ``VAR=value`` sets, ``VAR=`` removes).

    Raises:
        ValueError: ``Invalid environment specified: X``.
    """
    env = dict(caller) if full else {}
    for rule in ("LIBC_FATAL_STDERR_=1", *rules):
        name, eq, value = rule.partition("=")
        if not name or "\0" in rule:
            raise ValueError(f"Invalid environment specified: {rule}")
        if not eq:
            if name in caller:
                env[name] = caller[name]
        elif value:
            env[name] = value
        else:
            env.pop(name, None)
    return env


def open_inside(
    path: str, workdir: str, m: Mounts, flags: int, owner: tuple[int, int] | None = None
) -> int:
    """Open a path as the run will see it (``-i``/``-o``/``-r``): under a bind or a box
    tmp directory, beneath it and never through a symlink, or one of /dev's devices.
    A file created for writing is given to ``owner`` (the run's uid), as isolate
    creates it as the box's user. FIFOs are opened blocking.

    Raises:
        BoxError: isolate's ``open("X"): why``.
    """
    from sandbox.syscalls.consts import RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS
    from sandbox.syscalls.linux import LinuxSyscalls

    inside = os.path.normpath(os.path.join(workdir, path))
    if inside in (f"/dev/{d}" for d in DEVICES):
        try:
            return os.open(inside, (flags & ~(os.O_CREAT | os.O_TRUNC)) | os.O_CLOEXEC)
        except OSError as e:
            raise BoxError(f'open("{path}"): {e.strerror}') from None
    roots = [(t, s) for s, t, _w, _x in m.binds] + [(t, s) for s, t in m.tmp_dirs]
    under = [(t, s) for t, s in roots if inside == t or inside.startswith(t.rstrip("/") + "/")]
    if not under or inside in (t for t, _ in under):
        raise BoxError(f'open("{path}"): not a file inside a directory rule')
    target, source = max(under, key=lambda ts: len(ts[0]))
    rel = inside[len(target.rstrip("/")) + 1 :]
    sc = LinuxSyscalls()
    base = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = sc.openat2(
            base,
            rel,
            flags | os.O_CLOEXEC | os.O_NOCTTY,
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
    except OSError as e:
        raise BoxError(f'open("{path}"): {e.strerror}') from None
    finally:
        os.close(base)
    st = os.fstat(fd)
    if flags & os.O_CREAT and stat_is_new(st) and owner is not None:
        os.fchmod(fd, 0o644)
        os.fchown(fd, *owner)
    return fd


def stat_is_new(st: os.stat_result) -> bool:
    """A file just made by openat2 (mode 0: openat2 here passes no mode)."""
    return st.st_mode & 0o7777 == 0 and st.st_uid == os.geteuid()


__all__ = [
    "DEFAULTS",
    "DirRule",
    "Mounts",
    "environment",
    "mounts",
    "open_inside",
    "parse_rule",
    "rule_list",
]

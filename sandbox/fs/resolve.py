"""Find the program to run, as the container will see it (supervisor side, pure reads).

- ``PROGRAM`` containing ``/`` is a host path. If the container sees the same
  file at the same path (it lies under a read-only host bind such as /usr, or
  the default image's merged-usr links), or the file lies under a bind's
  source, it runs in place (at the bind's target); otherwise it is copied
  read-only into ``/box``. An absolute path that only the container has (under
  a bind's target) runs there. The caller's cwd is never bound in.
- A bare name is looked up on the inside PATH by mapping each inside
  directory to where it lives on the host: a bind's source or a lower layer.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from sandbox.errors import ProgramNotFound
from sandbox.fs.ops import BindMount, checked_source
from sandbox.syscalls.consts import AT_FDCWD, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS
from sandbox.syscalls.linux import LinuxSyscalls

_MAX_LINKS = 40


@dataclass(frozen=True, slots=True)
class Program:
    """Where the payload is executed inside, and what to copy in for it."""

    inside_path: str
    copy_from: str | None  # host path to copy into /box, or None when visible in place
    host_path: str | None = None  # where the file is on the host (for #! and AppArmor)


def _to_host(path: str, binds: tuple[BindMount, ...], lowers: tuple[str, ...]) -> str | None:
    """Host path of an inside path (following symlinks inside the container), or None."""
    walked = _walk(path, binds, lowers)
    return walked[1] if walked else None


def inside_realpath(path: str, binds: tuple[BindMount, ...], lowers: tuple[str, ...]) -> str | None:
    """An inside path with every symlink resolved as the container sees it (what
    AppArmor matches an exec against: ``/usr/bin/python3`` is ``/usr/bin/python3.11``)."""
    walked = _walk(path, binds, lowers)
    return walked[0] if walked else None


def _walk(
    path: str, binds: tuple[BindMount, ...], lowers: tuple[str, ...]
) -> tuple[str, str] | None:
    """(real inside path, host path) of an inside path, or None when it does not exist."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        done.append(part)
        host = _host_of("/" + "/".join(done), binds, lowers)
        if host is None:
            return None
        if host and os.path.islink(host):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = os.readlink(host)
            done = [] if target.startswith("/") else done[:-1]
            parts = [p for p in target.split("/") if p] + parts
    inside = "/" + "/".join(done)
    host = _host_of(inside, binds, lowers)
    return (inside, host) if host else None


# A directory the mount code creates as a bind's mount point (or its parent):
# it exists inside though no lower layer has it.
_MOUNT_POINT_DIR = ""


def _host_of(inside: str, binds: tuple[BindMount, ...], lowers: tuple[str, ...]) -> str | None:
    for b in sorted(binds, key=lambda b: -len(b.target)):
        if inside == b.target or inside.startswith(b.target.rstrip("/") + "/"):
            return b.source + inside[len(b.target) :]
    for layer in lowers:
        cand = os.path.join(layer, inside.lstrip("/"))
        if os.path.lexists(cand):
            return cand
    if any(b.target.startswith(inside.rstrip("/") + "/") for b in binds):
        return _MOUNT_POINT_DIR
    return None


def _under_bind(host: str, binds: tuple[BindMount, ...]) -> str | None:
    """The inside path of a host file that lies under a bind's source, or None."""
    real = os.path.realpath(host)
    for b in sorted(binds, key=lambda b: -len(b.source)):
        src = b.source.rstrip("/")
        if real == src or real.startswith(src + "/"):
            return b.target.rstrip("/") + real[len(src) :]
    return None


def _is_exec_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)


def resolve(
    program: str,
    search_path: str,
    binds: tuple[BindMount, ...],
    lowers: tuple[str, ...],
    cwd: str | None = None,
    *,
    in_container: bool = False,
) -> Program:
    """Map the command line's PROGRAM to a :class:`Program`.

    ``in_container``: a PROGRAM with ``/`` names a path inside the container (an OCI
    bundle's ``process.args[0]``, relative to ``cwd`` inside), never a host path:
    nothing is copied in.

    Raises:
        ProgramNotFound: when the host path or the name on the inside PATH does not exist.
    """
    if "/" in program and in_container:
        path = os.path.normpath(os.path.join(cwd or "/", program))
        found = _to_host(path, binds, lowers)
        if found is None or not _is_exec_file(found):
            raise ProgramNotFound(f"program {program!r} not found in the container ({path})")
        return Program(path, None, found)
    if "/" in program:
        host = os.path.abspath(os.path.join(cwd or os.getcwd(), program))
        if os.path.isabs(program) and not os.path.lexists(host):
            # Only the container has it: a path under a bind's target.
            seen = _to_host(program, binds, lowers)
            if seen is not None and os.path.isfile(seen):
                return Program(program, None, seen)
        if not os.path.lexists(host):
            raise ProgramNotFound(f"program {program!r} not found (no such file {host})")
        # Copied in by root: a symlink on the way that a payload of an earlier
        # run could have planted (a writable bind) must not pick the file; the
        # launcher then opens the result without following any symlink.
        host = checked_source(host, what="program")
        try:
            st = os.lstat(host)
        except OSError as e:
            raise ProgramNotFound(f"program {program!r}: {host}: {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ProgramNotFound(f"program {program!r} is not a regular file")
        real = os.path.realpath(host)
        # In place when the container sees this very file: at the same path, or
        # under a bind whose source holds it (a compiler keeps finding its own
        # libraries beside it).
        for inside in (program if os.path.isabs(program) else None, _under_bind(host, binds)):
            if inside is None:
                continue
            seen = _to_host(inside, binds, lowers)
            if seen is not None and os.path.realpath(seen) == real:
                return Program(inside, None, host)
        return Program(f"/box/{os.path.basename(host)}", host, host)
    for d in search_path.split(":"):
        if not d.startswith("/"):
            continue
        inside = f"{d.rstrip('/')}/{program}"
        found = _to_host(inside, binds, lowers)
        if found is not None and _is_exec_file(found):
            return Program(inside, None, found)
    raise ProgramNotFound(f"program {program!r} not found on the sandbox's PATH ({search_path})")


def interpreter_of(host_path: str) -> str | None:
    """The ``#!`` interpreter of a script (as written, an inside path), or None."""
    try:
        # The program may lie where a payload wrote: never through a symlink.
        fd = LinuxSyscalls().openat2(
            AT_FDCWD,
            host_path,
            os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC,
            RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, 256)
    except OSError:
        return None
    finally:
        os.close(fd)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words else None


def host_of_inside(path: str, binds: tuple[BindMount, ...], lowers: tuple[str, ...]) -> str | None:
    """Host path of an inside path, symlinks followed as the container sees them, or None."""
    return _to_host(path, binds, lowers)

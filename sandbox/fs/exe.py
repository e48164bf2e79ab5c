"""What the kernel opens to execute a program: its ``#!`` interpreter and its ELF loader.

Supervisor side, pure reads of the program's first bytes. The judge profiles
give execute rights to the program and these files only (Landlock EXECUTE on
each file, AppArmor ``ix`` on the program and its script interpreter), so
after the payload's first ``execve`` nothing else can be executed:

- a script's interpreter (``#!/usr/bin/python3``) is executed by the kernel
  on the script's behalf;
- a dynamic ELF's loader (``PT_INTERP``, ``/lib64/ld-linux-x86-64.so.2``) is
  opened for execution by the kernel during the program's ``execve``
  (Landlock checks EXECUTE there; AppArmor does not mediate that open).
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

from sandbox.fs.ops import MountPlan
from sandbox.fs.resolve import Program, host_of_inside, inside_realpath

HEAD_SIZE = 4096
_ELF_MAGIC = b"\x7fELF"
_PT_INTERP = 3


def read_head(host_path: str, size: int = HEAD_SIZE) -> bytes:
    """The first ``size`` bytes of a regular file, or b"" (never through a final symlink)."""
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


def script_interpreter(head: bytes) -> str | None:
    """The ``#!`` interpreter as written (an inside path), or None."""
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return words[0].decode(errors="replace") if words else None


def elf_loader(head: bytes) -> str | None:
    """The ``PT_INTERP`` path of a 64- or 32-bit little-endian ELF, or None (static, not ELF,
    or the program headers lie beyond ``head``)."""
    if len(head) < 52 or not head.startswith(_ELF_MAGIC) or head[5] != 1:
        return None
    is64 = head[4] == 2
    try:
        if is64:
            (phoff,) = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        else:
            (phoff,) = struct.unpack_from("<I", head, 0x1C)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x2A)
        for i in range(phnum):
            off = phoff + i * phentsize
            (p_type,) = struct.unpack_from("<I", head, off)
            if p_type != _PT_INTERP:
                continue
            if is64:
                (p_offset,) = struct.unpack_from("<Q", head, off + 8)
                (p_filesz,) = struct.unpack_from("<Q", head, off + 32)
            else:
                (p_offset,) = struct.unpack_from("<I", head, off + 4)
                (p_filesz,) = struct.unpack_from("<I", head, off + 16)
            raw = head[p_offset : p_offset + p_filesz]
            if len(raw) != p_filesz or not raw.endswith(b"\0"):
                return None
            path = raw[:-1].decode(errors="replace")
            return path if path.startswith("/") and "\0" not in path else None
    except struct.error:
        return None
    return None


@dataclass(frozen=True, slots=True)
class ExecFiles:
    """The files executing the program opens for execution, as inside paths (resolved)."""

    program: str
    interpreter: str | None  # a script's #! interpreter
    loader: str | None  # the ELF loader of the program, or of its interpreter

    def landlock_files(self) -> tuple[str, ...]:
        """Files Landlock must let the payload execute: all three."""
        return tuple(p for p in (self.program, self.interpreter, self.loader) if p)


def exec_files(program: Program, mounts: MountPlan, head: bytes = b"") -> ExecFiles:
    """The program, its script interpreter and the ELF loader the kernel opens for them.

    ``head``: the program's first bytes when the caller has them (a staged
    file); otherwise they are read from its host path.
    """
    binds, lowers = mounts.binds, mounts.lowers
    real = inside_realpath(program.inside_path, binds, lowers) or program.inside_path
    if not head and program.host_path:
        head = read_head(os.path.realpath(program.host_path))
    interp = script_interpreter(head)
    loader = elf_loader(head)
    if interp is not None and interp.startswith("/"):
        walked = inside_realpath(interp, binds, lowers)
        host = host_of_inside(interp, binds, lowers)
        interp = walked or interp
        loader = elf_loader(read_head(host)) if host else None
    return ExecFiles(real, interp, loader)


__all__ = [
    "HEAD_SIZE",
    "ExecFiles",
    "elf_loader",
    "exec_files",
    "read_head",
    "script_interpreter",
]

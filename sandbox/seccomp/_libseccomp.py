"""Typed ctypes access to the few libseccomp calls pyseccomp does not bind well.

Runs in the supervisor (parent) only; needs no privilege. pyseccomp calls
``seccomp_syscall_resolve_name_arch`` without ``argtypes``, so an arch token
above ``INT_MAX`` (every 64-bit token) overflows ctypes' default ``int``.
We open our own handle on the library so our argument types never change
pyseccomp's function objects.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.cache
def _lib() -> ctypes.CDLL:
    path = ctypes.util.find_library("seccomp")
    if path is None:
        raise OSError("libseccomp not found (install libseccomp2)")
    lib = ctypes.CDLL(path)
    lib.seccomp_syscall_resolve_name_arch.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    lib.seccomp_syscall_resolve_name_arch.restype = ctypes.c_int
    lib.seccomp_syscall_resolve_num_arch.argtypes = (ctypes.c_uint32, ctypes.c_int)
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_version.argtypes = ()
    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    return lib


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.free.restype = None
    return libc


@functools.cache
def version() -> str:
    """libseccomp's run-time version, e.g. ``"2.5.4"`` (part of every artifact key)."""
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def resolve_name(scmp_arch: int, name: str) -> int:
    """``seccomp_syscall_resolve_name_arch``: the number, or -1 (``__NR_SCMP_ERROR``).

    Names that exist only on other arches resolve to libseccomp's negative
    pseudo-syscall numbers (e.g. ``socketcall`` on x86_64).
    """
    return int(_lib().seccomp_syscall_resolve_name_arch(scmp_arch, name.encode()))


def resolve_num(scmp_arch: int, nr: int) -> str | None:
    """``seccomp_syscall_resolve_num_arch``: the name, or None when unknown."""
    ptr = _lib().seccomp_syscall_resolve_num_arch(scmp_arch, nr)
    if not ptr:
        return None
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        _libc().free(ptr)

"""Escaping of overlayfs option values (``lowerdir=a:b``), after bwrap's
``strappend_escape_for_mount_options``.

Overlay splits ``lowerdir`` on ``:`` and, on kernels before 6.5 where fsconfig
strings are re-joined into one comma-separated option string, the whole
string on ``,``. A backslash escapes the next character in both parsers, so
escaping ``\\``, ``:`` and ``,`` is correct on every kernel we support.
"""

from __future__ import annotations

from collections.abc import Sequence

_SPECIAL = {"\\", ":", ","}


def escape(path: str) -> str:
    """Escape one path for use inside an overlay option value."""
    if "\0" in path:
        raise ValueError("path contains a NUL byte")
    return "".join("\\" + c if c in _SPECIAL else c for c in path)


def join_lowerdirs(paths: Sequence[str]) -> str:
    """``lowerdir`` value for layers given top first."""
    if not paths:
        raise ValueError("overlay needs at least one lower layer")
    return ":".join(escape(p) for p in paths)


def split_lowerdirs(value: str) -> list[str]:
    """Reference parser (what the kernel does): the inverse of :func:`join_lowerdirs`."""
    out: list[str] = []
    cur: list[str] = []
    it = iter(value)
    for c in it:
        if c == "\\":
            nxt = next(it, "")
            cur.append(nxt)
        elif c == ":":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    out.append("".join(cur))
    return out

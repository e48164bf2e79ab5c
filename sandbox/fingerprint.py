"""A fingerprint of source trees from their files' names, sizes and mtimes (bottom floor).

No file is read: a walk of stats, ~1 ms for the package. ``verify.version``
keys verified reports by it (an edited rule or group file makes them stale)
and the CLI's zygote is keyed by it (an edited source starts a new one).
Symbolic links to directories are followed (the package data under
``sandbox/_data`` links to the repository's trees in a checkout).
"""

from __future__ import annotations

import posix  # not os: the CLI's thin client imports this module before anything has os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os

try:  # the built-in module: hashlib would load OpenSSL (~2 ms of every CLI start)
    from _blake2 import blake2b
except ImportError:  # pragma: no cover - another interpreter
    from hashlib import blake2b

SUFFIXES = (".py", ".toml", ".tsv", ".txt", ".c", ".h")


def fingerprint(*bases: str | os.PathLike[str]) -> str:
    """16 hex digits over every source file below ``bases``."""
    h = blake2b(digest_size=8)
    for base in bases:
        top = posix.fspath(base)
        _walk(h, top, _relname(top))
    return h.hexdigest()


def _relname(top: str) -> str:
    """``os.path.relpath(top, os.path.dirname(top))``: the last component, or ``.``
    when ``top`` ends with a slash (its files are then named without a prefix)."""
    if top.endswith("/") or not top:
        return "."
    return top.rsplit("/", 1)[-1]


def _walk(h: blake2b, path: str, rel: str) -> None:
    """One directory's files (sorted), then its subdirectories (sorted), as ``os.walk``
    top-down with followed links would visit them: ~2x faster (one scandir, no
    relpath per file), the same digest."""
    with posix.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    lines = []
    dirs = []
    for e in entries:
        if e.is_dir():  # follows links, as os.walk(followlinks=True) classifies them
            if e.name != "__pycache__":
                dirs.append(e)
        elif e.name.endswith(SUFFIXES):
            st = e.stat()
            name = e.name if rel == "." else f"{rel}/{e.name}"
            lines.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n")
    h.update("".join(lines).encode())
    for d in dirs:
        _walk(h, d.path, d.name if rel == "." else f"{rel}/{d.name}")

"""A fingerprint of source trees from their files' names, sizes and mtimes (bottom floor).

No file is read: a walk of stats, ~1 ms for the package. ``verify.version``
keys verified reports by it (an edited rule or group file makes them stale)
and the CLI's zygote is keyed by it (an edited source starts a new one).
Symbolic links to directories are followed (the package data under
``sandbox/_data`` links to the repository's trees in a checkout).
"""

from __future__ import annotations

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
        for dirpath, dirnames, files in os.walk(base, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(SUFFIXES):
                    path = os.path.join(dirpath, name)
                    st = os.stat(path)
                    rel = os.path.relpath(path, os.path.dirname(os.fspath(base)))
                    h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()

"""How the native launcher is built and identified (stdlib only).

Loaded by path from ``setup.py`` at build time (the package's dependencies
are not there yet) and imported by :mod:`sandbox.launcher.native` at run
time: both compute the same build id from the C sources that ship with the
package, so a binary built from other sources (a stale checkout build, a
half-upgraded install) is refused with the fix, never run.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from pathlib import Path

SRC = Path(__file__).resolve().parent / "native"
BINARY_NAME = "sandbox-launcher"
CFLAGS = (
    "-O2",
    "-g",
    "-std=gnu11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-D_FORTIFY_SOURCE=2",
    "-fstack-protector-strong",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
)
SANITIZE = (
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=undefined",
)


def sources(src: Path = SRC) -> list[Path]:
    """The launcher's C files (the fuzz harness is built by its test only)."""
    return sorted(p for p in src.glob("*.c") if not p.name.startswith("fuzz"))


def build_id(src: Path = SRC) -> str:
    """Digest of the flags and of every source and header, 16 hex digits."""
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for p in sorted([*src.glob("*.c"), *src.glob("*.h")]):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def compile_launcher(out: Path, extra: tuple[str, ...] = (), src: Path = SRC) -> Path:
    """Build the executable at ``out`` with gcc (or ``$CC``); returns ``out``.

    Raises:
        subprocess.CalledProcessError: the compiler failed (its output is on stderr).
    """
    cc = shlex.split(os.environ.get("CC", "gcc"))
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*cc, *CFLAGS, *extra, f'-DSBX_BUILD_ID="{build_id(src)}"', "-o", str(out)]
    subprocess.run([*cmd, *map(str, sources(src))], check=True)
    return out

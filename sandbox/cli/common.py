"""Helpers shared by the verify-family subcommands (verify, explain, diff, seccomp).

Not imported by ``sandbox exec``: ``main`` imports a subcommand's module only
when that subcommand is named.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from sandbox.errors import SandboxError
from sandbox.policy.load import load_profile
from sandbox.policy.profile import LoadedProfile

# Exit statuses of the verify family: 0 clean, 1 findings (or differences),
# 2 bad input (unreadable file, invalid profile).
OK, FINDINGS, BAD_INPUT = 0, 1, 2


def die(message: str, status: int = BAD_INPUT) -> NoReturn:
    """One line on stderr, then exit."""
    print(f"sandbox: {message}", file=sys.stderr)
    sys.exit(status)


def load(name_or_path: str) -> LoadedProfile:
    """Load a profile or exit 2 with the loader's message (file:line: key: problem)."""
    try:
        return load_profile(name_or_path)
    except SandboxError as e:
        die(str(e))


def write_out(data: str | bytes, path: str | None) -> None:
    """To ``path`` (created 0644, replaced atomically) or to stdout."""
    raw = data.encode() if isinstance(data, str) else data
    if path is None or path == "-":
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(raw)
    os.replace(tmp, target)


def color() -> bool:
    """ANSI colours when stdout is a terminal and NO_COLOR is unset."""
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ

"""Where in a profile's text a key or a name is: ``file:line`` for error messages (pure).

Below ``load`` and ``names`` (and ``seccomp.groups``), which all point their
errors at a line of the file they read; one function, so none of them
drifts (issue 16: ``groups`` had a copy that did not strip comments, and
``names`` imported ``load`` for it while ``load`` imported ``names``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path


def strip_comment(line: str) -> str:
    """One TOML line without its ``#`` comment (a ``#`` inside a string stays)."""
    quote = ""
    escaped = False
    for i, c in enumerate(line):
        if quote == '"' and escaped:
            escaped = False
        elif quote == '"' and c == "\\":
            escaped = True
        elif quote and c == quote:
            quote = ""
        elif not quote and c in "\"'":
            quote = c
        elif not quote and c == "#":
            return line[:i]
    return line


def _lines(source: str) -> list[str] | None:
    try:
        return Path(source).read_text().splitlines()
    except (OSError, ValueError):  # ValueError: not text, or a NUL in the name
        return None


def locate(source: str, needle: str) -> str:
    """``source:line`` of the first line naming ``needle`` (quoted, or as a key), else ``source``.

    Comments are skipped, so a commented-out name never takes the line. For
    errors found after validation (an unknown capability or syscall name),
    where pydantic's error location is not available.
    """
    lines = _lines(source)
    if lines is None:
        return source
    pattern = re.compile(rf"""["']{re.escape(needle)}["']|^\s*{re.escape(needle)}\s*=""")
    for i, line in enumerate(lines, 1):
        if pattern.search(strip_comment(line)):
            return f"{source}:{i}"
    return source


def line_of_key(path: Path, loc: Sequence[str | int]) -> int | None:
    """Best-effort line number of the key a validation error points at."""
    lines = _lines(str(path))
    keys = [str(k) for k in loc if isinstance(k, str)]
    if lines is None or not keys:
        return None
    section, key = ".".join(keys[:-1]), keys[-1]
    current = ""
    for i, raw in enumerate(lines, 1):
        line = strip_comment(raw)
        m = re.match(r"^\s*\[\[?\s*([A-Za-z0-9_.]+)\s*\]\]?", line)
        if m:
            current = m.group(1)
            if current == ".".join(keys):
                return i
            continue
        if re.match(rf"^\s*{re.escape(key)}\s*=", line) and (current == section or not section):
            return i
    return None


__all__ = ["line_of_key", "locate", "strip_comment"]

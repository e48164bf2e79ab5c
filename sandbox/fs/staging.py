"""Files placed in /box before a run: what a caller may ask for, and the plan's entries (pure).

A caller stages a file as bytes, as a host path, or as a :class:`File` /
:class:`Symlink` that says more (a mode, a link target). The acquire stage
turns each one into a :class:`BoxFile` of the mount plan; the launcher
(``sandbox.fs.mounts.prepare_detached``) writes them into the run's upper
layer. Rules, each checked here or where named:

- a name is a relative path inside /box, any script (``нет.java``), no
  ``..``, no empty or ``.`` component, no control character;
- a host path is opened without following any symlink that a payload could
  have planted (``sandbox.fs.hostpath``); a symlink there is staged *as a
  symlink* inside /box, never followed on the host (issue 13 item 2);
- modes are permission bits only (no set-id, no sticky): a host file's are
  kept, bytes get 0644 unless given;
- files and directories first, symlinks last, and no staged name lies under
  another one, so nothing the launcher writes passes through a symlink.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

from sandbox.errors import PolicyError

NAME_MAX = 255  # bytes of one component (NAME_MAX)
PATH_MAX = 4095  # bytes of a name or a link target
DEFAULT_MODE = 0o644


@dataclass(frozen=True, slots=True)
class File:
    """A file for /box: ``content`` is bytes or a host path; ``mode`` its permission bits.

    Without a mode, bytes get 0644 and a host file keeps its own bits (an
    executable stays executable).
    """

    content: bytes | str | os.PathLike[str]
    mode: int | None = None


@dataclass(frozen=True, slots=True)
class Symlink:
    """A symlink for /box, pointing at ``target`` (resolved inside the sandbox, never here)."""

    target: str


FileContent = bytes | str | os.PathLike[str] | File | Symlink


@dataclass(frozen=True, slots=True)
class BoxFile:
    """One entry of the plan: copy host file ``source`` to /box/``name``, or make a symlink.

    ``source`` is a path the launcher opens with openat2 and no symlink
    followed (a file of the run's private staging directory for bytes).
    """

    name: str
    source: str = ""
    mode: int = DEFAULT_MODE
    link: str | None = None


def check_name(name: str) -> str:
    """A file name under /box: relative, any script, no '..', '.', empty part or control char.

    Raises:
        PolicyError: naming the bad name and the rule it breaks.
    """
    raw = name.encode("utf-8", "surrogateescape")
    parts = name.split("/")
    bad = (
        not name
        or name.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(unicodedata.category(c) == "Cc" for c in name)
        or any(0xD800 <= ord(c) <= 0xDFFF for c in name)  # not encodable as UTF-8
        or len(raw) > PATH_MAX
        or any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts)
    )
    if bad:
        raise PolicyError(
            f"file name {name!r} must be a relative path inside /box (no '..', '.', "
            "empty part, control character; parts of at most 255 bytes)"
        )
    return name


def check_mode(name: str, mode: int) -> int:
    """Permission bits only: set-id and sticky bits are never staged.

    Raises:
        PolicyError: for anything outside 0o777.
    """
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
        raise PolicyError(
            f"mode for /box/{name}: {mode!r} is not a permission mode (0 to 0o777, "
            "no set-id or sticky bit)"
        )
    return mode


def check_link_target(name: str, target: str) -> str:
    """A symlink target: non-empty, no NUL, at most PATH_MAX bytes.

    Raises:
        PolicyError: naming the link.
    """
    if (
        not isinstance(target, str)
        or not target
        or "\0" in target
        or len(target.encode("utf-8", "surrogateescape")) > PATH_MAX
    ):
        raise PolicyError(f"symlink /box/{name}: target {target!r} is empty, too long or has NUL")
    return target


def order(entries: list[BoxFile]) -> tuple[BoxFile, ...]:
    """Files first, then symlinks; refuses a name that lies under another staged name.

    Raises:
        PolicyError: two names where one is a directory of the other.
    """
    names = {e.name for e in entries}
    for e in entries:
        parts = e.name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in names:
                raise PolicyError(
                    f"file /box/{e.name} lies under /box/{parent}, which is staged itself"
                )
    return tuple(sorted(entries, key=lambda e: (e.link is not None, e.name.count("/"), e.name)))


def parents(name: str) -> list[str]:
    """The directories a name needs under /box, outermost first (``a/b/c`` -> a, a/b)."""
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]

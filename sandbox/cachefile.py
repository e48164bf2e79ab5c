"""Entries of the private on-disk caches (seccomp artifacts, verified reports, profiles).

A cached entry lets a run skip work that decides what is enforced, so only
the effective user may have written it: the directory must be theirs, a real
directory, mode 0700; an entry is a regular file of theirs, opened without
following symlinks, carrying the sha256 of its body, its key and its format.
Anything that does not check out is a miss (logged), never an error: the
caller then does the work again. Writes are atomic (a temporary file renamed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_TRUSTED: set[str] = set()


def digest(body: Any) -> str:
    """sha256 of a body's canonical JSON."""
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def private_dir(path: Path, *, create: bool = True) -> str | None:
    """None when ``path`` is (made, if ``create``) a private directory of ours, else why not."""
    if str(path) in _TRUSTED:
        return None
    if create:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            return f"cannot create {path}: {e.strerror}"
    try:
        st = os.lstat(path)
    except OSError as e:
        return f"{path}: {e.strerror}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory (or is a symlink); it must be a real mode 0700 directory"
    if st.st_uid != os.geteuid():
        return (
            f"{path} is owned by uid {st.st_uid}, not {os.geteuid()}; "
            f"fix it with: chown {os.geteuid()} {path}"
        )
    if st.st_mode & 0o077:
        return (
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}, not mode 0700; "
            f"fix it with: chmod 700 {path}"
        )
    _TRUSTED.add(str(path))
    return None


def read(path: Path, key: str, fmt: int) -> dict[str, Any] | None:
    """The body of the entry at ``path`` when it is trustworthy and for ``key``, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("cache: cannot open %s: %s", path, e.strerror)
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            log.warning("cache: %s has an unsafe owner or mode; ignored", path)
            return None
        raw = b""
        while chunk := os.read(fd, 1 << 16):
            raw += chunk
    finally:
        os.close(fd)
    try:
        entry = json.loads(raw)
        body = entry["body"]
        if entry["sha256"] != digest(body) or body["key"] != key or body["format"] != fmt:
            raise ValueError("content hash, key or format mismatch")
    except (ValueError, KeyError, TypeError) as e:
        log.warning("cache: entry %s rejected (%s)", path, e)
        return None
    return body  # type: ignore[no-any-return]


def write(path: Path, key: str, fmt: int, body: dict[str, Any]) -> None:
    """Store ``body`` for ``key`` at ``path`` atomically.

    Raises:
        OSError: when the directory cannot be written.
    """
    body = {**body, "key": key, "format": fmt}
    data = json.dumps({"sha256": digest(body), "body": body}, sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def prune(directory: Path, keep: int) -> None:
    """Drop the oldest entries beyond ``keep``.

    Another process may prune the same directory at once: an entry that is
    already gone is what both wanted, never a warning.
    """

    def mtime(e: os.DirEntry[str]) -> int:
        try:
            return e.stat(follow_symlinks=False).st_mtime_ns
        except FileNotFoundError:
            return -1

    try:
        entries = [e for e in os.scandir(directory) if e.name.endswith(".json")]
        if len(entries) <= keep:
            return
        entries.sort(key=mtime)
        for e in entries[: len(entries) - keep]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
    except FileNotFoundError:
        return  # the directory itself went: nothing left to prune
    except OSError as e:
        log.warning("cache: pruning %s: %s", directory, e.strerror)

"""On-disk cache of compiled seccomp artifacts, keyed by ``SeccompArtifact.key``.

Runs in the supervisor. The directory must belong to the effective user
(root for a root supervisor, the user for a rootless one) with no group or
other access (0700), and must not be a symlink: the cached bytes become a
filter that another process will trust, so nobody else may write them.

Each entry ``<key>.json`` carries its own sha256 over its canonical content;
an entry is used only when that hash, the key and a kernel-equivalent check
of the BPF all hold. Anything else (truncation, a stray edit, another
builder's format) is logged and rebuilt, never trusted and never fatal.
Entries are written to a temporary file and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from sandbox.errors import ArtifactError
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.bpf import Program

log = logging.getLogger(__name__)

ENTRY_FORMAT = 1


def _digest(body: dict[str, Any]) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def check_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if missing; refuse one others can write or read.

    Raises:
        ArtifactError: naming the problem and the fix.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        raise ArtifactError("seccomp", f"cache dir {path}: mkdir: {e.strerror}") from e
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ArtifactError("seccomp", f"cache dir {path} is not a directory (or is a symlink)")
    if st.st_uid != os.geteuid():
        raise ArtifactError(
            "seccomp", f"cache dir {path} is owned by uid {st.st_uid}, not {os.geteuid()}"
        )
    if st.st_mode & 0o077:
        raise ArtifactError(
            "seccomp",
            f"cache dir {path} has mode {stat.S_IMODE(st.st_mode):04o}; run chmod 700 {path}",
        )


class DiskCache:
    """Artifacts stored as verified JSON files in a private directory."""

    def __init__(self, directory: Path) -> None:
        """Check (or create) the directory.

        Raises:
            ArtifactError: when the directory is not private to us.
        """
        check_private_dir(directory)
        self.directory = directory

    def _path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ArtifactError("seccomp", f"bad artifact key {key!r}")
        return self.directory / f"{key}.json"

    def get(self, key: str) -> SeccompArtifact | None:
        """The cached artifact for ``key``, or None (missing or not trustworthy)."""
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("seccomp cache: cannot open %s: %s; rebuilding", path, e.strerror)
            return None
        try:
            st = os.fstat(fd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
                log.warning("seccomp cache: %s has unsafe owner or mode; rebuilding", path)
                return None
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read()
        finally:
            os.close(fd)
        try:
            entry = json.loads(raw)
            body = entry["body"]
            if entry["sha256"] != _digest(body) or body["key"] != key:
                raise ValueError("content hash or key mismatch")
            if body["format"] != ENTRY_FORMAT:
                raise ValueError(f"entry format {body['format']}")
            bpf = bytes.fromhex(body["bpf"])
            Program.from_bytes(bpf)
            return SeccompArtifact(
                bpf=bpf,
                pfc=body["pfc"],
                arch=body["arch"],
                default_action=body["default_action"],
                key=key,
                notify=bool(body["notify"]),
                allowed=frozenset(body["allowed"]),
            )
        except (ValueError, KeyError, TypeError, ArtifactError) as e:
            log.warning("seccomp cache: entry %s rejected (%s); rebuilding", path, e)
            return None

    def put(self, art: SeccompArtifact) -> None:
        """Store ``art`` atomically; a failure only logs (the cache is an optimisation)."""
        body = {
            "format": ENTRY_FORMAT,
            "key": art.key,
            "arch": art.arch,
            "default_action": art.default_action,
            "notify": art.notify,
            "allowed": sorted(art.allowed),
            "pfc": art.pfc,
            "bpf": art.bpf.hex(),
        }
        data = json.dumps({"sha256": _digest(body), "body": body}, sort_keys=True).encode()
        path = self._path(art.key)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:
            log.warning("seccomp cache: cannot write %s: %s", path, e.strerror)

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

import logging
from pathlib import Path

from sandbox import cachefile
from sandbox.errors import ArtifactError
from sandbox.seccomp.artifact import SeccompArtifact
from sandbox.seccomp.bpf import Program

log = logging.getLogger(__name__)

ENTRY_FORMAT = 1


def check_private_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if missing; refuse one others can write or read.

    Raises:
        ArtifactError: naming the problem and the fix.
    """
    problem = cachefile.private_dir(path)
    if problem is not None:
        raise ArtifactError("seccomp", f"cache dir {problem}")


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
        body = cachefile.read(path, key, ENTRY_FORMAT)
        if body is None:
            return None
        try:
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
            "arch": art.arch,
            "default_action": art.default_action,
            "notify": art.notify,
            "allowed": sorted(art.allowed),
            "pfc": art.pfc,
            "bpf": art.bpf.hex(),
        }
        path = self._path(art.key)
        try:
            cachefile.write(path, art.key, ENTRY_FORMAT, body)
        except OSError as e:
            log.warning("seccomp cache: cannot write %s: %s", path, e.strerror)

"""The CLI's profile cache: a validated policy kept as JSON, rebuilt without pydantic.

``sandbox exec`` pays for pydantic (~80 ms of imports and model building)
only the first time a profile (with the same command-line overrides) is
used. The entry holds the resolved policy's data, its digest and the
sha256 of every file of the ``extends`` chain; a hit re-reads those files
and compares their hashes, so an edited profile is a miss. Entries live in
``<state_dir>/profiles`` (root: ``/var/lib/sandbox``), which must be the
effective user's own 0700 directory: a cached policy is trusted as
validated, so nobody else may write one. Each entry carries a hash of its
content; anything that does not check out is a miss.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from sandbox import __version__, cachefile
from sandbox.errors import SandboxError
from sandbox.policy.profile import LoadedProfile, dump, find_profile

log = logging.getLogger(__name__)
FORMAT = 1
SUBDIR = "profiles"


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _schema_id() -> str:
    # A changed model is a miss: the snapshot types are generated from it, and its
    # validators (limit ranges) decide what a cached policy was validated against.
    here = Path(__file__)
    return _sha256(str(here.with_name("frozen.py"))) + _sha256(str(here.with_name("model.py")))


def _key(path: Path, overrides: dict[str, Any] | None) -> str:
    body = [
        FORMAT,
        __version__,
        _schema_id(),
        str(path.resolve()),
        json.dumps(overrides or {}, sort_keys=True),
    ]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()


def _read(entry: Path, key: str) -> LoadedProfile | None:
    body = cachefile.read(entry, key, FORMAT)
    if body is None:
        return None
    try:
        for path, digest in body["chain"]:
            if _sha256(path) != digest:
                return None
        from sandbox import codec
        from sandbox.policy import frozen

        policy = codec.from_data(frozen.Policy, body["policy"])
        return LoadedProfile(
            policy=policy,
            source=body["source"],
            chain=tuple(p for p, _ in body["chain"]),
            known_digest=body["digest"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(entry: Path, key: str, prof: LoadedProfile) -> None:
    body = {
        "source": prof.source,
        "digest": prof.digest,
        "policy": dump(prof.policy),
        "chain": [[p, _sha256(p)] for p in prof.chain],
    }
    cachefile.write(entry, key, FORMAT, body)


def load(
    name_or_path: str, overrides: dict[str, Any] | None = None, *, cache_dir: Path | None = None
) -> LoadedProfile:
    """Load a profile, from the cache when nothing it depends on changed.

    Raises:
        PolicyError: as ``sandbox.policy.load.load_profile`` does, on a miss.
    """
    path = find_profile(name_or_path)
    if cache_dir is None:
        from sandbox.paths import state_dir

        cache_dir = state_dir() / SUBDIR
    problem = cachefile.private_dir(cache_dir)
    usable = problem is None
    if not usable:
        log.debug("profile cache: %s", problem)
    key = _key(path, overrides)
    remembered = _MEMO.get(key)
    if remembered is not None and all(_sha256(p) == d for p, d in remembered[0]):
        return remembered[1]  # this process read it before and no file of its chain changed
    entry = cache_dir / f"{key}.json"
    if usable:
        hit = _read(entry, key)
        if hit is not None:
            _remember(key, hit)
            return hit
    from sandbox.policy.load import load_profile

    prof = load_profile(name_or_path, overrides)
    _remember(key, prof)
    if usable:
        try:
            _write(entry, key, prof)
        except (OSError, SandboxError) as e:
            log.debug("profile cache: cannot write %s: %s", entry, e)
    return prof


# In-process layer (the CLI's zygote warms it for its forks): key -> (chain hashes, profile).
_MEMO: dict[str, tuple[tuple[tuple[str, str], ...], LoadedProfile]] = {}


def _remember(key: str, prof: LoadedProfile) -> None:
    if len(_MEMO) >= 64:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = (tuple((p, _sha256(p)) for p in prof.chain), prof)

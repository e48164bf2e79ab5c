"""A loaded profile, its digest and where profiles live: no pydantic here.

Pydantic validates at the trust boundary (``sandbox.policy.load``); what comes
out is a :class:`LoadedProfile` whose ``policy`` is frozen data
(``sandbox.policy.frozen``, generated from the models), the one policy type
of the run path, verification and every concern. The CLI's profile cache
rebuilds the same type without importing pydantic.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import PolicyError

if TYPE_CHECKING:
    from sandbox.policy.frozen import Policy

# Package data (pyproject's package-data): in a source tree, sandbox/_data/
# links to the top-level profiles/; an installed wheel carries the files.
PROFILES_DIR = (Path(__file__).resolve().parents[1] / "_data" / "profiles").resolve()

def dump(obj: Any) -> Any:
    """JSON-ready data of a policy (or one of its tables), pydantic or snapshot."""
    return obj.model_dump(mode="json")


def policy_digest(policy: Any) -> str:
    """sha256 over the canonical JSON of a resolved policy (identical for both forms)."""
    blob = json.dumps(dump(policy), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class LoadedProfile:
    """A resolved policy with where it came from; the digest is computed once."""

    policy: Policy  # the validated policy as frozen data (pydantic stays in policy/)
    source: str
    chain: tuple[str, ...]
    known_digest: str | None = field(default=None, repr=False, compare=False)

    @property
    def digest(self) -> str:
        """Hash of the resolved policy, command-line overrides included."""
        if self.known_digest is None:
            object.__setattr__(self, "known_digest", policy_digest(self.policy))
        assert self.known_digest is not None
        return self.known_digest


# ``strict``, ``learned/sh``: a name (never starting with '.' or '/', no '..', no
# ``.toml``); anything else is a path.
_SHIPPED_NAME = re.compile(
    r"(?!.*\.toml$)[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)?"
)


def find_profile(name_or_path: str) -> Path:
    """Map ``strict`` (or ``learned/sh``) to ``profiles/<name>.toml``; anything else, a value
    ending in ``.toml`` or starting with ``.`` or ``/``, is a path.

    Raises:
        PolicyError: when no such profile exists.
    """
    if _SHIPPED_NAME.fullmatch(name_or_path):
        # A shipped profile's name, also under a subdirectory: ``learned/sh``.
        path = PROFILES_DIR / f"{name_or_path}.toml"
    elif "/" in name_or_path or name_or_path.endswith(".toml"):
        # As given: an extends path was already put beside its profile (load.parent_ref).
        path = Path(name_or_path)
    else:
        raise PolicyError(f"bad profile name {name_or_path!r}")
    try:
        found = path.is_file()
    except OSError as e:
        raise PolicyError(f"profile {name_or_path!r}: {path}: {e.strerror}") from e
    if not found:
        raise PolicyError(f"profile {name_or_path!r} not found (looked for {path})")
    return path

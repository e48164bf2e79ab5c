"""Behaviour shared by the pydantic models and their pydantic-free snapshots.

``sandbox.policy.frozen`` (generated) mirrors every model as a frozen
dataclass deriving from :class:`Snapshot`, which offers the three pydantic
methods the run path uses, with the same results: ``model_dump(mode="json")``
gives the same data (so digests agree), ``model_dump_json`` a canonical JSON
(an in-process cache key), ``model_copy(update=...)`` a changed copy.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


def _data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _data(v) for k, v in value.items()}
    return value


class Snapshot:
    """Mixin of the generated snapshot dataclasses (see the module docstring)."""

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        """Plain data, as pydantic's ``model_dump(mode="json")`` gives it."""
        return _data(self)  # type: ignore[no-any-return]

    def model_dump_json(self) -> str:
        """Canonical JSON of the data."""
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Any:
        """A copy with some fields replaced."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


def env_resolved(env: Any) -> dict[str, str]:
    """The environment the payload gets: PATH, HOME, LANG, then the extra variables."""
    return {"PATH": env.path, "HOME": env.home, "LANG": env.lang, **env.vars}

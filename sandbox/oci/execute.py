"""``exec``: another process in a running container (placeholder until the join path lands)."""

from __future__ import annotations

from typing import Any

from sandbox.oci.state import Container, StateError


def execute(c: Container, opts: dict[str, Any], argv: list[str]) -> int:
    """Refused for now, with the reason (fail closed: no process joins without every layer).

    Raises:
        StateError: always, naming what is missing.
    """
    raise StateError(
        f"exec into {c.id!r}: not supported yet (the join path that applies every layer "
        "to a joining process is not implemented)"
    )

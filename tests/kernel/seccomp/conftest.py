"""Fixtures for the seccomp kernel tests (helpers live in seccomp_kernel.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from seccomp_kernel import UNAVAILABLE, build_probes


@pytest.fixture(scope="session")
def probes() -> dict[str, Path]:
    """The compiled probe programs, by name."""
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    return build_probes()

"""Fixtures for the seccomp kernel tests (helpers live in seccomp_kernel.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sbxtest import build_probes
from seccomp_kernel import UNAVAILABLE


@pytest.fixture(scope="session")
def probes() -> dict[str, Path]:
    """The compiled probe programs, by name."""
    if UNAVAILABLE is not None:
        pytest.skip(UNAVAILABLE)
    return build_probes()

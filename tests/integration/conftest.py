"""Fixtures for full ``sandbox exec`` runs on the real kernel (root needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sbxtest import build_probes, host_snapshot


@pytest.fixture(scope="session")
def probes() -> dict[str, Path]:
    """Compiled probe programs (tests/probes/*.c)."""
    return build_probes()


@pytest.fixture
def no_leftovers():
    """Assert a test leaves no mount, run lock, cgroup leaf or sandbox process behind."""
    before = host_snapshot()
    yield
    deadline = time.monotonic() + 10
    while True:
        after = host_snapshot()
        if after == before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after == before

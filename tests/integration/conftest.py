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
        left = leftovers(before, host_snapshot())
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left


def leftovers(before: dict, after: dict) -> dict:
    """What ``after`` has that ``before`` had not (things that went away are fine)."""
    out = {k: sorted(set(after[k]) - set(before[k])) for k in ("runs", "leaves", "procs")}
    if after["mounts"] > before["mounts"]:
        out["mounts"] = after["mounts"] - before["mounts"]
    return {k: v for k, v in out.items() if v}

"""Test-wide fixtures (probes, no_leftovers) and the ``requires`` marker (runc-style skips).

``@pytest.mark.requires("root", "cgroup_v1", "landlock>=3")`` skips with the
reason when this host lacks a feature, so "ran no test" cannot hide: the
summary lists every skip with its reason.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from sbxtest import FEATURES, ROOT, build_probes, feature_missing, host_snapshot, leaf_run_id

# The developer tools (tools/: generators of committed files) are importable by tests,
# which check that what is committed is what they generate.
sys.path.insert(0, str(ROOT / "tools"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*features): skip unless the host has them")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires"):
        for feature in marker.args:
            reason = feature_missing(feature)
            if reason:
                pytest.skip(f"requires {feature}: {reason}")


def pytest_report_header(config: pytest.Config) -> list[str]:
    return ["sandbox host features: " + ", ".join(f"{k}={v}" for k, v in FEATURES.items())]


@pytest.fixture(scope="session")
def probes() -> dict[str, Path]:
    """Compiled probe programs (tests/probes/*.c), for integration and escape tests."""
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
    """What ``after`` has that ``before`` had not (things that went away are fine).

    The leaves a live Sandbox of this process keeps ready for its next runs
    (its leaf pool, with their run locks) are its own, not a run's leftovers.
    """
    from sandbox.runner.pool import pooled_run_ids

    pooled = pooled_run_ids()
    out = {
        k: sorted(e for e in set(after[k]) - set(before[k]) if not _is_pooled(e, pooled))
        for k in ("runs", "leaves", "procs")
    }
    if after["mounts"] > before["mounts"]:
        out["mounts"] = after["mounts"] - before["mounts"]
    return {k: v for k, v in out.items() if v}


def _is_pooled(entry: str, pooled: set[str]) -> bool:
    """A lock file ``<run_id>.lock`` or a leaf ``.../sbx-<run_id>`` of a pooled entry."""
    return leaf_run_id(entry) in pooled

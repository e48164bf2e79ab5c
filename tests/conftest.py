"""Test-wide fixtures and the ``requires`` marker (skips driven by probes, runc-style).

``@pytest.mark.requires("root", "cgroup_v1", "landlock>=3")`` skips with the
reason when this host lacks a feature, so "ran no test" cannot hide: the
summary lists every skip with its reason.
"""

from __future__ import annotations

import pytest
from sbxtest import FEATURES, feature_missing


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

"""One order, two implementations: the native launcher's step tables equal steps.py's lists.

The C tables (``native/steps.c``) are printed by ``sandbox-launcher
--list-steps``; the Python reference's tuples are the readable spec. Any
step added, removed or moved on one side only fails here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sandbox.launcher import native, steps, wire

PHASES = {
    "outer": steps.OUTER_STEPS,
    "init": steps.INIT_STEPS,
    "payload": steps.PAYLOAD_STEPS,
    "handover": steps.HANDOVER_STEPS,
    "collect": steps.COLLECT_STEPS,
}


@pytest.fixture(scope="module")
def c_tables() -> dict[str, list[str]]:
    native.check_binary()
    out = subprocess.run(
        [str(native.BINARY), "--list-steps"], capture_output=True, text=True, check=True
    ).stdout
    tables: dict[str, list[str]] = {}
    for line in out.splitlines():
        phase, name = line.split()
        tables.setdefault(phase, []).append(name)
    return tables


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_step_lists_are_the_same(c_tables, phase):
    python = [f.__name__.removeprefix("step_") for f in PHASES[phase]]
    assert c_tables[phase] == python


def test_no_phase_on_one_side_only(c_tables):
    assert set(c_tables) == set(PHASES)


def test_versions_agree_with_the_header():
    header = (Path(native.__file__).parent / "native" / "sbx.h").read_text()
    plan = int(re.search(r"#define SBX_PLAN_VERSION (\d+)", header).group(1))
    proto = int(re.search(r"#define SBX_PROTOCOL_VERSION (\d+)", header).group(1))
    assert (plan, proto) == (wire.PLAN_VERSION, wire.PROTOCOL_VERSION)
    for name in ("MAX_MSG", "MAX_STR", "MAX_ARGV", "MAX_ENV"):
        m = re.search(rf"#define SBX_{name} \(?(\d+)u?( << (\d+))?", header)
        value = int(m.group(1)) << int(m.group(3) or 0)
        assert value == getattr(wire, name), name


def test_binary_reports_the_build_id_of_the_shipped_sources():
    out = subprocess.run(
        [str(native.BINARY), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [
        "plan",
        str(wire.PLAN_VERSION),
        "protocol",
        str(wire.PROTOCOL_VERSION),
        "build",
        native.expected_build_id(),
    ]

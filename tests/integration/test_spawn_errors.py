"""Runs that never start say so: a one-line message, the right status, a SPAWN_ERROR record.

Issue 13 item 6 (a launcher that ended before execve without a record was read as a
good start: exit 125, no message, RUNTIME_ERROR) and item 8 (a missing program's
record said INTERNAL_ERROR; it is SPAWN_ERROR with status 127).
"""

from __future__ import annotations

import pytest
from sbxtest import run_cli

pytestmark = [pytest.mark.requires("root"), pytest.mark.usefixtures("no_leftovers")]


def test_a_limit_the_launcher_cannot_set_is_a_spawn_error_with_a_message(tmp_path):
    # Above fs.nr_open: setrlimit refuses it in the launcher (whether or not the
    # profile's validation refuses it first, the run must not read as started).
    r = run_cli(
        ["exec", "--profile", "strict", "--open-files", "99999999999", "--", "/bin/true"],
        tmp=tmp_path,
    )
    assert r.rc == 125, (r.rc, r.err)
    lines = [x for x in r.err.splitlines() if "WARNING" not in x]
    assert len(lines) == 1 and lines[0].startswith("sandbox: "), r.err  # one line, saying why
    if r.record is not None:
        assert r.record["verdict"] == "SPAWN_ERROR", r.record
        assert r.record["message"]


def test_a_missing_program_is_a_spawn_error_with_status_127(tmp_path):
    r = run_cli(["exec", "--profile", "strict", "--", "/nonexistent/prog"], tmp=tmp_path)
    assert r.rc == 127, (r.rc, r.err)
    assert "not found" in r.err
    assert r.record is not None
    assert r.record["verdict"] == "SPAWN_ERROR" and r.record["status"] == 127

"""Staged files never outlive their run (issue 13 item 5).

A library process SIGKILLed mid-run: its fork server (the watchdog) kills the
run and removes what it registered, the staged files before the run lock. And
when both died, the next supervisor's sweep removes staged files whose lock is
free or already gone.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time

import pytest
from sbxtest import host_snapshot

from sandbox.runner import state

pytestmark = pytest.mark.requires("root")
RUNS = "/run/sandbox/runs"


@pytest.mark.usefixtures("no_leftovers")
def test_sigkilled_library_leaves_no_staged_files(tmp_path):
    before = set(host_snapshot()["runs"])
    code = (
        "from sandbox import Sandbox\n"
        "with Sandbox('strict') as sb:\n"
        "    sb.run(['/bin/sleep', '60'], files={'in.txt': b'staged data'})\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(n.endswith(".files") for n in set(host_snapshot()["runs"]) - before):
            break
        time.sleep(0.02)
    else:
        p.kill()
        pytest.fail("the run never staged its file")
    time.sleep(0.3)
    p.kill()
    p.wait()
    # no_leftovers waits up to 10 s for the watchdog, then compares /run/sandbox/runs.


def test_sweep_removes_staged_files_whose_lock_is_gone_or_free(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    removed: list[str] = []
    for run_id in ("gone", "free", "alive"):
        (runs / f"{run_id}.files").mkdir()
    (runs / "free.lock").touch()
    alive = os.open(runs / "alive.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(alive, fcntl.LOCK_EX)
    try:
        swept = state.sweep_orphans(".files", removed.append, runtime=tmp_path)
    finally:
        os.close(alive)
    assert sorted(swept) == sorted(removed) == ["free", "gone"]

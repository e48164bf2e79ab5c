"""Leaves made ahead (runner.pool) on the real kernel, through both launchers.

A run takes a pooled leaf made for exactly its cgroup request (its limits in
the kernel's files while it runs), its accounting starts from zero, and
nothing of the pool outlives its owner: SIGKILL (the launcher's watchdog
removes what the pool held), SIGKILL of the launcher too (the next sweep,
the locks being free), or an exit without close (the pool's atexit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sbxtest import ROOT, host_snapshot, leaf_run_id

from sandbox import Sandbox
from sandbox.runner.result import Verdict
from sandbox.runner.watch import POLL_INTERVAL

pytestmark = pytest.mark.requires("root", "gcc")
TICK = 0.01  # one scheduler tick at HZ=100


@pytest.fixture(params=["native", "python"])
def launcher(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def judge(probes) -> str:
    return str(probes["judge"])


def _ready(sb: Sandbox) -> set[str]:
    pool = sb._supervisor.pool
    assert pool is not None, "a library Sandbox keeps a leaf pool"
    assert pool.wait_filled(10)
    return {e.run_id for e in pool.entries()}


def _left(run_ids: set[str]) -> list[str]:
    """Leaves and run files of these runs still on the host."""
    snap = host_snapshot()
    return [p for p in snap["leaves"] if leaf_run_id(p) in run_ids] + [
        e for e in snap["runs"] if e.split(".")[0] in run_ids
    ]


def _limit(run_id: str, v1: str, v2: str) -> str:
    for leaf in host_snapshot()["leaves"]:
        if leaf.endswith(f"-{run_id}") and "/sbx-" in leaf:
            for name in (v1, v2):
                path = os.path.join(leaf, name)
                if os.path.exists(path):
                    return Path(path).read_text().strip()
    raise AssertionError(f"no {v1} / {v2} in the leaf of {run_id}")


@pytest.mark.usefixtures("no_leftovers")
def test_each_run_takes_a_leaf_made_for_its_own_request(launcher):
    small, big = {"memory": "48M", "processes": 21}, {"memory": "80M", "processes": 23}
    with Sandbox("strict", launcher=launcher) as sb:
        for lim in (small, big):  # the first run of each request makes its own leaf
            assert sb.run(["/bin/true"], limits=lim).verdict is Verdict.OK
        for lim, mib in ((small, 48), (big, 80), (small, 48), (big, 80)):
            ready = _ready(sb)
            h = sb.start(["/bin/sleep", "30"], limits=lim)
            h.started_or_done(30)
            (taken,) = ready - {e.run_id for e in sb._supervisor.pool.entries()}
            assert _limit(taken, "memory.limit_in_bytes", "memory.max") == str(mib << 20)
            assert _limit(taken, "pids.max", "pids.max") == str(lim["processes"])
            h.cancel()
            r = h.wait(30)
            assert r.run_id == taken  # the run was the pooled entry's
            assert r.enforcement["cgroups"].state == "full", r.enforcement["cgroups"]
        assert sb._supervisor.pool.hits >= 4


def test_accounting_through_a_pooled_leaf_is_the_payloads_own(launcher, judge):
    with Sandbox("strict", launcher=launcher) as sb:
        sb.run([judge, "alloc", "1"])
        sb.run([judge, "spin"], limits={"cpu_time": 0.3})
        ready = _ready(sb)
        r = sb.run(["/bin/true"])
        assert r.run_id in ready
        assert r.usage.memory_peak is not None and r.usage.memory_peak < 4 << 20  # from zero
        ready = _ready(sb)
        r = sb.run([judge, "alloc", "100"])
        assert r.verdict is Verdict.OK and r.run_id in ready
        assert 100 << 20 <= r.usage.memory_peak <= 102 << 20, r.usage  # +2% at most
        ready = _ready(sb)
        r = sb.run([judge, "spin"], limits={"cpu_time": 0.3})
        assert r.verdict is Verdict.TIME_LIMIT and r.run_id in ready
        assert 0.3 <= r.usage.cpu_time <= 0.3 + POLL_INTERVAL + TICK, r.usage


def _owner(tmp_path: Path, launcher: str, tail: str) -> tuple[subprocess.Popen, dict]:
    """A process with a Sandbox whose pool is filled; (it, {server, pooled run ids})."""
    out = tmp_path / "state.json"
    code = textwrap.dedent(f"""
        import json, logging, threading
        logging.disable(logging.WARNING)
        from sandbox import Sandbox
        sb = Sandbox("strict", launcher={launcher!r})
        assert sb.run(["/bin/true"]).verdict.value == "OK"
        pool = sb._supervisor.pool
        assert pool.wait_filled(10)
        ids = [e.run_id for e in pool.entries()]
        open({str(out)!r}, "w").write(json.dumps({{"server": sb._client.server_pid, "ids": ids}}))
    """) + textwrap.dedent(tail)
    p = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    deadline = time.monotonic() + 60
    while not out.exists() or not out.read_text():
        assert p.poll() is None or out.exists(), "the owner died before its pool was filled"
        assert time.monotonic() < deadline, "the pool was never filled"
        time.sleep(0.05)
    return p, json.loads(out.read_text())


def _gone(pids: list[int], run_ids: set[str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _left(run_ids) and not any(os.path.exists(f"/proc/{p}") for p in pids):
            return
        time.sleep(0.05)
    assert not _left(run_ids)
    assert not [p for p in pids if os.path.exists(f"/proc/{p}")]


def test_sigkill_of_the_owner_leaves_no_pooled_leaf(launcher, tmp_path):
    p, st = _owner(tmp_path, launcher, "threading.Event().wait()\n")
    ids = set(st["ids"])
    try:
        assert ids and len(_left(ids)) >= len(ids), "the pooled leaves and locks exist"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    _gone([st["server"]], ids)  # the launcher's watchdog removed what the pool held


def test_pooled_leaves_of_an_owner_killed_with_its_launcher_are_swept(launcher, tmp_path):
    from sandbox.host import probe
    from sandbox.runner.acquire import Acquirer

    p, st = _owner(tmp_path, launcher, "threading.Event().wait()\n")
    ids = set(st["ids"])
    os.kill(st["server"], signal.SIGKILL)  # no watchdog any more
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{st['server']}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _left(ids), "with both killed, the leaves wait for a sweep"
    Acquirer(probe()).sweep()  # their locks are free: swept like any dead run's leaf
    assert _left(ids) == []


def test_an_owner_that_exits_without_close_leaves_no_pooled_leaf(launcher, tmp_path):
    p, st = _owner(tmp_path, launcher, "")
    assert p.wait(60) == 0
    _gone([st["server"]], set(st["ids"]))

"""Leaves made ahead (runner.pool) on cgroup v2 in the kvm-run guest.

One library process (the launcher the stage runs with: native, or Python with
SANDBOX_LAUNCHER=python) fills its pool, runs a payload in a pooled leaf whose
memory.max and pids.max are its own request's, then is SIGKILLed: the
launcher's watchdog removes the pooled leaves and their run locks.
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

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1"
    or not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    or os.geteuid() != 0,
    reason="runs in the kvm-run guest (cgroup v2) as root only",
)

OWNER = textwrap.dedent("""
    import json, logging, os, sys, threading, time
    logging.disable(logging.WARNING)
    from sandbox import Sandbox

    def leaf(run_id):
        for d, subs, _ in os.walk("/sys/fs/cgroup"):
            for s in subs:
                if s.startswith("sbx-") and s.endswith("-" + run_id):
                    return os.path.join(d, s)

    def read(path):
        return open(path).read().strip()

    out = {}
    sb = Sandbox("strict")
    lim = {"memory": "48M", "processes": 21}
    out["first"] = sb.run(["/bin/true"], limits=lim).verdict.value
    pool = sb._supervisor.pool
    assert pool.wait_filled(60)
    ready = {e.run_id for e in pool.entries()}
    h = sb.start(["/bin/sleep", "60"], limits=lim)
    h.started_or_done(120)
    (taken,) = ready - {e.run_id for e in pool.entries()}
    d = leaf(taken)
    out["memory.max"], out["pids.max"] = read(d + "/memory.max"), read(d + "/pids.max")
    deadline = time.monotonic() + 60  # the payload joins just before its execve
    while not read(d + "/cgroup.procs") and time.monotonic() < deadline:
        time.sleep(0.05)
    out["procs"] = read(d + "/cgroup.procs").split()
    h.cancel()
    r = h.wait(120)
    out["taken"], out["run_id"], out["verdict"] = taken, r.run_id, r.verdict.value
    assert pool.wait_filled(60)
    out["pooled"] = [e.run_id for e in pool.entries()]
    out["server"] = sb._client.server_pid
    print(json.dumps(out), flush=True)
    threading.Event().wait()
""")


def _left(run_ids: set[str]) -> list[str]:
    left = [e for e in os.listdir("/run/sandbox/runs") if e.split(".")[0] in run_ids]
    for d, subs, _ in os.walk("/sys/fs/cgroup"):
        left += [os.path.join(d, s) for s in subs if s.startswith("sbx-") and s[4:] in run_ids]
    return left


def test_pooled_leaf_limits_on_v2_and_nothing_left_after_sigkill():
    p = subprocess.Popen([sys.executable, "-c", OWNER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line, "the owner ended before reporting"
        out = json.loads(line)
        pooled = set(out["pooled"])
        assert pooled and _left(pooled), "the pooled leaves and locks exist"
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert out["first"] == "OK"
    assert (out["memory.max"], out["pids.max"]) == (str(48 << 20), "21")
    assert out["procs"], "the payload ran in the pooled leaf"
    assert out["run_id"] == out["taken"] and out["verdict"] == "CANCELLED", out
    deadline = time.monotonic() + 60
    while (_left(pooled) or os.path.exists(f"/proc/{out['server']}")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert _left(pooled) == []
    assert not os.path.exists(f"/proc/{out['server']}")

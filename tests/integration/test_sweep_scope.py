"""A supervisor's sweep never takes another runtime directory's live runs (real cgroups).

Each supervisor finds a run's lock in its own runtime directory; a leaf whose
lock it cannot see there was once taken for stale: a second judge (or a test)
with another ``SANDBOX_RUNTIME_DIR`` killed every live run of the first at
its start. Leaves now carry their runtime directory's tag, and a sweep looks
only at its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from sbxtest import ROOT

from sandbox import Sandbox
from sandbox.runner.result import Verdict

# Another supervisor: it sweeps at its start, then runs one payload.
OTHER = (
    "import logging; logging.disable(logging.WARNING)\n"
    "from sandbox import Sandbox\n"
    "with Sandbox('strict') as sb: print(sb.run(['/bin/true']).verdict.name)\n"
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (cgroup leaves)")


def test_a_supervisor_with_another_runtime_dir_leaves_live_runs_alone(tmp_path) -> None:
    results = []
    with Sandbox("strict") as sb:
        t = threading.Thread(target=lambda: results.append(sb.run(["/bin/sleep", "2"])))
        t.start()
        try:
            env = dict(os.environ, SANDBOX_RUNTIME_DIR=str(tmp_path / "other"))
            for _ in range(3):  # each new supervisor sweeps at its start
                p = subprocess.run(
                    [sys.executable, "-c", OTHER],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert p.stdout.strip() == "OK", p.stderr
        finally:
            t.join()
    (r,) = results
    assert r.verdict is Verdict.OK, (r.verdict, r.signal, r.message)


def test_a_private_runtime_dir_at_the_same_path_leaves_live_runs_alone() -> None:
    """A supervisor in its own mount namespace with its own /run/sandbox (a judge in a
    container, a unit with a private /run): the same path, other locks. The tag is the
    directory's own (a file in it), not a hash of its path (attack2 #3)."""
    from sandbox.paths import runtime_dir

    where = str(runtime_dir())
    script = f'mount -t tmpfs -o mode=0700 tmpfs {where} && exec "$0" -c "$1"'
    results = []
    with Sandbox("strict") as sb:
        t = threading.Thread(target=lambda: results.append(sb.run(["/bin/sleep", "2"])))
        t.start()
        try:
            p = subprocess.run(
                [
                    "unshare",
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    script,
                    sys.executable,
                    OTHER,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert p.stdout.strip() == "OK", p.stderr
        finally:
            t.join()
    (r,) = results
    assert r.verdict is Verdict.OK, (r.verdict, r.signal, r.message)

"""classify(): a pure function of what the supervisor observed (STYLE B6.8), table-tested.

What the payload controls (its exit status, any signal it sends itself) may
only ever give OK or RUNTIME_ERROR: a violation comes from the supervisor's
record, a time limit from the CPU figure, a memory limit from the cgroup's
OOM count (issue 13 item 4).
"""

from __future__ import annotations

import signal

import pytest

from sandbox.runner.result import Verdict
from sandbox.runner.verdict import Observation, classify

V = Verdict


def exited(code: int) -> int:
    return code << 8


def killed(sig: int) -> int:
    return int(sig)


@pytest.mark.parametrize(
    ("obs", "want"),
    [
        (Observation(status=exited(0)), V.OK),
        (Observation(status=exited(3)), V.RUNTIME_ERROR),
        (Observation(status=None), V.INTERNAL_ERROR),
        (Observation(spawn_failed=True, status=exited(0)), V.SPAWN_ERROR),
        (Observation(status=killed(9), killed_for="violation"), V.SECURITY_VIOLATION),
        (Observation(status=killed(9), violation=True), V.SECURITY_VIOLATION),
        (Observation(status=killed(9), killed_for="time"), V.TIME_LIMIT),
        (Observation(status=killed(9), killed_for="wall"), V.WALL_TIME_LIMIT),
        (Observation(status=killed(9), killed_for="output"), V.OUTPUT_LIMIT),
        (Observation(status=killed(9), oom_killed=True), V.MEMORY_LIMIT),
        # the kernel's SIGXCPU: past RLIMIT_CPU, so past the CPU limit
        (Observation(status=killed(signal.SIGXCPU), cpu_time=12.0, cpu_limit=10.0), V.TIME_LIMIT),
        (Observation(status=exited(0), cpu_time=10.0, cpu_limit=10.0), V.TIME_LIMIT),
        (Observation(status=killed(signal.SIGXFSZ), file_size_limit=1 << 20), V.OUTPUT_LIMIT),
        # a violation outranks every limit, a kill reason outranks the exit status
        (Observation(status=exited(0), violation=True, oom_killed=True), V.SECURITY_VIOLATION),
        (Observation(status=exited(0), killed_for="wall"), V.WALL_TIME_LIMIT),
    ],
)
def test_classify(obs, want):
    assert classify(obs) is want


@pytest.mark.parametrize(
    "sig", [signal.SIGSYS, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGKILL, signal.SIGSEGV]
)
def test_a_signal_the_payload_sends_itself_is_a_runtime_error(sig):
    """kill(getpid(), SIG) with no record, no CPU over the limit, no file size limit."""
    obs = Observation(status=killed(sig), cpu_time=0.01, cpu_limit=10.0)
    assert classify(obs) is V.RUNTIME_ERROR

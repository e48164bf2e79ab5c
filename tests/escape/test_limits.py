"""Resource attacks: a fork bomb against the process limit.

strict allows 64 processes, enforced twice: the cgroup leaf's pids.max and
RLIMIT_NPROC (per uid in the run's user namespace; each run has its own
host uid). The bomb forks up to 150 sleeping children and reports how many
it got; it "succeeds" when nothing bounded it (all 150), which keeps the
all-off half harmless.
"""

from __future__ import annotations

import pytest
from escape_kit import E, attack, judge, matrix

pytestmark = pytest.mark.requires("root", "gcc")

LIMIT, BOMB = 64, 150


@matrix("cgroups", "rlimit_nproc")
def test_fork_bomb_is_bounded(probes, tmp_path, ablate):
    """Stopped by the cgroup's pids.max alone and by RLIMIT_NPROC alone (fork: EAGAIN).

    rlimit_nproc is a test-only knob, not a layer of the record.
    """
    r = attack(probes["escape"], ["fork-bomb", str(BOMB)], ablate, tmp_path)
    made = int(r.out.split()[0])
    if judge(r, ablate, {"cgroups": E.EAGAIN, "rlimit_nproc": E.EAGAIN}):
        assert made == BOMB
    else:
        assert 0 < made < LIMIT

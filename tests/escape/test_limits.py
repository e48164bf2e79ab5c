"""Resource attacks: a fork bomb against the process limit.

strict allows 64 processes, enforced twice: the cgroup leaf's pids.max and
RLIMIT_NPROC (per uid in the run's user namespace; each run has its own
host uid). The bomb forks up to 150 sleeping children and reports how many
it got; it "succeeds" when nothing bounded it (all 150), which keeps the
all-off half harmless.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from escape_kit import E, attack, judge, matrix
from sbxtest import ROOT

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


# Issue 13 item 6: a hostile (or careless) limit is the attacker. Each of these
# ran without a limit, spun the supervisor, or ended in a traceback on b79e3bf.
BAD_LIMITS = [
    (["--wall-time", "nan"], "limits.wall_time"),
    (["--wall-time", "1e400"], "limits.wall_time"),
    (["--cpu-time", "nan"], "limits.cpu_time"),
    (["--cpu-time", "inf"], "limits.cpu_time"),
    (["--disk", "0"], "filesystem.disk"),
    (["--disk-inodes", "0"], "filesystem.disk_inodes"),
    (["--memory", "100000000000000000000000"], "limits.memory"),
    (["--open-files", "99999999999"], "limits.open_files"),
    (["--processes", "many"], "limits.processes"),
]


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(("options", "key"), BAD_LIMITS, ids=[" ".join(o) for o, _ in BAD_LIMITS])
def test_a_bad_limit_is_one_line_and_125(tmp_path, options, key):
    r = attack("/bin/true", [], frozenset(), tmp_path, options=options)
    assert r.rc == 125, (r.rc, r.err)
    assert r.err.count("\n") == 1 and r.err.startswith("sandbox: command line: "), r.err
    assert key in r.err


@pytest.mark.usefixtures("no_leftovers")
def test_a_limit_in_a_profile_is_checked_too(tmp_path):
    prof = tmp_path / "huge.toml"
    prof.write_text('extends = "strict"\n[limits]\ncpu_time = 1e309\n')
    r = attack("/bin/true", [], frozenset(), tmp_path, options=["--profile", str(prof)])
    assert r.rc == 125 and r.err.count("\n") == 1, r.err
    assert f"{prof}:3: limits.cpu_time" in r.err


@pytest.mark.usefixtures("no_leftovers")
def test_a_limit_the_host_refuses_is_a_spawn_error_not_a_good_start(tmp_path):
    """Within the kernel's range but above this host's fs.nr_open: setrlimit fails in
    the launcher. That used to end the child without a word on the errpipe, whose EOF
    read as a good execve: exit 125, no message, verdict RUNTIME_ERROR."""
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    # Outside strict's lineage, verify only warns about a limit that large (SBX160).
    prof = tmp_path / "wide.toml"
    text = (ROOT / "profiles" / "strict.toml").read_text()
    prof.write_text(text.replace("open_files = 64", f"open_files = {nr_open + 1}"))
    r = attack("/bin/true", [], frozenset(), tmp_path, options=["--profile", str(prof)])
    assert r.rc == 125, (r.rc, r.err)
    lines = [line for line in r.err.splitlines() if "WARNING" not in line]
    assert len(lines) == 1 and lines[0].startswith("sandbox: rlimits: "), r.err
    assert r.record is not None and r.record["verdict"] == "SPAWN_ERROR", r.record

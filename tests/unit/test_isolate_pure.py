"""The isolate front end's pure parts: its command line, directory rules, meta file."""

from __future__ import annotations

import pytest

from sandbox.isolate.main import limits
from sandbox.isolate.options import parse
from sandbox.isolate.rules import environment, mounts, parse_rule, rule_list
from sandbox.runner.meta import outcome


def test_options_as_judges_write_them():
    o = parse(
        [
            "--cg",
            "-s",
            "-b",
            "7",
            "-M",
            "/m",
            "-t",
            "5",
            "-x",
            "1",
            "-w",
            "10",
            "-k",
            "64000",
            "-p60",
            "--cg-timing",
            "--cg-mem=128000",
            "-f",
            "1024",
            "-E",
            "HOME=/tmp",
            "-d",
            "/etc:noexec",
            "--run",
            "--",
            "/bin/bash",
            "run.sh",
        ]
    )
    assert (o.mode, o.box_id, o.cg, o.silent, o.meta) == ("run", 7, True, True, "/m")
    assert (o.time, o.extra_time, o.wall_time, o.stack, o.processes) == (5, 1, 10, 64000, 60)
    assert (o.cg_mem, o.fsize, o.dirs, o.command) == (
        128000,
        1024,
        ["/etc:noexec"],
        ["/bin/bash", "run.sh"],
    )
    assert parse(["--processes", "--run", "--", "x"]).processes is None
    assert parse(["--run", "--", "x"]).processes == 1  # isolate's default


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--init", "--run"],
        ["--cg-mem=5", "--run", "--", "x"],
        ["--run"],
        ["-b", "-1", "--init"],
        ["-t", "nan", "--run", "--", "x"],
        ["--init", "extra"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(argv)
    assert e.value.code == 2


def test_dir_rules_grammar():
    assert parse_rule("/etc:noexec").outside == "/etc"
    r = parse_rule("dev/shm:tmp")
    assert (r.inside, r.outside, "rw" in r.flags) == ("dev/shm", "./tmp/dev:shm", True)
    assert parse_rule("tmp=").outside is None
    for bad in ("a/../b", "x=relative", "x:bogus", "x:fs", "x=sysfs2:fs", "x=y:fs:tmp"):
        with pytest.raises(ValueError):
            parse_rule(bad)


def test_a_rule_replaces_the_default_in_place_and_D_drops_defaults(tmp_path):
    rules = rule_list([f"/tmp={tmp_path}:rw"], no_defaults=False)
    tmp = [r for r in rules if r.inside == "tmp"]
    assert len(tmp) == 1 and tmp[0].outside == str(tmp_path) and not tmp[0].default
    (tmp_path / "1" / "box").mkdir(parents=True)
    m = mounts(rules, str(tmp_path / "1"))
    assert (str(tmp_path), "/tmp", True, True) in m.binds
    assert (str(tmp_path / "1" / "box"), "/box", True, True) in m.binds
    assert not any(t == "/usr" for _s, t, _w, _x in m.binds)  # the image shows /usr
    assert [r.inside for r in rule_list([], no_defaults=True)] == []


def test_environment_rules_after_full_env():
    caller = {"A": "1", "B": "2", "C": "3"}
    assert environment(["B=9", "C="], True, caller) == {
        "A": "1",
        "B": "9",
        "LIBC_FATAL_STDERR_": "1",
    }
    assert environment(["A", "X"], False, caller) == {"A": "1", "LIBC_FATAL_STDERR_": "1"}


def test_limits_in_kib_and_the_unlimited_stack():
    o = parse(
        [
            "--cg",
            "--cg-mem=1024",
            "-m",
            "2048",
            "-f",
            "4",
            "-t",
            "1",
            "-x",
            "1.5",
            "--run",
            "--",
            "x",
        ]
    )
    lim = limits(o)
    assert lim == {
        "stack": "unlimited",
        "cpu_time": 1.5,
        "memory": 1 << 20,
        "address_space": 2 << 20,
        "processes": 1,
        "file_size": 4096,
        "open_files": 1024,
    }


@pytest.mark.parametrize(
    ("record", "status", "message", "code"),
    [
        ({"verdict": "OK", "exit_code": 0}, None, "", 0),
        ({"verdict": "TIME_LIMIT", "signal": 9}, "TO", "Time limit exceeded", 1),
        ({"verdict": "WALL_TIME_LIMIT", "signal": 9}, "TO", "Time limit exceeded (wall clock)", 1),
        (
            {"verdict": "MEMORY_LIMIT", "signal": 9, "oom_killed": True},
            "SG",
            "Caught fatal signal 9",
            1,
        ),
        ({"verdict": "RUNTIME_ERROR", "exit_code": 3}, "RE", "Exited with error status 3", 1),
        ({"verdict": "SPAWN_ERROR", "message": "execve: no"}, "XX", "execve: no", 2),
        ({"verdict": "OK", "exit_code": 0, "cpu_time": 1.2}, "TO", "Time limit exceeded", 1),
    ],
)
def test_status_precedence_and_exit_codes(record, status, message, code):
    out = outcome(record, time_limit=1.0)
    assert (out.status, out.message, out.exit_code) == (status, message, code)
    keys = dict(out.lines)
    if status == "TO":
        assert "exitsig" not in keys and "exitcode" not in keys
    if record.get("oom_killed"):
        assert keys["cg-oom-killed"] == 1 and keys["exitsig"] == 9


def test_meta_units(tmp_path):
    out = outcome(
        {
            "verdict": "OK",
            "exit_code": 0,
            "cpu_time": 0.0123,
            "wall_time": 1.5,
            "memory_peak": 3 << 20,
        }
    )
    keys = dict(out.lines)
    assert (keys["time"], keys["time-wall"], keys["cg-mem"], keys["max-rss"]) == (
        "0.012",
        "1.500",
        3072,
        3072,
    )

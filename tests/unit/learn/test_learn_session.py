"""learn() end to end on a scripted program: learn, generate, minimise, verify; bad input."""

from __future__ import annotations

from learnfakes import FakeAnswer, FakeTask, ScriptedProgram

from sandbox.host import HostFacts
from sandbox.learn import LearnOptions, Unit, learn, report, units_of

AT_FDCWD = 0xFFFFFF9C
HOST = HostFacts(landlock_abi=7)


def program(task: FakeTask, extra: list[tuple[str, tuple[int, ...]]] | None = None):
    for path in ("/usr/bin/prog", "/etc/hostname", "/etc/ld.so.cache"):
        task.files[path] = "file"
    prog, host, cache = (
        task.string(p) for p in ("/usr/bin/prog", "/etc/hostname", "/etc/ld.so.cache")
    )

    def script(stdin: bytes | None) -> list[tuple[str, tuple[int, ...]]]:
        calls = [
            ("execve", (prog,)),
            ("openat", (AT_FDCWD, cache, 0)),
            ("openat", (AT_FDCWD, host, 0)),
            ("clone3", ()),
            ("exit_group", (0,)),
        ]
        if stdin == b"more":
            calls.insert(1, ("getpid", ()))
        return calls + (extra or [])

    def needed(stdin: bytes | None) -> list[tuple[str, str]]:
        return [("exec", "/usr/bin/prog"), ("read", "/etc/hostname")]

    return ScriptedProgram(script, needed, output=lambda s: b"host\n" + (s or b""))


def run(prog: ScriptedProgram, task: FakeTask, **kw: object):
    opts = LearnOptions(argv=("/usr/bin/prog",), name="prog", **kw)  # type: ignore[arg-type]
    return learn(opts, prog, HOST, task=task, answer=FakeAnswer())


def test_learn_minimise_verify():
    task = FakeTask()
    prog = program(task)
    r = run(prog, task, inputs=(("a", b""), ("b", b"more")), minimize=True)
    assert r.ok and r.identical and r.complete
    granted, removed = units_of(r.text)
    assert Unit("read", "/etc/hostname") in granted
    assert Unit("exec", "/usr/bin/prog") in granted
    assert Unit("syscall", "getpid") in granted  # only input 2 needs it, and it is kept
    # The scripted program needs no open mode: minimising drops openat's rule too.
    assert removed == {Unit("read", "/etc/ld.so.cache"), Unit("value", "openat", 0)}
    assert "clone3" in r.text and "# Verified: every input (2)" in r.text
    assert r.minimize_runs is not None and r.runs == 2 + r.minimize_runs + 2
    assert report(r)["removed"] == ["read /etc/ld.so.cache", "value openat 0x0"]
    assert prog.runs[:2] == ["learn", "learn"] and set(prog.runs[2:]) == {"enforce"}


def test_without_minimize_everything_seen_is_kept():
    task = FakeTask()
    r = run(program(task), task)
    granted, removed = units_of(r.text)
    assert Unit("read", "/etc/ld.so.cache") in granted and not removed
    assert r.ok


def test_a_program_that_never_ends_gives_an_incomplete_profile():
    task = FakeTask()
    prog = program(task)
    prog.endless = True
    r = run(prog, task, minimize=True)
    assert not r.complete and not r.ok and r.final == [] and r.minimize_runs is None
    assert "# INCOMPLETE: run 1 did not finish (WALL_TIME_LIMIT)" in r.text
    assert prog.runs == ["learn"]
    assert Unit("read", "/etc/hostname") in units_of(r.text)[0]  # the partial record


def test_a_forbidden_operation_is_refused_listed_and_stays_denied():
    task = FakeTask()
    r = run(program(task, [("ptrace", (16,))]), task)
    assert r.reference[0].verdict == "SECURITY_VIOLATION"
    assert "ptrace: denied by the base" in r.text
    assert Unit("syscall", "ptrace") not in units_of(r.text)[0]
    assert r.identical  # killed the same way under the learned profile


def test_inferred_capability_is_granted_after_a_second_round_with_the_flag():
    task = FakeTask()
    r = run(program(task, [("chown", (task.string("/box/f"), 0, 0))]), task, allow_dangerous=True)
    assert r.rounds == 2 and r.granted_caps.keys() == {"CAP_CHOWN"}
    assert Unit("cap", "CAP_CHOWN") in units_of(r.text)[0]
    assert "inferred from EPERM: chown(uid=0)" in r.text
    assert [f.id for f in r.findings if f.id == "SBX104"] == ["SBX104"]  # verify flags it


def test_no_capability_is_granted_without_the_flag():
    """Issue 13 item 14: learn granted CAP_CHOWN, CAP_MKNOD, CAP_SETUID and
    CAP_SYS_TTY_CONFIG to whatever the learned program tried, and verify passed it."""
    task = FakeTask()
    prog = program(task, [("chown", (task.string("/box/f"), 0, 0)), ("setuid", (0,))])
    r = run(prog, task)
    assert r.rounds == 1 and not r.granted_caps and r.ok
    assert not [u for u in units_of(r.text)[0] if u.kind == "cap"]
    assert "CAP_CHOWN: needed by chown(uid=0): another owner (run 1); not granted" in r.text
    assert "CAP_SETUID: needed by setuid(0): ids not held (run 1); not granted" in r.text


def test_a_flagged_syscall_is_answered_eperm_and_never_granted():
    """sync, io_setup, memfd_secret, fanotify_init, vhangup: beyond strict, and flagged
    by verify (SBX123). Without the flag the program gets EPERM while learning and
    under the profile, which keeps that answer; with it, they are learned (and flagged)."""
    names = ["sync", "io_setup", "memfd_secret", "fanotify_init", "vhangup"]
    task = FakeTask()
    prog = program(task, [(n, ()) for n in names])
    r = run(prog, task)
    assert r.ok and r.identical
    granted, _ = units_of(r.text)
    assert not {Unit("syscall", n) for n in names} & granted
    assert 'sync = "EPERM"' in r.text and "withheld: verify flags it (SBX123)" in r.text
    assert not [f for f in r.findings if f.id == "SBX123"]
    task = FakeTask()
    r = run(program(task, [(n, ()) for n in names]), task, allow_dangerous=True)
    assert {Unit("syscall", n) for n in names} <= units_of(r.text)[0]
    assert {f.subject for f in r.findings if f.id == "SBX123"} == set(names)


def test_a_dangerous_capability_is_never_granted():
    task = FakeTask()
    r = run(program(task, [("sethostname", (0, 0))]), task)  # strict does not mention it
    assert r.rounds == 1 and not r.granted_caps
    assert "CAP_SYS_ADMIN" in r.text and "never granted from an inference" in r.text


def test_wall_time_bounds_every_run_but_not_the_profile():
    task = FakeTask()
    prog = program(task)
    r = run(prog, task, minimize=True, wall_time=2.0)
    assert set(prog.walls) == {2.0} and len(prog.walls) == r.runs
    assert "wall_time" not in r.text  # the profile keeps the base's limit


def test_a_bad_wall_time_is_a_policy_error():
    """Issue 13 item 6, for learn's --wall-time: a traceback on b79e3bf."""
    import math

    import pytest

    from sandbox.errors import PolicyError

    for bad in (math.nan, math.inf, 0.0, -1.0):
        task = FakeTask()
        with pytest.raises(PolicyError, match=r"^command line: limits\.wall_time: "):
            run(program(task), task, wall_time=bad)

"""Multi-stage attacks on the host paths the caller names (issue 13 item 2, issue 15 item 6).

A judge keeps a work directory between runs and binds it writable: run 1's
payload may replace anything in it by a symlink (or a directory by a symlink
to another tree). Run 2's caller then names paths in it: files to stage, the
program to copy, stdio and record files. The supervisor and the launcher
(root on the host) must never follow what the payload planted: a symlink as
the last component is staged as a symlink inside /box, anywhere else it
refuses the path with a one-line error. No layer of the sandbox stops these
(the host-side opens happen outside it): the rule is the open itself, so
there is no ablation half.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sbxtest import run_cli

from sandbox import File, Sandbox, Symlink, Verdict
from sandbox.errors import PolicyError, ProgramNotFound

pytestmark = [pytest.mark.requires("root"), pytest.mark.usefixtures("no_leftovers")]
SECRET = "root-only host secret 51c2"


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A root-only secret (0600 in a 0700 dir) and a work dir bound writable in run 1."""
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    secret = vault / "secret"
    secret.write_text(SECRET + "\n")
    os.chmod(secret, 0o600)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "result.txt").write_text("fine\n")
    (work / "result.txt").write_text("fine\n")
    os.chmod(tmp_path, 0o755)
    for d in (work, work / "out"):
        os.chmod(d, 0o777)  # the run's uid writes here (issue 15 item 11)
    profile = tmp_path / "stage1.toml"
    profile.write_text(
        'extends = "strict"\n[filesystem]\n'
        f'binds = [{{ source = "{work}", target = "/work", writable = true }}]\n'
    )
    return {"secret": secret, "vault": vault, "work": work, "profile": profile}


def _run1(world: dict[str, Path], script: str) -> None:
    """Stage 1: the payload plants what it likes in the shared work directory."""
    with Sandbox(str(world["profile"])) as sb:
        r = sb.run(["/bin/sh", "-c", script])
    assert r.verdict is Verdict.OK, (r.message, r.stderr)


def test_staged_file_swapped_for_a_symlink_is_staged_as_that_symlink(world):
    _run1(world, f"rm /work/result.txt; ln -s {world['secret']} /work/result.txt")
    assert os.path.islink(world["work"] / "result.txt")  # the plant worked
    with Sandbox("strict") as sb:
        r = sb.run(
            ["/bin/sh", "-c", "readlink result.txt; cat result.txt"],
            files={"result.txt": str(world["work"] / "result.txt")},
        )
    assert SECRET not in (r.stdout or b"").decode()
    assert r.stdout == f"{world['secret']}\n".encode()  # a link to nothing inside
    assert r.verdict is Verdict.RUNTIME_ERROR  # cat: no such file


def test_staged_file_under_a_directory_swapped_for_a_symlink_is_refused(world):
    _run1(world, f"rm -r /work/out; ln -s {world['vault']} /work/out")
    with Sandbox("strict") as sb, pytest.raises(PolicyError, match="symlink"):
        sb.run(["/bin/cat", "secret"], files={"secret": str(world["work"] / "out" / "secret")})


def test_program_swapped_for_a_symlink_is_not_copied(world):
    _run1(world, f"rm /work/result.txt; ln -s {world['secret']} /work/result.txt")
    with Sandbox("strict") as sb, pytest.raises((PolicyError, ProgramNotFound), match="symlink"):
        sb.run([str(world["work"] / "result.txt")])


def test_cli_output_and_record_never_follow_a_planted_symlink(world, tmp_path):
    """--stdout, --stderr and --meta are written by root: a planted link must not aim them."""
    victim = world["vault"] / "victim"
    victim.write_text("intact\n")
    os.chmod(victim, 0o600)
    _run1(world, f"ln -s {victim} /work/o.txt; ln -s {victim} /work/m.json")
    for opt in ("--stdout", "--stderr", "--meta"):
        target = "m.json" if opt == "--meta" else "o.txt"
        path = str(world["work"] / target)
        r = run_cli(
            ["exec", opt, path, "--profile", "strict", "--", "/bin/echo", "x"],
            tmp=tmp_path,
            meta=False,
        )
        assert r.rc == 125 and "symlink" in r.err, (opt, r.rc, r.err)
        assert victim.read_text() == "intact\n", opt


def test_cli_stdin_never_follows_a_planted_symlink(world, tmp_path):
    _run1(world, f"ln -s {world['secret']} /work/in.txt")
    r = run_cli(
        ["exec", "--stdin", str(world["work"] / "in.txt"), "--profile", "strict", "--", "/bin/cat"],
        tmp=tmp_path,
        meta=False,
    )
    assert r.rc == 125 and "symlink" in r.err
    assert SECRET not in r.out


def test_library_output_path_never_follows_a_planted_symlink(world):
    victim = world["vault"] / "victim"
    victim.write_text("intact\n")
    _run1(world, f"ln -s {victim} /work/out.txt")
    with Sandbox("strict") as sb, pytest.raises(PolicyError, match="symlink"):
        sb.run(["/bin/echo", "clobbered"], stdout=str(world["work"] / "out.txt"))
    assert victim.read_text() == "intact\n"


def test_names_under_a_staged_symlink_are_refused(tmp_path):
    """A link staged as /box/d -> /etc, then /box/d/x: the launcher (root on the host)
    would write through the link into the host's /etc."""
    with Sandbox("strict") as sb, pytest.raises(PolicyError, match="lies under"):
        sb.run(["/bin/true"], files={"d": Symlink("/etc"), "d/sandbox-escape": b"x"})
    assert not os.path.exists("/etc/sandbox-escape")


def test_executables_symlinks_and_names_in_any_script(tmp_path):
    """Issue 15 item 6: a checker with its mode, a symlink, a source named after its class."""
    host = tmp_path / "checker.sh"
    host.write_text("#!/bin/sh\necho checked\n")
    os.chmod(host, 0o750)
    with Sandbox("strict") as sb:
        r = sb.run(
            [
                "/bin/sh",
                "-c",
                "./checker; ./gen; stat -c '%a %U' checker gen нет.java; readlink cur; cat cur",
            ],
            files={
                "checker": str(host),  # mode kept
                "gen": File(b"#!/bin/sh\necho generated\n", mode=0o755),  # mode given
                "нет.java": b"class X {}\n",
                "cur": Symlink("нет.java"),
            },
            collect=["нет.java"],
        )
    assert r.verdict is Verdict.OK, (r.message, r.stderr)
    assert (
        r.stdout
        == (
            "checked\ngenerated\n750 sandbox\n755 sandbox\n644 sandbox\nнет.java\nclass X {}\n"
        ).encode()
    )
    assert r.files == {"нет.java": b"class X {}\n"}


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o1777, -1])
def test_set_id_and_sticky_modes_are_refused(mode):
    with Sandbox("strict") as sb, pytest.raises(PolicyError, match="permission mode"):
        sb.run(["/bin/true"], files={"x": File(b"", mode=mode)})


@pytest.mark.parametrize("bad", ["a\nb", "a/./b", "a//b", "a/", "x\0y", "é" * 200])
def test_bad_names_in_any_script_are_refused(bad):
    with Sandbox("strict") as sb, pytest.raises(PolicyError, match="relative path inside /box"):
        sb.run(["/bin/true"], files={bad: b"x"})


def test_a_staged_script_given_as_file_runs_as_the_program_under_judge():
    """The judge profile lets the program and its #! interpreter execute only: the
    interpreter is read from the staged File's bytes (a path would be read by the
    same no-symlink rule as the staging itself)."""
    with Sandbox("judge") as sb:
        r = sb.run(["./prog"], files={"prog": File(b"#!/bin/sh\necho staged ok\n", mode=0o755)})
    assert r.verdict is Verdict.OK, (r.message, r.stderr)
    assert r.stdout == b"staged ok\n"


@pytest.mark.requires("root")
@pytest.mark.parametrize("opt", ["--meta", "--stdout", "--collect"])
def test_another_users_fifo_or_file_in_a_shared_dir_is_never_written(tmp_path, opt):
    """In a sticky /tmp-like directory another uid plants a FIFO (which would block the
    caller) or a 0666 file of its own (which would get the run's data) where a root judge
    writes: one line, never blocked, never written (second attack round)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    os.mkfifo(shared / "fifo", 0o666)
    (shared / "theirs").write_bytes(b"")
    for name in ("fifo", "theirs"):
        os.chown(shared / name, 5001, 5001)
        os.chmod(shared / name, 0o666)
    for name in ("fifo", "theirs"):
        target = str(shared / name)
        extra = [opt, f"out.txt={target}"] if opt == "--collect" else [opt, target]
        r = run_cli(
            ["exec", "-q", *extra, "--", "/bin/sh", "-c", "echo x > /box/out.txt"],
            tmp=tmp_path,
            timeout=60,
        )
        assert "shared sticky directory" in r.err, (name, r.err)
        assert r.rc == (0 if opt == "--collect" else 125), (name, r.rc, r.err)
    assert (shared / "theirs").read_bytes() == b""

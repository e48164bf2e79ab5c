"""The isolate front end as judges drive isolate (issue 15).

isolate's contract, from its manual and from the judges that depend on it:
a finished run exits 0 or 1 and only a sandbox error exits 2; a non-OK run has
a status with XX > TO > SG > RE; the box directory lives from --init to
--cleanup. The last tests replay the command lines CMS's IsolateSandbox and
Judge0's IsolateJob generate (written from reading their code: the options,
their order and their files), and read the meta files as those judges do.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]


def isolate(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.isolate.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        **kw,
    )


def read_meta(path: Path) -> dict[str, list[str]]:
    """Parse a meta file as CMS does (a key may repeat: a list per key)."""
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        key, value = line.strip().split(":", 1)
        out.setdefault(key, []).append(value)
    return out


@pytest.fixture
def roots(tmp_path, monkeypatch):
    root = tmp_path / "boxes"
    root.mkdir(mode=0o755)
    monkeypatch.setenv("SANDBOX_ISOLATE_ROOT", str(root))
    return root


@pytest.fixture
def box(roots):
    """An initialised box: (id, its directory)."""
    bid = str(1000 + secrets.randbelow(50000))
    r = isolate("--cg", "-b", bid, "--init")
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path == roots / bid and (path / "box").is_dir()
    yield bid, path
    assert isolate("--cg", "-b", bid, "--cleanup").returncode == 0
    assert not path.exists()


@pytest.fixture(scope="module")
def judge_probe(probes):
    return probes["judge"]


def run_box(bid: str, box_dir: Path, *opts: str, cmd: list[str]) -> tuple[int, dict, str]:
    meta = box_dir.parent / f"meta-{secrets.token_hex(3)}"
    r = isolate("--cg", "-b", bid, f"--meta={meta}", *opts, "--run", "--", *cmd)
    return r.returncode, read_meta(meta), r.stderr


# -- the box's life --------------------------------------------------------------------


def test_cleanup_of_a_box_never_initialised_exits_0(roots):
    r = isolate("--cg", "-b", "4242", "--cleanup")
    assert r.returncode == 0, r.stderr


def test_run_without_init_is_a_sandbox_error(roots, tmp_path):
    meta = tmp_path / "m"
    r = isolate("--cg", "-b", "4243", f"--meta={meta}", "--run", "--", "/bin/true")
    assert r.returncode == 2
    assert read_meta(meta)["status"] == ["XX"]
    assert "did you run" in r.stderr


def test_the_box_keeps_files_between_runs_and_the_judge_reads_them(box, judge_probe):
    bid, d = box
    shutil.copy(judge_probe, d / "box" / "prog")
    (d / "box" / "src.txt").write_text("hello\n")
    # isolate's default is one process: a shell that forks needs -p.
    rc, meta, _ = run_box(bid, d, "-p", cmd=["/bin/sh", "-c", "cat src.txt > made.txt"])
    assert rc == 0 and "status" not in meta
    rc, meta, _ = run_box(bid, d, "-p", cmd=["/bin/sh", "-c", "cat src.txt >> made.txt"])
    assert rc == 0, meta
    made = d / "box" / "made.txt"
    assert made.read_text() == "hello\nhello\n"
    st = made.stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())  # handed back to the judge


# -- exit status and status precedence ------------------------------------------------


def test_exit_status_and_meta_of_each_outcome(box, judge_probe):
    bid, d = box
    shutil.copy(judge_probe, d / "box" / "j")
    cases = [
        ([], ["./j", "sleep", "0"], 0, None, None),
        (["-t", "0.3"], ["./j", "spin"], 1, "TO", "Time limit exceeded"),
        (["-w", "0.3"], ["./j", "sleep", "5"], 1, "TO", "wall"),
        ([], ["/bin/sh", "-c", "exit 3"], 1, "RE", "Exited with error status 3"),
        ([], ["/bin/sh", "-c", "kill -SEGV $$"], 1, "SG", "Caught fatal signal 11"),
        (["--cg-mem=32768"], ["./j", "hog", "128"], 1, "SG", "Caught fatal signal"),
    ]
    for opts, cmd, want_rc, status, message in cases:
        rc, meta, err = run_box(bid, d, *opts, cmd=cmd)
        assert rc == want_rc, (cmd, rc, err)
        assert meta.get("status") == ([status] if status else None), (cmd, meta)
        if message:
            assert message in meta["message"][0] and message in err, (cmd, meta, err)
        assert float(meta["time"][0]) >= 0 and float(meta["time-wall"][0]) >= 0
        if status == "TO":
            assert "exitsig" not in meta  # a timeout is TO, never SG with signal 9
            assert meta["killed"] == ["1"]
        if opts and opts[0].startswith("--cg-mem"):
            assert meta["cg-oom-killed"] == ["1"]
            assert int(meta["cg-mem"][0]) <= 32768 + 64  # KiB, at most the limit
        elif status is None:
            assert 0 < int(meta["cg-mem"][0]) < 16384, meta  # KiB of one tiny program


def test_a_missing_program_is_xx_and_exit_2(box):
    bid, d = box
    rc, meta, _err = run_box(bid, d, cmd=["./no-such-program"])
    assert rc == 2
    assert meta["status"] == ["XX"] and "execve" in meta["message"][0]


def test_cpu_past_the_limit_within_extra_time_is_to(box, judge_probe):
    bid, d = box
    shutil.copy(judge_probe, d / "box" / "j")
    rc, meta, _ = run_box(bid, d, "-t", "0.2", "-x", "0.5", cmd=["./j", "spin"])
    assert rc == 1 and meta["status"] == ["TO"]
    assert float(meta["time"][0]) >= 0.5  # ran on to the extra time, as isolate lets it


# -- limits as isolate means them --------------------------------------------------------


def test_processes_1_makes_fork_and_threads_fail(box, judge_probe):
    bid, d = box
    shutil.copy(judge_probe, d / "box" / "j")
    rc, _meta, _ = run_box(bid, d, "--processes=1", "-o", "out", cmd=["./j", "forkbomb", "3"])
    assert rc == 0
    assert (d / "box" / "out").read_text() == "forked 0 errno 11\n"
    rc, _meta, _ = run_box(bid, d, "-p3", "-o", "out", cmd=["./j", "forkbomb", "5"])
    assert (d / "box" / "out").read_text() == "forked 2 errno 11\n"


def test_fsize_kills_with_sigxfsz(box):
    bid, d = box
    rc, meta, _ = run_box(
        bid, d, "-p", "--fsize=64", cmd=["/bin/sh", "-c", "head -c 100000 /dev/zero > big"]
    )
    assert rc == 1 and meta["status"] == ["RE"]  # the shell reports head's SIGXFSZ (153)
    assert meta["exitcode"] == ["153"]
    assert (d / "box" / "big").stat().st_size == 64 * 1024


def test_fsize_signal_reaches_a_program_as_sg_25(box):
    bid, d = box
    rc, meta, _ = run_box(
        bid, d, "--fsize=64", "-o", "big", cmd=["/usr/bin/head", "-c", "100000", "/dev/zero"]
    )
    assert rc == 1
    assert meta["status"] == ["SG"] and meta["exitsig"] == ["25"]


def test_no_stack_option_means_an_unlimited_stack(box):
    bid, d = box
    rc, _meta, _ = run_box(bid, d, "-o", "s", cmd=["/bin/sh", "-c", "ulimit -s"])
    assert rc == 0 and (d / "box" / "s").read_text() == "unlimited\n"
    rc, _meta, _ = run_box(bid, d, "-k", "4096", "-o", "s", cmd=["/bin/sh", "-c", "ulimit -s"])
    assert (d / "box" / "s").read_text() == "4096\n"


def test_mem_is_the_address_space(box):
    bid, d = box
    rc, _meta, _ = run_box(bid, d, "-m", "65536", "-o", "v", cmd=["/bin/sh", "-c", "ulimit -v"])
    assert rc == 0 and (d / "box" / "v").read_text() == "65536\n"


# -- rules --------------------------------------------------------------------------------


def test_a_dir_rule_replaces_the_default_for_its_path(box, tmp_path):
    bid, d = box
    mine = tmp_path / "mytmp"
    mine.mkdir(mode=0o777)
    os.chmod(mine, 0o777)
    rc, _meta, err = run_box(
        bid, d, f"--dir=/tmp={mine}:rw", cmd=["/bin/sh", "-c", "echo x > /tmp/here"]
    )
    assert rc == 0, err
    assert (mine / "here").read_text() == "x\n"
    rc, _meta, err = run_box(bid, d, "--dir=tmp=", cmd=["/bin/sh", "-c", "echo x > /tmp/gone"])
    assert rc == 1  # no /tmp rule: the directory is the root's, read-only


def test_env_rules_apply_after_full_env(box):
    bid, d = box
    env = {"FROM_JUDGE": "judge", "OVERRIDDEN": "old", "DROPPED": "x"}
    meta = d.parent / "m-env"
    r = isolate(
        "--cg",
        "-b",
        bid,
        f"--meta={meta}",
        "-e",
        "-E",
        "OVERRIDDEN=new",
        "-E",
        "DROPPED=",
        "-o",
        "env",
        "--run",
        "--",
        "/usr/bin/env",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in (d / "box" / "env").read_text().splitlines())
    assert got["FROM_JUDGE"] == "judge" and got["OVERRIDDEN"] == "new"
    assert "DROPPED" not in got and got["LIBC_FATAL_STDERR_"] == "1"
    r = isolate(
        "--cg", "-b", bid, "-E", "ONLY=1", "-o", "env", "--run", "--", "/usr/bin/env", env=env
    )
    got = dict(line.split("=", 1) for line in (d / "box" / "env").read_text().splitlines())
    assert "FROM_JUDGE" not in got and got["ONLY"] == "1"


def test_stdin_and_stdout_fifos_are_opened_blocking_stdin_first(box):
    bid, d = box
    fin, fout = d / "box" / "in.fifo", d / "box" / "out.fifo"
    os.mkfifo(fin)
    os.mkfifo(fout)
    got: list[bytes] = []

    def interactor():
        # Opened in this order: the box opens stdin first, so neither side waits forever.
        with open(fin, "wb") as w, open(fout, "rb") as r:
            w.write(b"21\n")
            w.flush()
            got.append(r.readline())

    t = threading.Thread(target=interactor)
    t.start()
    rc, _meta, err = run_box(
        bid,
        d,
        "--special-files",
        "-i",
        "in.fifo",
        "-o",
        "out.fifo",
        cmd=["/bin/sh", "-c", "read x; echo $((x * 2))"],
    )
    t.join(30)
    assert rc == 0, err
    assert got == [b"42\n"]


def test_redirections_never_follow_a_symlink(box, tmp_path):
    bid, d = box
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    (d / "box" / "in").symlink_to(secret)
    rc, meta, _err = run_box(bid, d, "--special-files", "-i", "in", cmd=["/bin/cat"])
    assert rc == 2 and meta["status"] == ["XX"]


def test_several_boxes_run_at_once_and_one_box_only_once(roots, judge_probe):
    ids = [str(2000 + secrets.randbelow(40000) + i * 50000) for i in range(2)]
    try:
        for bid in ids:
            assert isolate("--cg", "-b", bid, "--init").returncode == 0
            shutil.copy(judge_probe, roots / bid / "box" / "j")
        results: dict[str, subprocess.CompletedProcess] = {}

        def go(bid: str) -> None:
            results[bid] = isolate("--cg", "-b", bid, "-w", "5", "--run", "--", "./j", "sleep", "1")

        threads = [threading.Thread(target=go, args=(b,)) for b in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(results[b].returncode == 0 for b in ids), results
        busy = threading.Thread(target=go, args=(ids[0],))
        busy.start()
        import time

        time.sleep(0.3)
        second = isolate("--cg", "-b", ids[0], "--run", "--", "./j", "sleep", "0")
        busy.join(60)
        assert second.returncode == 2 and "in use" in second.stderr
    finally:
        for bid in ids:
            isolate("--cg", "-b", bid, "--cleanup")


def test_a_tree_deeper_than_python_recursion_is_cleaned_up(box):
    """A payload that leaves a 1500-deep tree: --cleanup and --init still work (round 2)."""
    bid, path = box
    script = "i=0; while [ $i -lt 1500 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done"
    r = isolate("--cg", "-b", bid, "--processes=4", "--run", "--", "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    again = isolate("--cg", "-b", bid, "--init")
    assert again.returncode == 0, again.stderr
    assert list((path / "box").iterdir()) == []


@pytest.mark.parametrize(
    "opt", ["--chdir=/..", "--chdir=box/../..", "--dir=/h=/tmp/../etc", "--dir=/h=./../x"]
)
def test_dot_dot_in_an_option_is_one_line_and_exit_2(box, opt):
    bid, _ = box
    r = isolate("--cg", "-b", bid, opt, "--run", "--", "/bin/true")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 2 and "'..'" in r.stderr, r.stderr

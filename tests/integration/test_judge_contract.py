"""What a judge or a new user hits first (issue 15): each test is a real submission or a
command a user types, and failed on main before the change it covers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sbxtest import run_cli

from sandbox import Sandbox, Verdict
from sandbox.policy.load import load_profile
from sandbox.runner.watch import POLL_INTERVAL

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]


def cc(tmp: Path, name: str, source: str, *flags: str, lang: str = "c") -> Path:
    """Compile a submission on the host (the judge's compile step, done outside here)."""
    src = tmp / f"{name}.{'cpp' if lang == 'c++' else 'c'}"
    src.write_text(source)
    out = tmp / name
    compiler = "g++" if lang == "c++" else "gcc"
    subprocess.run([compiler, "-O1", "-o", str(out), str(src), *flags], check=True)
    return out


@pytest.fixture(scope="module")
def sb():
    with Sandbox("strict") as s:
        yield s


# -- item 2: an address-space limit beside the cgroup memory limit ---------------------

BIG_NEW = r"""
#include <cstdio>
#include <new>
int main() {
    try {
        char *p = new char[512u << 20];   // reserved, never touched
        std::printf("allocated %p\n", (void *)p);
        return 0;
    } catch (const std::bad_alloc &) {
        std::printf("bad_alloc\n");
        return 3;
    }
}
"""


def test_address_space_makes_an_untouched_new_fail(sb, tmp_path):
    prog = cc(tmp_path, "bignew", BIG_NEW, lang="c++")
    free = sb.run([str(prog)], limits={"memory": "256M"})
    assert free.verdict is Verdict.OK, free  # untouched pages are not charged
    r = sb.run([str(prog)], limits={"memory": "256M", "address_space": "256M"})
    assert r.verdict is Verdict.RUNTIME_ERROR and r.exit_code == 3, r
    assert r.stdout == b"bad_alloc\n"
    assert r.record()["limits"]["address_space"] == 256 << 20


def test_address_space_on_the_command_line(tmp_path):
    prog = cc(tmp_path, "bignew", BIG_NEW, lang="c++")
    r = run_cli(["exec", "--address-space", "256M", "--", str(prog)], tmp=tmp_path)
    assert r.rc == 3 and r.out == "bad_alloc\n", r.err
    assert r.record["limits"]["address_space"] == 256 << 20


# -- item 3: a loaded profile never drops what the caller passes -----------------------


def test_loaded_profile_keeps_the_callers_cpu_limit_and_env(probes):
    with Sandbox(load_profile("strict")) as s:
        r = s.run([str(probes["judge"]), "spin"], limits={"cpu_time": 0.5})
        assert r.verdict is Verdict.TIME_LIMIT, r
        assert r.usage.cpu_time <= 0.5 + POLL_INTERVAL + 0.05
        e = s.run(["/bin/sh", "-c", 'echo "$JUDGE_TOKEN"'], env={"JUDGE_TOKEN": "t0k"})
        assert e.stdout == b"t0k\n"


# -- item 4: adding a path keeps the defaults --------------------------------------------


def test_adding_a_read_path_keeps_usr_and_exec(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("42\n")
    over = {
        "filesystem": {
            "read_paths": ["/data"],
            "binds": [{"source": str(data), "target": "/data"}],
        }
    }
    with Sandbox("strict", overrides=over) as s:
        r = s.run(["/bin/sh", "-c", "cat /data/in.txt && head -c0 /etc/passwd && echo fine"])
    assert r.verdict is Verdict.OK and r.stdout == b"42\nfine\n", r


# -- item 5: a program under a bind runs in place ----------------------------------------


def test_a_program_under_a_bind_finds_the_files_beside_it(tmp_path):
    tool = tmp_path / "tool"
    (tool / "bin").mkdir(parents=True)
    (tool / "lib").mkdir()
    (tool / "lib" / "greeting").write_text("hello from the toolchain\n")
    run = tool / "bin" / "run"
    run.write_text('#!/bin/sh\nexec cat "$(dirname "$0")/../lib/greeting"\n')
    run.chmod(0o755)
    for program in (str(run), "/opt/tool/bin/run"):
        r = run_cli(["exec", "--ro-bind", str(tool), "/opt/tool", "--", program], tmp=tmp_path)
        assert r.rc == 0, (program, r.err)
        assert r.out == "hello from the toolchain\n"


# -- item 8: the JDK's /etc/java-* -------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/usr/bin/javac"), reason="no JDK (javac) installed")
def test_javac_compiles_without_an_extra_bind(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "Main.java").write_text(
        'public class Main { public static void main(String[] a) { System.out.println("ok"); } }\n'
    )
    r = run_cli(
        [
            "exec",
            "--profile",
            "compile",
            "--ro-bind",
            str(src),
            "/src",
            "--",
            "/usr/bin/javac",
            "-d",
            "/tmp",
            "/src/Main.java",
        ],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert r.record["verdict"] == "OK"


# -- item 10: no max_rss that is the launcher's ------------------------------------------


def test_memory_figure_is_the_payloads_own(sb):
    r = sb.run(["/bin/sh", "-c", "echo"])
    assert r.verdict is Verdict.OK
    assert not hasattr(r.usage, "max_rss")
    assert "max_rss" not in r.record()
    assert r.usage.memory_peak is not None and r.usage.memory_peak < 4 << 20


# -- item 12: the CLI says why a run ended -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "program", "verdict", "reason"),
    [
        (["--cpu-time", "0.3"], ["spin"], "TIME_LIMIT", "CPU time"),
        (["--wall-time", "0.3"], ["sleep", "30"], "WALL_TIME_LIMIT", "wall time"),
        (["--memory", "32M"], ["hog", "256"], "MEMORY_LIMIT", "memory limit 32M"),
        (["--output", "1K"], ["flood"], "OUTPUT_LIMIT", "output limit 1K"),
        ([], ["ptrace"], "SECURITY_VIOLATION", "ptrace"),
    ],
)
def test_the_cli_names_the_verdict_and_never_exits_0_for_a_limit(
    probes, tmp_path, args, program, verdict, reason
):
    r = run_cli(["exec", *args, "--", str(probes["judge"]), *program], tmp=tmp_path)
    assert r.rc != 0 and r.rc >= 128, (r.rc, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.startswith(f"sandbox: {verdict}: ")]
    assert len(lines) == 1 and reason in lines[0], r.err
    assert r.record["verdict"] == verdict


def test_an_output_limit_on_a_program_that_exits_0_is_not_success(tmp_path):
    r = run_cli(
        ["exec", "--output", "10", "--", "/bin/sh", "-c", "echo 0123456789abcdef"], tmp=tmp_path
    )
    assert r.record["verdict"] == "OUTPUT_LIMIT"
    assert r.rc == 137, r.err
    assert r.out == "0123456789"


def test_quiet_silences_the_verdict_line_and_the_warnings(probes, tmp_path):
    r = run_cli(
        ["exec", "--quiet", "--cpu-time", "0.3", "--", str(probes["judge"]), "spin"],
        tmp=tmp_path,
    )
    assert r.rc == 137
    assert r.err == ""
    ok = run_cli(["exec", "-q", "--", "/bin/true"], tmp=tmp_path)
    assert ok.rc == 0 and ok.err == ""


# -- item 14: files in and out from the CLI ----------------------------------------------


def test_a_script_in_the_cwd_runs_with_file_and_its_output_comes_back(tmp_path):
    (tmp_path / "script.py").write_text("import sys\nopen('out.txt', 'w').write('42\\n')\n")
    r = run_cli(
        [
            "exec",
            "--profile",
            "interp",
            "--file",
            "script.py",
            "--collect",
            "out.txt",
            "--",
            "python3",
            "script.py",
        ],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert (tmp_path / "out.txt").read_text() == "42\n"
    named = run_cli(
        [
            "exec",
            "--file",
            f"in.txt={tmp_path / 'script.py'}",
            "--collect",
            "in.txt=copy.txt",
            "--",
            "/bin/true",
        ],
        tmp=tmp_path,
    )
    assert named.rc == 0, named.err
    assert (tmp_path / "copy.txt").read_text() == (tmp_path / "script.py").read_text()


def test_collect_never_writes_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    (tmp_path / "out.txt").symlink_to(victim)
    r = run_cli(
        ["exec", "--collect", "out.txt", "--", "/bin/sh", "-c", "echo pwned > out.txt"],
        tmp=tmp_path,
    )
    assert victim.read_text() == "keep\n"
    assert "--collect out.txt" in r.err


# -- item 15: results where results are documented ---------------------------------------


def test_a_missing_program_is_a_spawn_error_result(sb):
    r = sb.run(["/no/such/program"])
    assert r.verdict is Verdict.SPAWN_ERROR and r.status == 127
    rec = r.record()
    for key in ("enforcement", "cpu_time", "memory_peak", "wall_time", "limits", "status"):
        assert key in rec, key
    assert rec["status"] == 127


def test_a_file_the_launcher_cannot_execute_is_a_spawn_error_result(sb):
    r = sb.run(["/box/data.txt"], files={"data.txt": b"not a program\n"})
    assert r.verdict is Verdict.SPAWN_ERROR, r
    assert r.status == 126
    assert r.enforcement, "the layers in force when the child failed"


def test_a_staged_program_can_be_the_program(sb, tmp_path):
    prog = cc(tmp_path, "hello", '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    r = sb.run(["./a.out"], files={"a.out": str(prog)})
    assert r.verdict is Verdict.OK and r.stdout == b"hi\n", r


def test_cancel_reads_cancelled(sb, probes):
    h = sb.start([str(probes["judge"]), "sleep", "30"])
    h.started_or_done(30)
    h.cancel()
    r = h.wait(60)
    assert r.verdict is Verdict.CANCELLED
    assert r.cli_status == 137


def test_the_cli_failure_record_has_every_key(tmp_path):
    r = run_cli(["exec", "--", "/no/such/program"], tmp=tmp_path)
    assert r.rc == 127
    rec = r.record
    assert rec["verdict"] == "SPAWN_ERROR"
    for key in ("enforcement", "cpu_time", "memory_peak", "exit_code", "signal", "limits"):
        assert key in rec, key


def test_a_bad_meta_destination_is_refused_before_the_run(tmp_path):
    marker = tmp_path / "ran"
    bad = run_cli(
        ["exec", "--meta-fd", "57", "--", "/bin/sh", "-c", f"touch {marker}"],
        tmp=tmp_path,
        meta=False,
    )
    assert bad.rc == 125 and "--meta-fd 57" in bad.err
    assert "Traceback" not in bad.err
    assert not marker.exists()
    nodir = run_cli(
        ["exec", "--meta", "/nonexistent/run.json", "--", "/bin/sh", "-c", f"touch {marker}"],
        tmp=tmp_path,
        meta=False,
    )
    assert nodir.rc == 125 and "--meta /nonexistent/run.json" in nodir.err
    assert "Traceback" not in nodir.err
    assert not marker.exists()


# -- item 9: a single file can be bound ----------------------------------------------------


def test_a_single_file_binds_read_only_as_judges_bind_an_input(tmp_path):
    data = tmp_path / "input.txt"
    data.write_text("7 35\n")
    script = tmp_path / "x.py"
    script.write_text("a, b = map(int, open('/box/input.txt').read().split())\nprint(a + b)\n")
    r = run_cli(
        [
            "exec",
            "--profile",
            "interp",
            "--ro-bind",
            str(data),
            "/box/input.txt",
            "--ro-bind",
            str(script),
            "/box/x.py",
            "--",
            "python3",
            "/box/x.py",
        ],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert r.out == "42\n"
    over = {"filesystem": {"binds": [{"source": str(data), "target": "/data/in.txt"}]}}
    with Sandbox("strict", overrides=over) as s:
        got = s.run(["/bin/sh", "-c", "cat /data/in.txt; echo x > /data/in.txt"])
    assert got.stdout == b"7 35\n" and got.verdict is Verdict.RUNTIME_ERROR  # read-only
    assert data.read_text() == "7 35\n"


# -- item 13: small open-file limits are the program's ---------------------------------------


def test_a_small_open_files_limit_is_the_programs(tmp_path):
    prog = cc(
        tmp_path,
        "opens",
        "#include <fcntl.h>\n#include <stdio.h>\n"
        'int main(void){int n=0;while(open("/dev/null",O_RDONLY)>=0)n++;printf("%d\\n",n);}\n',
    )
    r = run_cli(["exec", "--open-files", "5", "--", str(prog)], tmp=tmp_path)
    assert r.rc == 0, r.err
    assert r.out == "2\n"  # 5 minus stdin, stdout and stderr


# -- item 11: writable binds write as the directory's owner ---------------------------------


def test_two_runs_write_the_same_file_in_a_writable_bind(tmp_path):
    """Each run has a host uid of its own; the bind is idmapped to its directory's owner,
    so the second run can overwrite the first one's file and the files are the owner's."""
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 1234, 1234)  # a judge's (or a user's) own directory, 0755
    for i in (1, 2):
        r = run_cli(
            ["exec", "--bind", str(out), "/out", "--", "/bin/sh", "-c", f"echo run{i} > /out/f"],
            tmp=tmp_path,
        )
        assert r.rc == 0, r.err
        assert r.record["host_uid"] != 1234
    st = (out / "f").stat()
    assert (out / "f").read_text() == "run2\n"
    assert (st.st_uid, st.st_gid) == (1234, 1234)


def test_a_writable_bind_gives_only_the_owners_rights(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.chown(out, 1234, 1234)
    secret = out / "secret"
    secret.write_text("root's\n")
    secret.chmod(0o600)  # root's, inside the user's tree: not the user's to read
    r = run_cli(
        [
            "exec",
            "--bind",
            str(out),
            "/out",
            "--",
            "/bin/sh",
            "-c",
            "cat /out/secret; echo mine > /out/mine; cat /out/mine",
        ],
        tmp=tmp_path,
    )
    assert "Permission denied" in r.err and r.out == "mine\n", (r.out, r.err)
    assert (out / "mine").stat().st_uid == 1234

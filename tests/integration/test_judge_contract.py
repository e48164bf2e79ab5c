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

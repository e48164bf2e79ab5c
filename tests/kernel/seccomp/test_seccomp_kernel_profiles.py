"""The three example profiles run their real workloads under their real filters.

strict: a shell with coreutils and ordinary child processes; interp: python3
scripts with threads, subprocesses and asyncio; compile: gcc and g++ compile,
link and run. Only seccomp is applied here (no namespaces): this checks the
allow-lists, not the container.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from seccomp_kernel import profile_seccomp, requires_seccomp, run_filtered

from sandbox.seccomp.build import prepare

pytestmark = requires_seccomp

SHELL = (
    "id; ls -la / >/dev/null; cat /etc/hostname >/dev/null; echo hi | wc -c; sleep 0.01;"
    " (true &); wait; for i in 1 2 3; do /bin/true; done; echo ok"
)
PYTHON = """
import asyncio, json, os, subprocess, sys, tempfile, threading
t = threading.Thread(target=lambda: None); t.start(); t.join()
subprocess.run(["/bin/true"], check=True)
asyncio.run(asyncio.sleep(0))
with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "f"), "w") as f:
        f.write(json.dumps({"a": 1}))
print("ok")
"""
C_SRC = '#include <stdio.h>\nint main(void) { puts("c ok"); return 0; }\n'
CXX_SRC = (
    "#include <iostream>\n#include <thread>\n#include <vector>\n"
    "int main() { std::vector<int> v{1, 2}; std::thread t([] {}); t.join();"
    ' std::cout << "c++ ok " << v.size() << std::endl; }\n'
)


def test_strict_runs_a_shell_with_coreutils() -> None:
    out = run_filtered(prepare(profile_seccomp("strict")).bpf, ["/bin/sh", "-c", SHELL])
    assert out.code == 0, out.output
    assert b"uid=" in out.output and out.output.endswith(b"ok\n")


def test_interp_runs_python_scripts() -> None:
    out = run_filtered(prepare(profile_seccomp("interp")).bpf, ["/usr/bin/python3", "-c", PYTHON])
    assert out.code == 0, out.output
    assert out.output == b"ok\n"


def test_strict_is_narrower_than_interp() -> None:
    # asyncio needs epoll (the events group): strict kills it, which is why interp exists.
    out = run_filtered(prepare(profile_seccomp("strict")).bpf, ["/usr/bin/python3", "-c", PYTHON])
    assert out.signal == signal.SIGSYS


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_compile_builds_and_links_c_and_cxx(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text(C_SRC)
    (tmp_path / "b.cpp").write_text(CXX_SRC)
    script = (
        f"cd {tmp_path} && gcc -O2 -Wall -o a a.c && ./a"
        " && g++ -O2 -std=c++17 -pthread -o b b.cpp && ./b"
    )
    out = run_filtered(prepare(profile_seccomp("compile")).bpf, ["/bin/sh", "-c", script])
    assert out.code == 0, out.output
    assert out.output == b"c ok\nc++ ok 2\n"


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_compile_runs_make(tmp_path: Path) -> None:
    (tmp_path / "a.c").write_text(C_SRC)
    (tmp_path / "Makefile").write_text("a: a.c\n\tgcc -O2 -o a a.c\n")
    script = f"cd {tmp_path} && make -s -B && ./a"
    out = run_filtered(prepare(profile_seccomp("compile")).bpf, ["/bin/sh", "-c", script])
    assert out.code == 0, out.output
    assert out.output == b"c ok\n"
    strict = run_filtered(prepare(profile_seccomp("strict")).bpf, ["/bin/sh", "-c", script])
    assert b"Bad system call" in strict.output  # make's setresuid: why compile has credentials

"""bin/sandbox: the shell launcher that starts Python with -I -S (issue 12).

Which interpreter it picks, with which flags, is checked with stand-in
interpreters that print what they were given; the checkout's installed copy
(.venv/bin/sandbox) is run for real.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sbxtest import ROOT

LAUNCHER = ROOT / "bin" / "sandbox"


def _fake_python(path: Path) -> None:
    """An 'interpreter' that prints its arguments, one per line."""
    path.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    path.chmod(0o755)


def _install(bindir: Path) -> Path:
    bindir.mkdir(parents=True)
    script = bindir / "sandbox"
    shutil.copy(LAUNCHER, script)
    script.chmod(0o755)
    return script


def _run(argv: list[str], cwd: Path) -> list[str]:
    p = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.splitlines()


def test_in_a_venv_the_venvs_python_runs_it_with_I_and_S(tmp_path):
    script = _install(tmp_path / "v" / "bin")
    (tmp_path / "v" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    _fake_python(tmp_path / "v" / "bin" / "python")
    assert _run([str(script), "exec", "a b", ""], tmp_path) == [
        "-I",
        "-S",
        str(script),
        "exec",
        "a b",
        "",
    ]
    # A relative path works the same (the script is found beside the interpreter).
    assert _run(["v/bin/sandbox", "x"], tmp_path) == ["-I", "-S", "v/bin/sandbox", "x"]


def test_a_link_to_it_is_followed_to_the_venv(tmp_path):
    script = _install(tmp_path / "v" / "bin")
    (tmp_path / "v" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    _fake_python(tmp_path / "v" / "bin" / "python")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "sandbox").symlink_to(script)
    assert _run([str(tmp_path / "links" / "sandbox"), "x"], tmp_path) == [
        "-I",
        "-S",
        str(script),
        "x",
    ]


def test_outside_a_venv_the_interpreter_pip_named_runs_it_as_before(tmp_path):
    """No venv: the interpreter pip wrote into the project's isolate script, with site."""
    script = _install(tmp_path / "u" / "bin")
    fake = tmp_path / "py" / "python3.11"
    fake.parent.mkdir()
    _fake_python(fake)
    (tmp_path / "u" / "bin" / "isolate").write_text(f"#!{fake}\nimport sys\n")
    assert _run([str(script), "exec", "y"], tmp_path) == [str(script), "exec", "y"]


@pytest.mark.requires("root")
def test_the_installed_command_runs_exec_and_the_full_cli(tmp_path):
    installed = ROOT / ".venv" / "bin" / "sandbox"
    if not installed.exists() or installed.read_bytes() != LAUNCHER.read_bytes():
        pytest.skip("the checkout's .venv does not hold this launcher (run scripts/setup.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    p = subprocess.run(
        [str(installed), "exec", "-q", "--", "/bin/sh", "-c", "echo out; exit 7"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert (p.returncode, p.stdout) == (7, "out\n"), p.stderr
    # Anything but exec runs in-process, with what site finds (pydantic for verify).
    p = subprocess.run(
        [str(installed), "verify", "strict"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert "policy sha256:" in p.stdout


def test_the_launcher_is_python_too():
    """The file parses as Python: what the interpreter runs after the shell's exec."""
    compile(LAUNCHER.read_text(), str(LAUNCHER), "exec")
    assert sys.version_info >= (3, 11)


def test_the_thin_clients_runtime_path_is_the_librarys(monkeypatch):
    """sandbox.cli.fast has its own copy of the rule (it must not import os)."""
    from sandbox.cli import fast
    from sandbox.paths import runtime_path

    for env in ({}, {"SANDBOX_RUNTIME_DIR": "/tmp/rt-x"}, {"XDG_RUNTIME_DIR": "/run/user/7/"}):
        for k in ("SANDBOX_RUNTIME_DIR", "XDG_RUNTIME_DIR"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert fast.runtime_path() == runtime_path()


def test_the_thin_client_imports_no_os():
    """With -I -S nothing has imported os: the client's way to the zygote must not."""
    code = (
        "import sys; sys.path.append(sys.argv[1]); import sandbox.cli.fast as f; f.key(); "
        "print(sorted(m for m in ('os', 'socket', 'signal', 'enum') if m in sys.modules))"
    )
    p = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"

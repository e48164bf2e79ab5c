"""The CLI wiring of ``sandbox learn``: lazy import, arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(argv: list[str]) -> str:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules\n"
        "    if m.startswith(('sandbox.learn', 'sandbox.cli.learn')))))\n"
        "from sandbox.cli.main import main\n"
        f"main({argv!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def test_exec_does_not_import_learn() -> None:
    assert _loaded_after(["exec", "--help"]) == "[]"


def test_learn_is_registered_for_learn_only() -> None:
    assert "sandbox.cli.learn" in _loaded_after(["learn", "--help"])


def test_file_arguments_are_name_equals_path() -> None:
    import argparse

    from sandbox.cli.learn import _file_arg

    assert _file_arg("demo.py=examples/x.py") == ("demo.py", "examples/x.py")
    with pytest.raises(argparse.ArgumentTypeError):
        _file_arg("demo.py")


def test_a_learned_extends_path_names_the_base_from_anywhere(tmp_path, monkeypatch) -> None:
    """``learn --from ./x.toml -o out/p.toml`` writes ``extends`` relative to out/;
    loading the result from another directory, where a planted x.toml waits, still
    finds the real base (issue 13)."""
    from pathlib import Path

    from sandbox.cli.learn import _base_ref
    from sandbox.policy.load import load_profile

    work, out, elsewhere = tmp_path / "work", tmp_path / "out", tmp_path / "elsewhere"
    for d in (work, out, elsewhere):
        d.mkdir()
    (work / "x.toml").write_text('extends = "strict"\n[limits]\nwall_time = 7.0\n')
    (elsewhere / "sub").mkdir()
    (elsewhere / "work").mkdir()  # ../work/x.toml seen from elsewhere/sub
    (elsewhere / "work" / "x.toml").write_text('extends = "strict"\n[limits]\nwall_time = 999.0\n')
    monkeypatch.chdir(work)
    load_as, written = _base_ref("./x.toml", Path("../out/p.toml"))
    assert load_as == str(work / "x.toml") and written == "../work/x.toml"
    (out / "p.toml").write_text(f'extends = "{written}"\n')
    monkeypatch.chdir(elsewhere / "sub")
    assert load_profile(str(out / "p.toml")).policy.limits.wall_time == 7.0
    monkeypatch.chdir(out)
    assert load_profile("p.toml").policy.limits.wall_time == 7.0

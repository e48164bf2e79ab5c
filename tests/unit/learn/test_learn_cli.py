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

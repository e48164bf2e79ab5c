"""The guest's C probe compiles cleanly; the build lands where the guest stage looks.

Built here, on the host, because gcc under TCG costs the guest stage 5 to 10
seconds; tests/guest/test_apparmor.py compiles it itself when this build is
missing or older than the source.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
SRC = TESTS / "guest" / "probes" / "aa_probe.c"
OUT = TESTS / "probes" / "build" / "aa_probe"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_c_probe_builds_without_warnings_and_speaks_json(tmp_path: Path) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = tmp_path / "aa_probe"
    cmd = ["gcc", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(tmp_out), str(SRC)]
    subprocess.run(cmd, check=True, capture_output=True)
    staged = OUT.with_suffix(".new")
    shutil.copy(tmp_out, staged)
    os.replace(staged, OUT)  # a rename: a guest may be running the old one (ETXTBSY)
    ops = ["read:/nonexistent/x", f"write:{tmp_path}/w", "socket:AF_UNIX:SOCK_STREAM", "bogus"]
    out = subprocess.run([str(OUT), *ops], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == [
        ["read:/nonexistent/x", "ENOENT"],
        [f"write:{tmp_path}/w", 0],
        ["socket:AF_UNIX:SOCK_STREAM", 0],
        ["bogus", "EINVAL"],
    ]

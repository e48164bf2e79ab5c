"""An exec'd process is never writable by the container's payload before its execve.

The attack (attack2 round): the container's payload has the exec'd process's
uid, so a dumpable process is its to write through /proc/N/mem. The exec's
payload made itself dumpable for its listener's handover, before its seccomp
filter was loaded and while it held the listener: the container could run
code unfiltered, or answer its own notifications. Now it is never dumpable;
the exec's supervisor (root of the host) copies the listener itself. After
execve the program is the container's like any other (as with runc).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ocikit import Runtime, config, make_bundle
from sbxtest import ROOT

PROBE = ROOT / "tests" / "probes" / "static" / "memwatch.c"


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    return Runtime(tmp_path / "rt")


def test_container_cannot_write_an_exec_before_its_execve(rt: Runtime, tmp_path: Path) -> None:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/setup.sh installs it)")
    b = make_bundle(tmp_path, [])
    subprocess.run(
        ["gcc", "-static", "-O2", "-o", str(b / "rootfs/usr/bin/memwatch"), str(PROBE)], check=True
    )
    cfg = config(["/usr/bin/memwatch", "/tmp/log", "60"])
    (b / "config.json").write_text(json.dumps(cfg))
    rt("create", "--bundle", str(b), "cw", check=True)
    try:
        rt("start", "cw", check=True)
        time.sleep(0.5)
        for _ in range(8):
            assert rt("exec", "cw", "/bin/true").returncode == 0
        log = rt("exec", "cw", "/bin/cat", "/tmp/log", check=True).stdout
    finally:
        rt("delete", "--force", "cw")
    names = [ln.split(":", 1)[1].strip() for ln in log.splitlines() if "Name:" in ln]
    assert set(names) <= {"true", "cat"}, log  # only programs after their execve
    assert "seccomp notify" not in log and "Seccomp:\t0" not in log, log

"""Rootless runs: the CLI as an unprivileged user (nobody), on the real kernel.

The caller's own uid is the only one it may map (to the sandbox user inside),
every mount is made in the run's user namespace (overlay with userxattr on a
tmpfs upper: Linux 6.6+), the seccomp listener is handed over with
SCM_RIGHTS, and without a delegated cgroup the cgroups layer is off (a
profile that requires it is refused, saying how to fix it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sbxtest import ROOT

from sandbox.host import kernel_version

pytestmark = pytest.mark.requires("root", "userns")
NOBODY = 65534


def _reachable_by_nobody(path: Path) -> bool:
    return all(os.stat(p).st_mode & 1 for p in [path, *path.parents])


@pytest.fixture
def rl():
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    if not _reachable_by_nobody(ROOT) or not _reachable_by_nobody(Path(sys.executable).parent):
        pytest.skip(f"{ROOT} is not reachable by an unprivileged user")
    top = Path(tempfile.mkdtemp(prefix="sbx-rootless-"))  # pytest's tmp dirs are 0700
    os.chmod(top, 0o755)
    home = top / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    prof = home / "p.toml"
    prof.write_text('extends = "strict"\n[layers]\ncgroups = "degradable"\n')

    def run(
        *args: str, profile: str = str(prof), opts: tuple[str, ...] = ()
    ) -> tuple[int, str, str, dict | None]:
        meta = home / "meta.json"
        if meta.exists():
            meta.unlink()
        p = subprocess.run(
            [
                "setpriv",
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "env",
                "-u",
                "XDG_RUNTIME_DIR",
                f"HOME={home}",
                sys.executable,
                "-m",
                "sandbox.cli.main",
                "exec",
                "--profile",
                profile,
                "--meta",
                str(meta),
                *opts,
                "--",
                *args,
            ],
            capture_output=True,
            text=True,
            cwd=home,
            timeout=120,
        )
        rec = json.loads(meta.read_text()) if meta.exists() else None
        return p.returncode, p.stdout, p.stderr, rec

    yield run
    shutil.rmtree(top, ignore_errors=True)


def test_rootless_run_maps_the_callers_own_id(rl):
    rc, out, err, rec = rl(
        "/bin/sh",
        "-c",
        "id -u; cat /proc/self/uid_map; echo x > /box/f && "
        "cat /box/f; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    )
    assert rc == 0, err
    lines = out.split("\n")
    assert lines[0] == "1000"
    assert lines[1].split() == ["1000", str(NOBODY), "1"]  # never more than the caller's id
    assert "CapEff:\t0000000000000000" in out and "NoNewPrivs:\t1" in out
    assert rec["id_mode"] == "rootless" and rec["host_uid"] == NOBODY
    states = {k: v["state"] for k, v in rec["enforcement"].items()}
    # Numbers, not strings: ["6", "10"] >= ["6", "6"] is False, which skipped this on 6.10-6.19.
    if kernel_version() >= (6, 6):
        assert states["overlay"] == "full"
    else:
        assert states["overlay"] == "off" and "6.6" in rec["enforcement"]["overlay"]["detail"]
    assert states["seccomp"] == states["landlock"] == states["namespaces"] == "full"
    assert (
        states["cgroups"] == "off"
        and "SANDBOX_CGROUP_PARENT" in rec["enforcement"]["cgroups"]["detail"]
    )


def test_rootless_violation_is_recorded_through_scm_rights(rl):
    _rc, _out, _err, rec = rl("/bin/sh", "-c", "unshare -U true")
    assert rec["verdict"] == "SECURITY_VIOLATION" and rec["violation"]["syscall"] == "unshare"


def test_rootless_wall_limit_without_cgroups(rl):
    """No leaf to kill: the supervisor kills the payload, init reports and kills the rest."""
    _rc, _out, err, rec = rl("/bin/sh", "-c", "sleep 5 & sleep 5", opts=("--wall-time", "0.3"))
    assert rec["verdict"] == "WALL_TIME_LIMIT" and rec["signal"] == 9, err
    assert rec["wall_time"] < 3


def test_rootless_strict_without_a_delegated_cgroup_is_refused(rl):
    rc, _out, err, _rec = rl("/bin/true", profile="strict")
    assert rc == 125 and "SANDBOX_CGROUP_PARENT" in err

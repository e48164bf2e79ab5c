"""Judge profiles, stdio reopen and network.tcp_ports with AppArmor enforced (kvm-run guest).

On the host only Landlock mediates; here AppArmor does too, and with Landlock
ablated each claim is shown to hold on AppArmor alone:

- after the payload's first execve nothing else runs: a shell, and the ELF
  loader run directly on another program (which Landlock alone cannot stop:
  the kernel opens the loader for execution during the program's own execve);
- shared libraries and Python's extension modules still map
  (``filesystem.map_paths``: AppArmor ``mr``);
- a submission reopens its stdio (pipes are not path-mediated);
- a listed TCP port serves a client in the same run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from guestkit import run_cli_fast
from sbxtest import build_probes


def _apparmor_active() -> bool:
    try:
        return "apparmor" in Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1" or not _apparmor_active() or os.geteuid() != 0,
    reason="needs the kvm-run guest as root (KVM_RUN=1, apparmor in /sys/kernel/security/lsm)",
)


@pytest.fixture(scope="module", autouse=True)
def state_dir():
    os.environ.setdefault("SANDBOX_STATE_DIR", "/tmp/sandbox-state")


@pytest.fixture(scope="module")
def probes() -> dict[str, Path]:
    return build_probes()


@pytest.mark.parametrize("what", ["exec-sh", "exec-copy", "exec-loader"])
def test_no_exec_after_the_first_under_apparmor_alone(probes, tmp_path, what):
    base = ["exec", "--profile", "judge", "--test-ablate", "landlock"]
    aa = run_cli_fast([*base, "--", str(probes["judgeexec"]), what], tmp=tmp_path)
    assert aa.record["enforcement"]["apparmor"]["state"] == "full", aa.err
    assert aa.rc == 13, (what, aa.rc, aa.err)  # EACCES: the profile's, the program ran
    neither = run_cli_fast(
        [*base, "--test-ablate", "apparmor", "--", str(probes["judgeexec"]), what], tmp=tmp_path
    )
    assert neither.rc == 0, (what, neither.err)  # not a file mode, not noexec


def test_python_maps_its_extension_modules_under_judge_python(tmp_path):
    script = tmp_path / "sol.py"
    script.write_text(
        "import json, decimal, math\nprint(json.dumps(str(decimal.Decimal(3) / 4)))\n"
    )
    r = run_cli_fast(
        [
            "exec",
            "--profile",
            "judge-python",
            "--test-ablate",
            "landlock",
            "--file",
            f"sol.py={script}",
            "--",
            "python3",
            "sol.py",
        ],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert r.out == '"0.75"\n'
    assert r.record["enforcement"]["apparmor"]["state"] == "full"


def test_stdio_reopen_under_apparmor(tmp_path):
    r = run_cli_fast(
        [
            "exec",
            "--profile",
            "strict",
            "--",
            "/bin/sh",
            "-c",
            "echo out > /dev/stdout; echo err > /dev/stderr",
        ],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    assert r.out == "out\n" and "err\n" in r.err


@pytest.mark.parametrize("port", ["8080"])
def test_a_listed_tcp_port_under_apparmor(probes, tmp_path, port):
    r = run_cli_fast(
        ["exec", "--tcp-port", port, "--", str(probes["tcpports"]), "pair", port], tmp=tmp_path
    )
    assert r.rc == 0, r.err
    assert r.out == "ping\n"
    assert json.dumps(r.record["enforcement"]["apparmor"]["state"]) == '"full"'

"""The inside-out probe (tests/probes/inside.c) under strict, each field flipped by its ablation.

/proc/self/status shows the capability sets, no_new_privs and the seccomp
mode. Landlock has no field there, so its domain is shown by behaviour:
/run (0755 in the image, outside Landlock's read trees) cannot be listed
under Landlock (EACCES) and can with it switched off.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from sbxtest import run_cli

pytestmark = pytest.mark.requires("root", "gcc", "landlock>=1")

ALL_CAPS = (1 << (int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1)) - 1


def inside(probes, tmp: Path, *ablate: str) -> dict:
    args = ["exec", "--profile", "strict"]
    for layer in ablate:
        args += ["--test-ablate", layer]
    r = run_cli([*args, "--", str(probes["inside"])], tmp=tmp)
    assert r.rc == 0, r.err
    info = json.loads(r.out)
    status = dict(line.split(":\t", 1) for line in info["status"].splitlines() if ":\t" in line)
    return {"status": status, "run": info["run"], "record": r.record}


def caps(info: dict, name: str) -> int:
    return int(info["status"][name], 16)


def test_strict_from_inside(probes, tmp_path):
    info = inside(probes, tmp_path)
    for name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert caps(info, name) == 0, name
    assert info["status"]["NoNewPrivs"] == "1"
    assert info["status"]["Seccomp"] == "2"  # SECCOMP_MODE_FILTER
    assert info["status"]["Seccomp_filters"] == "1"
    assert info["run"] == {"errno": errno.EACCES}  # a Landlock domain is in force


def test_capabilities_ablated(probes, tmp_path):
    info = inside(probes, tmp_path, "capabilities")
    for name in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert caps(info, name) == ALL_CAPS, name
    assert info["status"]["NoNewPrivs"] == "1" and info["status"]["Seccomp"] == "2"


def test_no_new_privs_ablated(probes, tmp_path):
    info = inside(probes, tmp_path, "no_new_privs")
    assert info["status"]["NoNewPrivs"] == "0"
    # CAP_SYS_ADMIN, held for Landlock and seccomp without NNP, is gone after execve
    assert caps(info, "CapEff") == caps(info, "CapPrm") == caps(info, "CapBnd") == 0
    assert info["status"]["Seccomp"] == "2" and info["run"] == {"errno": errno.EACCES}


def test_seccomp_ablated(probes, tmp_path):
    info = inside(probes, tmp_path, "seccomp")
    assert info["status"]["Seccomp"] == "0"
    assert info["run"] == {"errno": errno.EACCES}


def test_landlock_ablated(probes, tmp_path):
    info = inside(probes, tmp_path, "landlock")
    assert info["run"] == []  # listed: no Landlock domain
    assert info["status"]["Seccomp"] == "2" and caps(info, "CapEff") == 0

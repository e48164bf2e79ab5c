"""``sandbox doctor`` on this machine, through the CLI (root: the cgroup trial needs it)."""

from __future__ import annotations

import json

import pytest
from sbxtest import FEATURES, run_cli

pytestmark = [
    pytest.mark.requires("root"),
    pytest.mark.skipif(bool(FEATURES["kvm_guest"]), reason="the guest has its own doctor test"),
]


@pytest.mark.usefixtures("no_leftovers")
def test_doctor_json_describes_this_host(tmp_path):
    r = run_cli(["doctor", "--json"], tmp=tmp_path)
    assert r.rc in (0, 1), r.err
    data = json.loads(r.out)
    checks = {c["name"]: c for c in data["checks"]}
    assert set(checks) == {
        "kernel", "cgroups", "landlock", "apparmor", "seccomp", "userns", "overlay", "container"
    }  # fmt: skip
    assert checks["landlock"]["detail"]["abi"] == FEATURES["landlock"]
    assert checks["apparmor"]["detail"]["enabled"] == FEATURES["apparmor"]
    mode = checks["cgroups"]["detail"]["mode"]
    assert mode == ("v2" if FEATURES["cgroup_v2"] else mode)
    assert "kill_process" in checks["seccomp"]["detail"]["actions"]
    strict = data["profiles"]["strict"]
    assert set(strict["layers"]) == {
        "namespaces", "overlay", "capabilities", "no_new_privs",
        "landlock", "apparmor", "seccomp", "cgroups",
    }  # fmt: skip
    # the same decision `sandbox exec --profile strict` makes here
    ran = run_cli(["exec", "--profile", "strict", "--", "/bin/true"], tmp=tmp_path)
    assert strict["runs"] == (ran.rc == 0), (strict, ran.err)
    if strict["runs"]:
        for layer, st in strict["layers"].items():
            assert ran.record["enforcement"][layer]["state"] == st["state"], layer
    assert r.rc == (0 if all(p["runs"] for p in data["profiles"].values()) else 1)


def test_doctor_text(tmp_path):
    r = run_cli(["doctor"], tmp=tmp_path)
    assert r.out.startswith("sandbox doctor: what this host can enforce")
    assert "shipped profiles:" in r.out and "  strict: " in r.out

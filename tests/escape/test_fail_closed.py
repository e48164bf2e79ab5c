"""Fail closed: strict enforces every required layer here, and refuses when one is missing.

Layers are made unavailable with the test-only ``SANDBOX_TEST_HIDE_LAYERS``
hook (sandbox/host.py: the host probe reports them missing). A refusal is
exit 125 and one line naming the layer and the reason, and leaves nothing
behind (no mount, run lock, cgroup leaf or process: ``no_leftovers``). A
layer marked ``degradable`` that is unavailable runs, recorded ``off``.
"""

from __future__ import annotations

import pytest
from sbxtest import FEATURES, run_cli

pytestmark = pytest.mark.requires("root", "gcc")

REQUIRED = ("namespaces", "overlay", "capabilities", "no_new_privs", "seccomp", "cgroups")


def run(tmp_path, *args: str, hide: str = "", profile: str = "strict"):
    env = {"SANDBOX_TEST_HIDE_LAYERS": hide} if hide else None
    return run_cli(["exec", "--profile", profile, *args], tmp=tmp_path, env=env)


def test_strict_enforces_every_required_layer_fully_here(tmp_path):
    r = run(tmp_path, "--", "/bin/true")
    assert r.rc == 0, r.err
    states = r.record["enforcement"]
    for layer in (*REQUIRED, "landlock"):
        assert states[layer]["state"] == "full", (layer, states[layer])
    # AppArmor is degradable in strict: off where the kernel has none, Landlock mediates files
    if not FEATURES["apparmor"]:
        assert states["apparmor"] == {"state": "off", "detail": "kernel has no AppArmor"}


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(
    ("hide", "layer", "reason"),
    [
        ("seccomp", "seccomp", "hidden by the test hook"),
        ("landlock,apparmor", "landlock", "file mediation needs Landlock (ABI >= 2) or AppArmor"),
        ("namespaces", "namespaces", "hidden by the test hook"),
        ("overlay", "overlay", "hidden by the test hook"),
        ("capabilities", "capabilities", "hidden by the test hook"),
        ("no_new_privs", "no_new_privs", "hidden by the test hook"),
        ("cgroups", "cgroups", "hidden by the test hook"),
    ],
)
def test_a_missing_required_layer_refuses_the_run(tmp_path, hide, layer, reason):
    r = run(tmp_path, "--", "/bin/true", hide=hide)
    assert r.rc == 125
    assert r.err.count("\n") == 1, r.err
    assert f"layer '{layer}' is required but cannot be enforced here" in r.err
    assert reason in r.err
    assert r.record["status"] == 125 and r.record["exit_code"] is None  # nothing ran


@pytest.mark.skipif(FEATURES["apparmor"], reason="with AppArmor, it mediates files alone")
@pytest.mark.usefixtures("no_leftovers")
def test_landlock_missing_without_apparmor_refuses(tmp_path):
    r = run(tmp_path, "--", "/bin/true", hide="landlock")
    assert r.rc == 125 and r.err.count("\n") == 1
    assert "file mediation" in r.err and "Landlock: hidden by the test hook" in r.err


def _profile(tmp_path, name: str, layers: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'extends = "strict"\n[layers]\n{layers}\n')
    return str(path)


@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize(
    ("layer", "layers", "check", "expect"),
    [
        ("seccomp", 'seccomp = "degradable"', "grep ^Seccomp: /proc/self/status", "Seccomp:\t0"),
        (
            "landlock",
            'landlock = "degradable"\nfile_mediation = false',
            "ls -d /run",
            "/run",
        ),
    ],
)
def test_a_missing_degradable_layer_runs_recorded_off(tmp_path, layer, layers, check, expect):
    """The record says off, and it is: the payload sees the layer missing."""
    profile = _profile(tmp_path, f"degradable-{layer}", layers)
    r = run(tmp_path, "--", "/bin/sh", "-c", check, hide=layer, profile=profile)
    assert r.rc == 0, r.err
    assert r.record["enforcement"][layer] == {
        "state": "off",
        "detail": "hidden by the test hook (SANDBOX_TEST_HIDE_LAYERS)",
    }
    assert expect in r.out
    assert f"WARNING: layer {layer} is off" in r.err


@pytest.mark.usefixtures("no_leftovers")
def test_an_unknown_ablation_is_refused(tmp_path):
    r = run(tmp_path, "--test-ablate", "landlok", "--", "/bin/true")
    assert r.rc == 125 and r.err.count("\n") == 1 and "unknown --test-ablate landlok" in r.err

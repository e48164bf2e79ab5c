"""Same decisions on both paths, host side: Landlock alone against the policy's decisions.

tests/access_matrix.py defines the accesses and what the policy decides for
each (AppArmor makes exactly those decisions: tests/guest checks it). Here
Landlock, at this host's ABI, must decide the same except where
``sandbox.apparmor.compare.differences`` lists a difference, which must show.
"""

from __future__ import annotations

import pytest
from access_matrix import (
    accesses,
    check_baseline,
    check_layer,
    clear_out,
    layer_decided,
    outside_path,
    parse,
    results,
    write_profile,
)
from sbxtest import FEATURES, run_cli

from sandbox.apparmor.compare import differences
from sandbox.policy.load import load_profile

pytestmark = [
    pytest.mark.requires("root", "gcc", "landlock>=2"),
    pytest.mark.skipif(bool(FEATURES["kvm_guest"]), reason="the guest runs its own matrix"),
]


@pytest.fixture(scope="module")
def matrix(probes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("matrix")
    prof = write_profile(tmp)
    acc = accesses(outside_path())

    def run(flags):
        clear_out(tmp)
        argv = ["exec", "--profile", str(prof), *flags, "--", str(probes["fsops"])]
        r = run_cli([*argv, *(a.op for a in acc)], tmp=tmp)
        assert r.rc == 0, r.err
        return parse(r.out)

    policy = load_profile(str(prof)).policy
    return {
        "acc": acc,
        "landlock": results(run, ["apparmor"], acc),
        "baseline": results(run, ["apparmor", "landlock"], acc),
        "diffs": {d.key for d in differences(policy, FEATURES["landlock"])},
    }


def test_landlock_decides_as_the_policy_except_the_listed_differences(matrix):
    problems = check_layer(matrix["landlock"], matrix["acc"], matrix["diffs"], "landlock")
    assert not problems, "\n".join(problems)


def test_the_listed_differences_at_this_abi(matrix):
    expect = {"mmap-exec", "deny-inside-tree", "host-stdio"}
    if FEATURES["landlock"] < 3:
        expect.add("truncate")
    assert matrix["diffs"] >= expect


def test_without_the_file_layers_the_denials_are_gone(matrix):
    problems = check_baseline(matrix["baseline"], matrix["acc"])
    assert not problems, "\n".join(problems)
    assert len(layer_decided(matrix["acc"])) >= 6


@pytest.mark.skipif(bool(FEATURES["apparmor"]), reason="this host has AppArmor")
def test_strict_runs_with_landlock_in_apparmors_place(probes, tmp_path):
    """Issue 6's "done when", host half: no AppArmor here, Landlock mediates files."""
    r = run_cli(
        ["exec", "--profile", "strict", "--", str(probes["fsops"]), "list:/var", "attr"],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err
    enf = r.record["enforcement"]
    assert enf["apparmor"] == {"state": "off", "detail": "kernel has no AppArmor"}
    assert enf["landlock"]["state"] in ("full", "partial")
    assert f"ABI {FEATURES['landlock']}" in enf["landlock"]["detail"]
    got = parse(r.out)
    assert got["list:/var"] == "EACCES"  # Landlock's denial: nothing else is there
    assert got["attr"] == "EINVAL"  # no LSM answers attr/current

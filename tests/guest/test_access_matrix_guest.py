"""Same decisions on both paths, guest side: AppArmor alone, Landlock (ABI 2) alone, both, neither.

tests/access_matrix.py defines the accesses and the policy's decision for
each. In the guest AppArmor alone must make exactly those decisions, Landlock
alone the same except where ``sandbox.apparmor.compare.differences(policy, 2)``
lists a difference (which must show), both together the stricter of the two,
and with both ablated only the mounts, modes and namespaces decide.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from access_matrix import (
    accesses,
    check_baseline,
    check_layer,
    clear_out,
    differing,
    layer_decided,
    outside_path,
    parse,
    results,
    table,
    write_profile,
)
from guestkit import run_cli_fast
from sbxtest import build_probes

from sandbox.apparmor.compare import differences
from sandbox.policy.load import load_profile


def _apparmor_active() -> bool:
    try:
        return "apparmor" in Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1" or not _apparmor_active() or os.geteuid() != 0,
    reason="needs the kvm-run guest as root (KVM_RUN=1, apparmor in /sys/kernel/security/lsm)",
)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, request):
    os.environ.setdefault("SANDBOX_STATE_DIR", "/tmp/sandbox-state")
    fsops = build_probes()["fsops"]
    tmp = tmp_path_factory.mktemp("matrix")
    prof = write_profile(tmp)
    acc = accesses(outside_path())

    def run(flags):
        clear_out(tmp)
        argv = ["exec", "--profile", str(prof), *flags, "--", str(fsops)]
        r = run_cli_fast([*argv, *(a.op for a in acc)], tmp=tmp)
        assert r.rc == 0, r.err
        return parse(r.out)

    m = {
        "acc": acc,
        "apparmor": results(run, ["landlock"], acc),
        "landlock": results(run, ["apparmor"], acc),
        "both": results(run, [], acc),
        "neither": results(run, ["apparmor", "landlock"], acc),
        "diffs": {d.key for d in differences(load_profile(str(prof)).policy, 2)},
    }
    cols = {k: m[k] for k in ("apparmor", "landlock", "both", "neither")}
    capman = request.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled() if capman else _null():
        print("\naccess matrix (guest: AppArmor, Landlock ABI 2)\n" + table(cols, acc))
    return m


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_apparmor_decides_as_the_policy(matrix):
    problems = check_layer(matrix["apparmor"], matrix["acc"], set(), "apparmor")
    assert not problems, "\n".join(problems)


def test_landlock_abi2_decides_the_same_except_the_listed_differences(matrix):
    # host-stdio is shown by test_exec_guest (it needs a host file as stdin)
    assert matrix["diffs"] == {"mmap-exec", "truncate", "deny-inside-tree", "host-stdio"}
    problems = check_layer(matrix["landlock"], matrix["acc"], matrix["diffs"], "landlock")
    assert not problems, "\n".join(problems)
    diff = differing(matrix["apparmor"], matrix["landlock"])
    assert set(diff) == {
        "mmap PROT_EXEC a file of a non-exec tree",
        "run a non-exec file through ld.so",
        "truncate a file in a read-only tree",
        "read a file a deny rule names in a bind",
    }, diff


def test_both_layers_together_decide_as_the_policy(matrix):
    problems = check_layer(matrix["both"], matrix["acc"], set(), "both")
    assert not problems, "\n".join(problems)


def test_without_the_file_layers_the_denials_are_gone(matrix):
    problems = check_baseline(matrix["neither"], matrix["acc"])
    assert not problems, "\n".join(problems)
    assert len(layer_decided(matrix["acc"])) >= 6

"""Differential test: the same plans through both launchers, the same sandbox from inside and out.

Every shipped profile, and policies drawn by hypothesis (fuzz/strategies.py)
where they can run, go through the Python reference and the native launcher;
the probe (tests/probes/inside.c) reports from inside: ids and their maps,
every capability set, securebits, no_new_privs, seccomp mode and filter count,
what Landlock (and everything else) lets it open or create, the mount table,
namespaces, cgroup membership, rlimits, open fds, cwd, environment, hostname,
the clock. Values that differ by construction from run to run (namespace
inodes, mount ids, a run's host slot uid, fd numbers inside overlay options)
are normalised, and namespace inodes are checked to exist and differ from the
host's. Outside: the run record and leftovers (``no_leftovers``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from sbxtest import ROOT

from sandbox import Sandbox
from sandbox.errors import SandboxError, SpawnError

pytestmark = [pytest.mark.requires("root"), pytest.mark.usefixtures("no_leftovers")]
PROFILES = sorted(
    str(p.relative_to(ROOT / "profiles")) for p in (ROOT / "profiles").rglob("*.toml")
)
STATUS_KEYS = (
    "Uid", "Gid", "Groups", "NStgid", "NSpid", "NSpgid", "NSsid", "CapInh", "CapPrm",
    "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "Umask",
    "Speculation_Store_Bypass", "SpeculationIndirectBranch",
)  # fmt: skip
HOST_NS = {k: os.readlink(f"/proc/self/ns/{k}") for k in os.listdir("/proc/self/ns")}


def _normalise(out: dict[str, Any]) -> dict[str, Any]:
    out = dict(out)
    out.pop("stat", None)
    status = dict(
        line.split(":\t", 1) for line in out.pop("status", "").splitlines() if ":\t" in line
    )
    out["status"] = {k: status.get(k) for k in STATUS_KEYS}
    mounts = []
    for line in out.pop("mountinfo", "").splitlines():
        f = line.split()
        rest = " ".join(f[2:])
        rest = re.sub(r"/proc/self/fd/\d+", "/proc/self/fd/N", rest)
        mounts.append(re.sub(r"\b\d+:\d+\b", "M:N", rest, count=1))
    out["mountinfo"] = mounts
    for key in ("uid_map", "gid_map"):  # the host side is the run's slot
        out[key] = [line.split()[0::2] for line in str(out[key]).splitlines()]
    ns = out.pop("ns")
    for kind, link in ns.items():
        base = kind.removesuffix("_for_children")
        base = {"mnt": "mnt"}.get(base, base)
        assert link != "?", kind
        if base in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"):
            assert link != HOST_NS.get(base), f"{kind} is the host's"
    out["ns_kinds"] = sorted(ns)
    out["monotonic_small"] = out.pop("monotonic_s") < 30
    return out


def _run(launcher: str, profile: Any, probe: Path) -> tuple[str, dict[str, Any]]:
    logging.disable(logging.WARNING)
    try:
        with Sandbox(profile, launcher=launcher) as sb:
            try:
                r = sb.run([str(probe)])
            except SpawnError as e:
                # The same step and errno; the wording of the message is each launcher's.
                return "refused", {"error": "SpawnError", "step": e.step, "errno": e.errno}
            except SandboxError as e:
                msg = re.sub(r"sbx-[0-9T]+-[0-9a-f]+", "sbx-RUN", str(e))
                return "refused", {"error": type(e).__name__, "message": msg}
    finally:
        logging.disable(logging.NOTSET)
    rec = r.record()
    for key in ("run_id", "host_uid", "verification"):
        rec.pop(key)
    keep = ("verdict", "exit_code", "signal", "status", "policy_digest", "profile", "id_mode",
            "enforcement", "violation", "denied", "message", "notes", "collect_errors")  # fmt: skip
    rec = {k: v for k, v in rec.items() if k in keep}
    rec = json.loads(re.sub(r"sbx-[0-9T]+-[0-9a-f]+", "sbx-RUN", json.dumps(rec)))
    for v in [rec.get("violation"), *rec.get("denied", [])]:
        if v:
            v.pop("args", None)  # pointers: ASLR differs run to run
    if r.verdict.value != "OK" or not r.stdout:
        return "record", rec
    return "inside", {"record": rec, "inside": _normalise(json.loads(r.stdout))}


def _compare(profile: Any, probes: dict[str, Path]) -> None:
    py = _run("python", profile, probes["inside"])
    nat = _run("native", profile, probes["inside"])
    assert py[0] == nat[0], (py, nat)
    if py[0] == "inside":
        for key in py[1]["inside"]:
            assert py[1]["inside"][key] == nat[1]["inside"].get(key), key
    assert py == nat


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_profiles_look_the_same_from_inside_and_out(profile, probes):
    _compare(str(ROOT / "profiles" / profile), probes)


def test_strict_is_seen_fully(probes):
    """The comparison above is not vacuous: under strict the probe ran and reported."""
    kind, out = _run("native", "strict", probes["inside"])
    assert kind == "inside"
    inside = out["inside"]
    assert inside["status"]["CapEff"] == "0000000000000000"
    assert inside["status"]["NoNewPrivs"] == "1" and inside["status"]["Seccomp"] == "2"
    assert inside["opens"]["create /usr/probe-new"] != 0
    assert inside["monotonic_small"]


@settings(
    max_examples=int(os.environ.get("SANDBOX_DIFF_EXAMPLES", "6")),
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is two real runs
)
@given(data=__import__("hypothesis").strategies.data())
def test_generated_policies_agree(data, probes):
    import sys

    sys.path.insert(0, str(ROOT / "fuzz"))
    from strategies import policies

    from sandbox.policy.profile import LoadedProfile

    policy = data.draw(policies())
    profile = LoadedProfile(policy, "<hypothesis>", ("<hypothesis>",))
    _compare(profile, probes)

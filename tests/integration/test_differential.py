"""Differential test: the same plans through both launchers, the same sandbox from inside and out.

Every shipped profile, and policies drawn by hypothesis (fuzz/strategies.py)
where they can run, go through the Python reference and the native launcher;
the probe (tests/probes/inside.c) reports from inside: ids and their maps,
every capability set, securebits, no_new_privs, seccomp mode and filter count,
what Landlock (and everything else) lets it open or create, the mount table,
namespaces, cgroup membership, rlimits, open fds, cwd, environment, hostname,
the clock. Values that differ by construction from run to run (namespace
inodes, mount ids, a run's host slot uid, fd numbers inside overlay options)
are normalised; namespace links are checked to exist and compared as "which
ones are the host's". Outside: the run record and leftovers (``no_leftovers``).
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
    slot = str(out["uid_map"]).split()[1] if str(out["uid_map"]).split() else "?"
    mounts = []
    for line in out.pop("mountinfo", "").replace(f"={slot},", "=SLOT,").splitlines():
        f = line.split()
        rest = " ".join(f[2:])
        rest = re.sub(r"/proc/self/fd/\d+", "/proc/self/fd/N", rest)
        rest = re.sub(r"\b(uid|gid)=" + slot + r"\b", r"\1=SLOT", rest)
        mounts.append(re.sub(r"\b\d+:\d+\b", "M:N", rest, count=1))
    out["mountinfo"] = mounts
    for key in ("uid_map", "gid_map"):  # the host side is the run's slot
        out[key] = [line.split()[0::2] for line in str(out[key]).splitlines()]
    ns = out.pop("ns")
    for kind, link in ns.items():
        assert link != "?", kind  # every namespace link exists
    # which namespaces are the host's (none under strict; the policy may share some)
    out["ns_shared_with_host"] = sorted(
        kind for kind, link in ns.items() if link == HOST_NS.get(kind.removesuffix("_for_children"))
    )
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
                msg = re.sub(r"sbx-(?:[0-9a-f]{8}-)?[0-9T]+-[0-9a-f]+", "sbx-RUN", str(e))
                return "refused", {"error": type(e).__name__, "message": msg}
    finally:
        logging.disable(logging.NOTSET)
    rec = r.record()
    for key in ("run_id", "host_uid", "verification"):
        rec.pop(key)
    keep = ("verdict", "exit_code", "signal", "status", "policy_digest", "profile", "id_mode",
            "enforcement", "violation", "denied", "message", "notes", "collect_errors")  # fmt: skip
    rec = {k: v for k, v in rec.items() if k in keep}
    rec = json.loads(re.sub(r"sbx-(?:[0-9a-f]{8}-)?[0-9T]+-[0-9a-f]+", "sbx-RUN", json.dumps(rec)))
    for v in [rec.get("violation"), *rec.get("denied", [])]:
        if v:
            v.pop("args", None)  # pointers: ASLR differs run to run
    if r.verdict.value != "OK" or not r.stdout:
        return "record", rec
    return "inside", {"record": rec, "inside": _normalise(json.loads(r.stdout))}


def _compare(profile: Any, probes: dict[str, Path]) -> str:
    py = _run("python", profile, probes["inside"])
    nat = _run("native", profile, probes["inside"])
    assert py[0] == nat[0], (py, nat)
    if py[0] == "inside":
        for key in py[1]["inside"]:
            assert py[1]["inside"][key] == nat[1]["inside"].get(key), key
    assert py == nat
    return py[0]


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
    assert inside["ns_shared_with_host"] == []


@settings(
    max_examples=int(os.environ.get("SANDBOX_DIFF_EXAMPLES", "6")),
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example is two real runs
)
@given(data=__import__("hypothesis").strategies.data())
def test_generated_variants_of_strict_agree(data, probes):
    """Runnable policies: strict with drawn identity, file system, limits and
    environment (the fully random ones below are nearly all refused
    before a launcher is involved, which compares only the refusal)."""
    from hypothesis import strategies as st

    from sandbox.policy.load import load_profile

    word = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
    overrides = {
        "identity": {
            "uid": data.draw(st.sampled_from([1, 1000, 4242, 65533])),
            "gid": data.draw(st.sampled_from([1, 1000, 31337])),
            "hostname": data.draw(word),
        },
        "filesystem": {
            "writable": [
                "/box",
                "/tmp",
                *data.draw(st.lists(word.map("/w-{}".format), max_size=2)),
            ],
            "tmpfs": [
                {"target": t} for t in data.draw(st.lists(word.map("/t-{}".format), max_size=2))
            ],
            "proc": data.draw(st.sampled_from(["pid", "full"])),
            "disk": data.draw(st.sampled_from(["16M", "64M"])),
        },
        "limits": {
            "open_files": data.draw(st.integers(16, 1024)),
            "stack": data.draw(st.sampled_from(["1M", "8M", "64M"])),
        },
        "env": {"vars": data.draw(st.dictionaries(word.map(str.upper), word, max_size=3))},
    }
    assert _compare(load_profile("strict", overrides), probes) == "inside"


@settings(
    max_examples=int(os.environ.get("SANDBOX_DIFF_EXAMPLES", "6")),
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
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

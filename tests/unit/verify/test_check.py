"""verify.check: shipped profiles green, compile failures become findings, the report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from verify_fixtures import policy

from sandbox.errors import PolicyError
from sandbox.host import HostFacts
from sandbox.policy.load import load_profile
from sandbox.verify import cache, core
from sandbox.verify.report import Report

HOST = HostFacts(kernel=(6, 18), arch="x86_64", euid=0, landlock_abi=7, apparmor=False)


@pytest.fixture(autouse=True)
def _fresh_memory():
    cache.clear_memory()
    yield
    cache.clear_memory()


@pytest.mark.parametrize("name", ["strict", "interp", "compile"])
def test_shipped_profiles_verify_clean(name: str) -> None:
    report = core.check(load_profile(name), HOST)
    assert report.ok and report.findings == (), report.render()
    states = {(r.layer, r.target): r.state for r in report.layers}
    assert states[("seccomp", "x86_64")] == "ok" and states[("seccomp", "x32")] == "ok"
    assert states[("seccomp", "i386")] == "skipped"  # socketcall multiplexer: documented refusal
    assert states[("landlock", "")] == "ok" and states[("mounts", "")] == "ok"
    assert states[("apparmor", "")] in ("ok", "skipped")


def test_report_round_trips_and_its_hash_covers_the_content() -> None:
    report = core.check(policy(seccomp={"deny": [], "allow": ["ptrace"]}), HOST)
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.hash == report.hash
    raw = report.to_dict()
    raw["findings"][0]["severity"] = "warning"
    with pytest.raises(ValueError, match="hash"):
        Report.from_dict(raw)
    assert "SBX110" in report.render() and "fix: " in report.render()


def test_compile_failures_become_findings(tmp_path: Path) -> None:
    parser = tmp_path / "apparmor_parser"
    parser.write_text(
        "#!/bin/sh\n[ \"$1\" = --version ] && echo 'version 3.0.8' && exit 0\n"
        "echo 'AppArmor parser error: nope' >&2; exit 1\n"
    )
    parser.chmod(0o755)
    bad = policy(filesystem={"binds": [{"source": "/no/such/src", "target": "/data"}]})
    report = core.check(bad, HOST, parser=str(parser))
    ids = {f.id for f in report.blocking}
    assert {"SBX304", "SBX306"} <= ids
    refused = policy(apparmor={"extra_rules": ["capability,"]})
    assert "SBX303" in {f.id for f in core.check(refused, HOST).blocking}
    i386_host = dataclasses.replace(HOST, arch="i386")
    assert "SBX301" in {f.id for f in core.check(policy(), i386_host).blocking}


def test_a_host_that_cannot_enforce_is_a_warning() -> None:
    bare = dataclasses.replace(HOST, landlock_abi=0, apparmor=False)
    report = core.check(load_profile("strict"), bare)
    assert report.ok
    (f,) = [f for f in report.findings if f.id == "SBX305"]
    assert f.severity == "warning" and "file mediation" in f.message


def test_policy_errors_raise() -> None:
    from sandbox.policy.model import Policy

    with pytest.raises(PolicyError):
        core.check(Policy(name="x", seccomp={"allow": ["nosuchcall"]}), HOST)

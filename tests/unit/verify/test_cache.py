"""verify.cache: the run path's cached_check (hits, misses, patched bytes, unsafe entries)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
from pathlib import Path

import pytest

from sandbox.errors import VerificationError
from sandbox.host import HostFacts
from sandbox.policy.load import load_profile
from sandbox.seccomp import bpf
from sandbox.seccomp.build import prepare
from sandbox.seccomp.tables import AUDIT_ARCH_X86_64, table
from sandbox.verify import cache, core
from sandbox.verify.report import Report

HOST = HostFacts(kernel=(6, 18), arch="x86_64", euid=0, landlock_abi=7, apparmor=False)


@pytest.fixture(autouse=True)
def _fresh_memory():
    cache.clear_memory()
    yield
    cache.clear_memory()


def patched_to_allow(art_bpf: bytes, victim: int) -> bytes:
    prog = bpf.Program.from_bytes(art_bpf)
    for pc, insn in enumerate(prog.insns):
        if insn.code == bpf.JMP | bpf.JEQ | bpf.K:
            insns = list(prog.insns)
            insns[pc] = dataclasses.replace(insn, k=victim)
            if bpf.Program(tuple(insns)).evaluate(victim, AUDIT_ARCH_X86_64) == 0x7FFF0000:
                return bpf.encode(insns)
    raise AssertionError("no patch point")


def test_run_path_catches_bytes_patched_to_allow_ptrace(tmp_path: Path) -> None:
    prof = load_profile("strict")
    art = prepare(prof.policy.seccomp, "x86_64")
    good = cache.cached_check(prof, HOST, seccomp=art, cache_dir=tmp_path)
    assert good.ok
    patched = dataclasses.replace(art, bpf=patched_to_allow(art.bpf, table("x86_64").nr("ptrace")))
    with pytest.raises(VerificationError) as info:
        cache.cached_check(prof, HOST, seccomp=patched, cache_dir=tmp_path)
    report = info.value.report
    assert isinstance(report, Report) and not report.ok
    msgs = [f.message for f in report.blocking if f.id == "SBX201"]
    assert any(m.startswith("ptrace on x86_64") and "BPF returns ALLOW" in m for m in msgs)
    assert "SBX201" in str(info.value) and "fix:" in str(info.value)
    assert len(list(tmp_path.glob("*.json"))) == 1  # the blocked report is never stored


def test_cache_hit_miss_and_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = core.check
    monkeypatch.setattr(core, "check", lambda *a, **k: calls.append(1) or real(*a, **k))
    prof = load_profile("strict")
    art = prepare(prof.policy.seccomp, "x86_64")
    tmp_path = tmp_path / "state" / "verified"
    first, hit = cache.verify(prof, HOST, seccomp=art, cache_dir=tmp_path)
    assert not hit and len(calls) == 1
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
    again, hit = cache.verify(prof, HOST, seccomp=art, cache_dir=tmp_path)
    assert hit and again == first and len(calls) == 1
    cache.clear_memory()
    from_disk, hit = cache.verify(prof, HOST, seccomp=art, cache_dir=tmp_path)
    assert hit and from_disk.hash == first.hash and len(calls) == 1
    _, hit = cache.verify(prof, HOST, seccomp=art, cache_dir=tmp_path, no_cache=True)
    assert not hit and len(calls) == 2
    other_host = dataclasses.replace(HOST, landlock_abi=3)
    _, hit = cache.verify(prof, other_host, seccomp=art, cache_dir=tmp_path)
    assert not hit and len(calls) == 3


def test_tampered_or_foreign_entries_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "verified"
    prof = load_profile("strict")
    cache.verify(prof, HOST, cache_dir=d)
    (entry,) = d.glob("*.json")
    raw = json.loads(entry.read_text())
    raw["body"]["report"]["findings"] = []
    raw["body"]["report"]["profile"] = "forged"
    entry.write_text(json.dumps(raw))
    cache.clear_memory()
    with caplog.at_level(logging.WARNING):
        report, hit = cache.verify(prof, HOST, cache_dir=d)
    assert not hit and report.profile == "strict" and "rejected" in caplog.text
    cache.clear_memory()
    os.chmod(d, 0o755)
    with caplog.at_level(logging.WARNING):
        _, hit = cache.verify(prof, HOST, cache_dir=d)
    assert not hit and "mode 0700" in caplog.text
    os.chmod(d, 0o700)
    cache.clear_memory()
    os.chmod(entry, 0o666)
    _, hit = cache.verify(prof, HOST, cache_dir=d)
    assert not hit


def test_key_covers_bytes_policy_and_host() -> None:
    prof = load_profile("strict")
    art = prepare(prof.policy.seccomp, "x86_64")
    base = cache.cache_key(prof, HOST, art)
    flipped = dataclasses.replace(art, bpf=art.bpf[:-1] + bytes([art.bpf[-1] ^ 1]))
    assert cache.cache_key(prof, HOST, flipped) != base
    assert cache.cache_key(load_profile("interp"), HOST, art) != base
    assert cache.cache_key(prof, dataclasses.replace(HOST, apparmor=True), art) != base
    assert cache.cache_key(prof, HOST, art) == base

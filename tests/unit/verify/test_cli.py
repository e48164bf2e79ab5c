"""The verify family on the command line: verify, explain, diff, seccomp import/export."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.cli.main import main
from sandbox.seccomp import bpf
from sandbox.seccomp.tables import AUDIT_ARCH_X86_64, table
from sandbox.verify import cache

ROOT = Path(__file__).resolve().parents[3]
PROFILES = sorted(str(p) for p in (ROOT / "profiles").glob("*.toml"))
FIXTURES = ROOT / "tests" / "fixtures" / "oci"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "default_dir", lambda: tmp_path / "verified")
    cache.clear_memory()


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_verify_shipped_profiles_is_green(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run("verify", *PROFILES, capsys=capsys)
    assert status == 0, out
    assert out.count("OK: 0 errors") == len(PROFILES)
    status, out, _ = run("verify", "strict", capsys=capsys)
    assert status == 0 and "(cached)" in out
    status, out, _ = run("verify", "--no-cache", "strict", capsys=capsys)
    assert status == 0 and "(cached)" not in out


def test_verify_catches_patched_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "strict.bpf"
    assert (
        run("seccomp", "export", "strict", "--format", "bpf", "-o", str(good), capsys=capsys)[0]
        == 0
    )
    prog = bpf.Program.from_bytes(good.read_bytes())
    victim = table("x86_64").nr("ptrace")
    for pc, insn in enumerate(prog.insns):
        insns = list(prog.insns)
        insns[pc] = dataclasses.replace(insn, k=victim)
        if insn.code == bpf.JMP | bpf.JEQ | bpf.K and (
            bpf.Program(tuple(insns)).evaluate(victim, AUDIT_ARCH_X86_64) == 0x7FFF0000
        ):
            break
    patched = tmp_path / "patched.bpf"
    patched.write_bytes(bpf.encode(insns))
    assert run("verify", "--bpf", str(good), "strict", capsys=capsys)[0] == 0
    status, out, _ = run("verify", "--bpf", str(patched), "strict", capsys=capsys)
    assert status == 1
    assert "SBX201 error   [seccomp] ptrace on x86_64" in out
    assert "BPF returns ALLOW, policy says USER_NOTIF" in out and "BLOCKED" in out


def test_every_finding_prints_its_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "loose.toml"
    bad.write_text(
        'name = "loose"\n[seccomp]\ngroups = ["basic_io", "process"]\n'
        'allow = ["ptrace", "mount", "io_uring_setup"]\n'
        '[capabilities]\nkeep = ["CAP_SYS_ADMIN"]\n[namespaces]\nnet = false\n'
    )
    status, out, _ = run("verify", str(bad), capsys=capsys)
    assert status == 1
    lines = out.splitlines()
    finding_lines = [i for i, line in enumerate(lines) if line.strip().startswith("SBX")]
    assert len(finding_lines) >= 5
    for i in finding_lines:
        assert lines[i + 1].strip().startswith("fix: ") and len(lines[i + 1].strip()) > 10
    status, out, _ = run("verify", "--json", str(bad), capsys=capsys)
    doc = json.loads(out)
    assert status == 1 and doc["ok"] is False
    assert all(f["fix"] for r in doc["reports"] for f in r["findings"])
    ids = {f["id"] for f in doc["reports"][0]["findings"]}
    assert {"SBX101", "SBX110", "SBX114", "SBX121"} <= ids


def test_verify_bad_profile_names_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "typo.toml"
    bad.write_text('[seccomp]\nallow = ["getpid",\n "ptrac"]\n')
    status, _, err = run("verify", str(bad), capsys=capsys)
    assert status == 2 and f"{bad}:3: seccomp.allow: unknown syscall 'ptrac'" in err


def test_explain_shows_every_artifact(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run("explain", "strict", capsys=capsys)
    assert status == 0
    for title in ("policy", "seccomp", "apparmor", "landlock", "capabilities", "mounts", "limits"):
        assert f"== {title} ==" in out
    assert "Landlock and AppArmor: what differs" in out
    assert "pseudo filter code" in out and "ioctl: arg1 & 0xffffffff in {0x5412, 0x541c}" in out
    assert 'default_action = "notify"' in out and "/usr             /usr" in out
    assert "mmap(PROT_EXEC)" in out
    _, out, _ = run("explain", "strict", "--section", "seccomp", "--bpf", capsys=capsys)
    assert "BPF, as loaded:" in out and "; ptrace" not in out and "; read" in out
    assert "== landlock ==" not in out


def test_diff(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run("diff", "strict", "interp", capsys=capsys)
    assert status == 1
    assert "seccomp x86_64: 17 newly allowed" in out and "+ epoll_create" in out
    assert "~ memory                       256M -> 512M" in out
    status, out, _ = run("diff", "strict", "strict", capsys=capsys)
    assert status == 0 and "no semantic difference" in out
    status, out, _ = run("diff", "--json", "interp", "strict", capsys=capsys)
    changes = json.loads(out)
    assert {"layer": "seccomp x86_64", "kind": "removed", "subject": "eventfd2"}.items() <= next(
        c for c in changes if c["subject"] == "eventfd2" and c["layer"] == "seccomp x86_64"
    ).items()


def test_seccomp_export_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run("seccomp", "export", "strict", capsys=capsys)
    doc = json.loads(out)
    # strict's notify default needs a listener engines lack: exported as the kill, said so
    assert status == 0 and doc["defaultAction"] == "SCMP_ACT_KILL_PROCESS"
    assert "notify" in doc["comment"]
    _, out, _ = run("seccomp", "export", "strict", "--format", "config", capsys=capsys)
    assert json.loads(out)["linux"]["seccomp"] == doc
    out_path = tmp_path / "moby.toml"
    status, out, err = run(
        "seccomp",
        "import",
        str(FIXTURES / "moby-like.json"),
        "-o",
        str(out_path),
        "--kernel",
        "6.1",
        capsys=capsys,
    )
    text = out_path.read_text()
    assert "# - socket: allowed only under argument conditions" in text
    assert status == 1 and "SBX110" in err  # ptrace is allowed by the JSON: verified, blocked
    status, _, err = run(
        "seccomp",
        "import",
        str(FIXTURES / "config.json"),
        "--extends",
        "strict",
        "-o",
        str(tmp_path / "cfg.toml"),
        capsys=capsys,
    )
    assert status == 0, err
    assert 'extends = "strict"' in (tmp_path / "cfg.toml").read_text()


@pytest.mark.requires("root")
def test_exec_does_not_import_the_verify_family() -> None:
    """A real ``sandbox exec`` with its caches warm: no verify machinery, no pydantic.

    The run still looks its verified report up (fail closed): the lookup lives
    in ``sandbox.verify.cache`` and ``report``, which import no checker.
    """
    heavy = (
        "pydantic",
        "sandbox.verify.core",
        "sandbox.verify.compile",
        "sandbox.verify.lint",
        "sandbox.verify.simulate",
        "sandbox.policy.model",
        "sandbox.policy.load",
        "sandbox.launcher.steps",
    )
    code = (
        "import sys\n"
        "from sandbox.cli import main as m\n"
        "try:\n"
        "    m.main(['exec', '--profile', 'strict', '--', '/bin/true'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        f"print(sorted(n for n in sys.modules if n.startswith({heavy!r})))\n"
    )
    for _ in range(2):  # the first fills the profile, filter and verification caches
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout

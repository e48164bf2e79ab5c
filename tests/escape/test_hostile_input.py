"""Hostile input is the attacker: imported JSON, profiles and the judge's working directory.

Issue 13, the second round: what a person (or program) who may write an
imported JSON, a profile, or files where a judge runs could do, and must
not. Each test is an attack that worked on b79e3bf:

- a syscall name in a JSON ended a header comment of the imported profile,
  and the rest of the name was TOML (a bind of the host's /etc, a higher
  CPU limit), which ``verify`` passed;
- ``seccomp import --extends strict`` let syscalls run that the JSON refuses
  (strict's groups were added to the JSON's allow-list);
- under an ALLOW default, conditional refusals were dropped in silence;
- a relative ``extends`` was looked up in the working directory first;
- a deeply nested profile or JSON ended in a traceback.

Where a layer stops the payload (seccomp, for the imported filter), the
attack runs in the ablation matrix: it must work with seccomp switched off.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from escape_kit import E, attack, judge, matrix
from sbxtest import run_cli

from sandbox.policy.load import load_profile
from sandbox.seccomp import reference
from sandbox.seccomp.groups import resolve

INJECTED = (
    'bogus\n\n[[filesystem.binds]]\nsource = "/etc"\ntarget = "/hostetc"\n'
    "[limits]\ncpu_time = 9999.0\n#"
)
BASICS = ["read", "write", "exit_group", "openat", "close", "mmap", "brk", "getppid"]


def write_json(tmp: Path, name: str, doc: dict) -> Path:
    path = tmp / name
    path.write_text(json.dumps(doc))
    return path


def import_(tmp: Path, src: Path, *extra: str) -> tuple[int, str, Path]:
    out = tmp / "imported.toml"
    r = run_cli(["seccomp", "import", str(src), "-o", str(out), *extra], tmp=tmp)
    return r.rc, r.err, out


@pytest.mark.parametrize("extends", [[], ["--extends", "strict"]], ids=["plain", "extends"])
def test_a_syscall_name_cannot_write_toml(tmp_path, extends):
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_\n[limits]\nwall_time = 1e9"],
        "syscalls": [
            {"names": BASICS, "action": "SCMP_ACT_ALLOW"},
            {"names": [INJECTED], "action": "SCMP_ACT_ALLOW"},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [INJECTED]}},
        ],
    }
    rc, err, out = import_(tmp_path, write_json(tmp_path, "evil.json", doc), *extends)
    assert rc == 0, err
    text = out.read_text()
    raw = tomllib.loads(text)
    assert set(raw) <= {"extends", "replace", "name", "description", "seccomp"}, raw
    policy = load_profile(str(out)).policy
    assert policy.filesystem.binds == []
    assert policy.limits.cpu_time == (10.0 if extends else None)
    assert policy.limits.wall_time == (30.0 if extends else None)
    # the names are still reported, quoted: as data in a comment, never as lines
    assert '"bogus\\n\\n[[filesystem.binds]]' in text
    assert all(line.startswith("#") for line in text.split("\n\n", 1)[0].splitlines())


def test_a_file_name_cannot_write_toml_either(tmp_path):
    src = write_json(
        tmp_path,
        "x\n[limits]\ncpu_time = 9999.0\n#.json",  # a file name holds no '/'
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": BASICS, "action": "SCMP_ACT_ALLOW"}],
        },
    )
    rc, err, out = import_(tmp_path, src)
    assert rc == 0, err
    assert load_profile(str(out)).policy.limits.cpu_time is None


# The JSON: 40-odd syscalls a C program needs, and none of ioctl, socket, clone.
REFUSED_BY_JSON = {
    "ioctl", "socket", "socketpair", "clone", "clone3", "fork", "vfork", "mkdir", "mkdirat",
    "pipe", "pipe2", "kill", "tkill", "tgkill",
}  # fmt: skip
NR = {"socket": 41, "clone": 56, "kill": 62, "mkdir": 83, "pipe2": 293}
AF_UNIX, SOCK_STREAM, SIGCHLD = 1, 1, 17


def _narrow_json(tmp: Path) -> Path:
    strict = resolve(load_profile("strict").policy.seccomp)
    allowed = sorted(reference.runnable(strict, "x86_64") - REFUSED_BY_JSON)
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}],
    }
    return write_json(tmp, "narrow.json", doc)


def test_extends_never_allows_more_than_the_json(tmp_path):
    rc, err, out = import_(tmp_path, _narrow_json(tmp_path), "--extends", "strict")
    assert rc == 0, err
    spec = resolve(load_profile(str(out)).policy.seccomp)
    runs = reference.runnable(spec, "x86_64")
    assert not runs & REFUSED_BY_JSON, sorted(runs & REFUSED_BY_JSON)
    strict = resolve(load_profile("strict").policy.seccomp)
    assert runs <= reference.runnable(strict, "x86_64")
    # strict's argument rules stay where the JSON allows a syscall outright
    assert spec.rule_for("personality") is not None


# syscall -> (arguments, status when it runs: 0, or EFAULT for an unmapped pointer)
ATTEMPTS = {
    "socket": ([AF_UNIX, SOCK_STREAM, 0], 0),
    "mkdir": ([0x10000, 0o700], E.EFAULT),
    "pipe2": ([0x10000, 0], E.EFAULT),
    "clone": ([SIGCHLD, 0, 0, 0, 0], 0),
    "kill": ([0, 0], 0),
}


@pytest.mark.requires("root", "gcc")
@pytest.mark.parametrize("name", sorted(ATTEMPTS))
@matrix("seccomp")
def test_what_the_json_refuses_does_not_run(probes, tmp_path, ablate, name):
    """socket(AF_UNIX), mkdir, pipe2, clone and kill ran under the imported profile on
    b79e3bf (strict's groups were added back); the JSON answers them EPERM."""
    rc, err, out = import_(tmp_path, _narrow_json(tmp_path), "--extends", "strict")
    assert rc == 0, err
    args, ran = ATTEMPTS[name]
    r = attack(
        probes["try_syscall"],
        ["native", str(NR[name]), *(str(a) for a in args)],
        ablate,
        tmp_path,
        options=["--profile", str(out)],
    )
    if "seccomp" in ablate:  # the all-off half: the call runs, so the filter is what stops it
        assert r.record["enforcement"]["seccomp"]["state"] == "off"
        assert r.rc == ran, (r.rc, r.err)
    else:
        judge(r, ablate, {"seccomp": E.EPERM})


def test_an_allow_default_says_what_it_cannot_keep_and_verify_blocks_it(tmp_path):
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["ioctl"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 0x5412, "op": "SCMP_CMP_EQ"}],
            },
            {"names": ["no_such_call_2099"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    rc, err, out = import_(tmp_path, write_json(tmp_path, "allow.json", doc))
    assert rc == 1, err  # written, and verify's SBX103 blocks it
    assert "SBX103" in err
    text = out.read_text()
    assert "ioctl: refused under argument conditions" in text and "denied outright" in text
    assert 'the JSON refuses "no_such_call_2099", which no x86 table names' in text
    spec = resolve(load_profile(str(out)).policy.seccomp)
    assert "ioctl" in spec.deny  # the conditional refusal, kept the only way it can be


def test_relative_extends_cannot_be_planted_in_the_working_directory(tmp_path):
    home, cwd = tmp_path / "profiles", tmp_path / "judge"
    home.mkdir()
    cwd.mkdir()
    (home / "base.toml").write_text('extends = "strict"\n')
    (home / "job.toml").write_text('extends = "base.toml"\n')
    (cwd / "base.toml").write_text(
        'extends = "strict"\n[layers]\nseccomp = "disabled"\n[limits]\nwall_time = 9999.0\n'
    )
    r = run_cli(["verify", "--json", str(home / "job.toml")], tmp=cwd)
    assert r.rc == 0, r.err
    assert "disabled" not in r.out and "9999" not in r.out


@pytest.mark.parametrize("verb", ["exec", "verify"])
def test_a_deeply_nested_profile_is_one_line(tmp_path, verb):
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    argv = ["verify", str(deep)]
    if verb == "exec":
        argv = ["exec", "--profile", str(deep), "/bin/true"]
    r = run_cli(argv, tmp=tmp_path)
    assert r.rc == (125 if verb == "exec" else 2), r.err
    assert r.err == f"sandbox: {deep}: tables or arrays nest deeper than 32 levels\n"


def test_a_deeply_nested_json_is_one_line(tmp_path):
    src = tmp_path / "deep.json"
    src.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "x": ' + "[" * 100000 + "]" * 100000 + "}")
    rc, err, _ = import_(tmp_path, src)
    assert rc == 2 and err == f"sandbox: {src}: arrays or objects nest too deeply\n", err


# ---------------------------------------------------------------- learning
SYNC, FCHOWN = 162, 93


@pytest.mark.requires("root", "gcc")
@pytest.mark.usefixtures("no_leftovers")
def test_a_learned_program_gets_no_flagged_syscall_or_capability(probes, tmp_path):
    """Issue 13 item 14: the program being learned is the attacker. On b79e3bf it
    asked for sync (and CAP_CHOWN, by failing fchown to uid 0) and the profile
    granted both; verify passed it with one warning."""
    out = tmp_path / "sync.toml"
    r = run_cli(
        ["learn", "-o", str(out), "--", str(probes["try_syscall"]), "native", str(SYNC)],
        tmp=tmp_path,
    )
    assert r.rc == 0, r.err  # written, complete, verified identical
    policy = load_profile(str(out)).policy
    assert "sync" not in policy.seccomp.allow and policy.seccomp.errno.get("sync") == "EPERM"
    assert "verify flags it (SBX123)" in out.read_text()
    ran = run_cli(["exec", "--profile", str(out), "--", str(probes["try_syscall"]), "native",
                   str(SYNC)], tmp=tmp_path)  # fmt: skip
    assert ran.rc == E.EPERM, ran.err  # answered EPERM while learning and now alike

    out = tmp_path / "chown.toml"
    argv = [str(probes["try_syscall"]), "native", str(FCHOWN), "1", "0", "0"]
    r = run_cli(["learn", "-o", str(out), "--", *argv], tmp=tmp_path)
    assert r.rc == 0, r.err
    assert load_profile(str(out)).policy.capabilities.keep == []
    assert "CAP_CHOWN: needed by fchown(uid=0)" in out.read_text()
    assert "not granted: verify flags every kept capability" in out.read_text()

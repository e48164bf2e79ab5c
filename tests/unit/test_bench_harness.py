"""The bench's own logic, not its figures: peers found and refused, filters, floor output.

Speed targets live in bench/ and are never asserted here; these tests check
that the bench survives peers that cannot run (issue 12), that a failing
command is never taken for a fast one, and that strict's filter reaches the
peers intact.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from bench import common, floor, peers, strictfilter


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


# ----------------------------------------------------------- discovery ---


def test_search_dirs_cover_env_tree_and_path(tmp_path: Path) -> None:
    iso1 = _script(tmp_path / "peers" / "isolate1" / "isolate", "exit 0\n")
    iso2 = _script(tmp_path / "peers" / "isolate2" / "bin" / "isolate", "exit 0\n")
    nsj = _script(tmp_path / "peers" / "nsjail", "exit 0\n")
    onpath = tmp_path / "path"
    onpath.mkdir()
    os.symlink(iso1, onpath / "isolate")  # the same binary again: found once
    env = {peers.ENV: str(tmp_path / "peers"), "PATH": str(onpath)}
    dirs = peers.search_dirs(env)
    assert peers.find("isolate", dirs) == [str(iso1), str(iso2)]
    assert peers.find("nsjail", dirs) == [str(nsj)]
    assert peers.find("runc", dirs) == []


def test_search_dirs_ignore_missing_env_dir(tmp_path: Path) -> None:
    env = {peers.ENV: str(tmp_path / "absent"), "PATH": ""}
    assert peers.search_dirs(env) == []


@pytest.fixture
def only_fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH and the peers variable point at a directory of fake peers only."""
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    monkeypatch.setenv("PATH", str(fakes))
    monkeypatch.setenv(peers.ENV, str(fakes))
    return fakes


def test_peers_that_cannot_run_are_reported_not_raised(tmp_path: Path, only_fakes: Path) -> None:
    # runc: `spec` works, every container fails (the hybrid-cgroup refusal of crun, say)
    _script(
        only_fakes / "runc",
        'case "$1" in spec) printf \'{"process":{},"mounts":[],"linux":{}}\' > "$3/config.json";;\n'
        '*) echo "cgroups in hybrid mode not supported" >&2; exit 1;; esac\n',
    )
    # crun: even `spec` fails
    _script(only_fakes / "crun", 'echo "crun: broken" >&2; exit 1\n')
    _script(only_fakes / "nsjail", 'echo "[F][x] Couldn\'t launch" >&2; exit 255\n')
    _script(
        only_fakes / "isolate",
        'case "$*" in *--version*) echo "The process isolator 1.10.1";;\n'
        '*--init*) echo "Control group root /sys/fs/cgroup/x does not exist" >&2; exit 2;;\n'
        "*) exit 0;; esac\n",
    )
    probe = _script(tmp_path / "isoprobe", "exit 0\n")
    work = tmp_path / "work"
    work.mkdir()
    found, lines = peers.discover(work, probe, None)
    assert found == []
    text = "\n".join(lines)
    assert "runc: installed, cannot run a container here: exit 1: cgroups in hybrid mode" in text
    assert "crun: `crun spec` failed: exit 1: crun: broken" in text
    assert "nsjail" in text and "Couldn't launch" in text
    assert "isolate 1.10.1 --cg: cannot run here: exit 2: Control group root" in text


def test_peer_that_runs_is_kept_and_probed(tmp_path: Path, only_fakes: Path) -> None:
    nsjail = _script(
        only_fakes / "nsjail",
        'case "$*" in *isoprobe*) printf "ns:user 7\\nns:pid 2\\nuid 1000\\ncapeff 0\\n'
        'nnp 1\\nseccomp 2\\nroot_ro 1\\n";; esac\nexit 0\n',
    )
    probe = _script(tmp_path / "isoprobe", "exit 0\n")
    work = tmp_path / "work"
    work.mkdir()
    found, lines = peers.discover(work, probe, None)
    assert "isolate: not found" in "\n".join(lines)
    assert [p.family for p in found] == ["nsjail"]
    assert found[0].argv[0] == str(nsjail) and found[0].argv[-1] == "/bin/true"
    assert "strict's filter could not be exported" in found[0].note
    host = {"ns:user": "1", "ns:pid": "2", "uid": "0"}
    peers.probe_all(found, host)
    assert found[0].isolation.startswith("new ns: 1/8 (shares pid; unknown mnt, net, ipc, uts,")
    assert "uid 1000" in found[0].isolation
    assert "seccomp" in found[0].isolation and "no seccomp" not in found[0].isolation


def test_preflight_checks_every_command_of_a_sequence() -> None:
    ok = peers.Peer("ok", ["/bin/true", ":::", "/bin/true"], [], 1)
    bad = peers.Peer("bad", ["/bin/true", ":::", "/bin/false", ":::", "/bin/true"], [], 1)
    assert peers.preflight(ok) is None
    assert peers.preflight(bad) == "bad: cannot run here: exit 1: no output"
    assert peers.commands(["a", "x", ":::", "b"]) == [["a", "x"], ["b"]]


def test_why_prefers_fatal_log_lines() -> None:
    err = "[I][t] starting\n[E][t] Could not compile policy: syntax error\n[I][t] exiting\n"
    assert peers.why(255, "", err) == "exit 255: [E][t] Could not compile policy: syntax error"
    assert peers.why(1, "", "") == "exit 1: no output"


def test_describe_reads_isolation_against_the_host() -> None:
    host = {f"ns:{n}": str(i) for i, n in enumerate(peers.NS)}
    same = dict(host, uid="0", capeff="000001ffffffffff", nnp="0", seccomp="0", root_ro="0")
    assert peers.describe(same, host).startswith("new ns: 0/8 (shares user, pid")
    assert "caps 000001ffffffffff" in peers.describe(same, host)
    isolated = {f"ns:{n}": str(100 + i) for i, n in enumerate(peers.NS)}
    isolated |= {"uid": "1000", "capeff": "0000000000000000", "nnp": "1", "seccomp": "2"}
    isolated |= {"root_ro": "1", "net_ifaces": "lo"}
    assert peers.describe(isolated, host) == (
        "new ns: 8/8, uid 1000, caps none, nnp, seccomp, / ro, net lo"
    )
    assert peers.describe({}, host) == "probe printed nothing"


# -------------------------------------------------------- strict filter ---


def test_kafel_keeps_argument_rules_and_errno() -> None:
    doc: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_NOTIFY",
        "syscalls": [
            {"names": ["read", "write", "no_such_call"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {
                "names": ["ioctl"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": 1,
                "args": [{"index": 1, "value": 0x5412, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }
    nr = {"read": 0, "write": 1, "clone": 56, "clone3": 435, "ioctl": 16}
    text = strictfilter._kafel(doc, nr)
    assert text.endswith("USE strict DEFAULT KILL_PROCESS\n")
    assert "SYSCALL[0],\n    SYSCALL[1]," in text
    assert "SYSCALL[56](a0, a1, a2, a3, a4, a5) { (a0 & 0x7e020000) == 0x0 }" in text
    assert "ERRNO(38) {\n    SYSCALL[435]" in text
    assert "SYSCALL[16](a0, a1, a2, a3, a4, a5) { a1 == 0x5412 }" in text
    assert "no_such_call" not in text


def test_runtime_section_never_kills_on_default() -> None:
    sf = strictfilter.StrictFilter(
        {"defaultAction": "SCMP_ACT_NOTIFY", "syscalls": []}, Path("b"), Path("n"), Path("k"), 0
    )
    doc = sf.oci_for_runtime()
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == 1
    assert sf.oci["defaultAction"] == "SCMP_ACT_NOTIFY"  # the original is left alone


# ---------------------------------------------------------------- floor ---


def test_floor_output_parsed() -> None:
    out = (
        "info\tseccomp\tlinear 433 instructions\n"
        "row\tseccomp:strict\tfailed: no -B strict BPF given\n"
        "row\tbare\t10\t600000\t500000\t700000\t800000\t0\t0\t600000\t700000\t0\tfork+exec+wait\n"
        "row\tlo-up\t10\t1100000\t1000000\t1200000\t1300000\t1000000\t900000\t70000\t90000\t1\t"
        "net ns\n"
    )
    rows, info, failed = floor.parse(out)
    assert info == ["seccomp: linear 433 instructions"]
    assert failed == ["seccomp:strict: failed: no -B strict BPF given"]
    assert [r.name for r in rows] == ["bare", "lo-up"]
    assert rows[1].diff_med == 70000 and rows[1].in_floor and rows[1].what == "net ns"
    assert rows[0].var_p10 == 500000 and rows[0].var_p99 == 800000
    assert rows[1].base_med == 1000000 and rows[1].base_p10 == 900000
    assert not rows[0].in_floor


# ------------------------------------------------------------ launchers ---


def test_launcher_option_passed_only_when_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox

    made: list[tuple[Any, ...]] = []

    class WithLauncher:
        def __init__(self, profile: str = "strict", *, launcher: str = "native") -> None:
            made.append((profile, launcher))

    class Without:
        def __init__(self, profile: str = "strict") -> None:
            made.append((profile,))

    monkeypatch.setattr(sandbox, "Sandbox", WithLauncher)
    assert common.library_launchers() == ["native", "python"]
    common.open_sandbox("python")
    monkeypatch.setattr(sandbox, "Sandbox", Without)
    assert common.library_launchers() == [None]
    common.open_sandbox(None)
    assert made == [("strict", "python"), ("strict",)]
    assert common.cli_exec("native")[-2:] == ["--launcher", "native"]
    assert common.cli_exec(None)[-1] == "exec"


def test_probe_is_never_written_through_a_planted_link(tmp_path: Path) -> None:
    probe = _script(tmp_path / "isoprobe", "exit 0\n")
    box = tmp_path / "box"
    box.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    os.symlink(victim, box / "isoprobe")  # left by the box's owner
    with pytest.raises(FileExistsError):
        peers._place_probe(probe, box / "isoprobe")
    assert victim.read_text() == "root's file"
    peers._place_probe(probe, box / "fresh")
    assert (box / "fresh").read_bytes() == probe.read_bytes()
    assert (box / "fresh").stat().st_mode & 0o777 == 0o755

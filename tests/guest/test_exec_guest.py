"""The full ``sandbox exec`` in the kvm-run guest: AppArmor enforced, Landlock ABI 2, cgroup v2.

Debian's 6.1 kernel, booted over this machine's root (read-only 9p) with
AppArmor, Landlock ABI 2 and cgroup v2, the test runner as root in the root
cgroup. State goes to a tmpfs (SANDBOX_STATE_DIR=/tmp/sandbox-state, as the
guest stage sets it). Most runs go through ``guestkit.start_cli`` (the CLI's
main in a forked copy of this process: the same code path without 7-12 s of
imports under TCG); the issue's "done when" run and ``sandbox doctor`` use the
real ``.venv/bin/sandbox`` through a new interpreter.

Payloads are probes: tests/probes/inside.c (the container seen from inside,
``attr_current`` included), fsops.c (file accesses -> errno names) and
cgprobe.c (memory, processes, CPU).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from guestkit import run_cli_fast, start_cli
from sbxtest import build_probes, run_cli

from sandbox.apparmor.render import NAME_RE


def _apparmor_active() -> bool:
    try:
        return "apparmor" in Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1" or not _apparmor_active() or os.geteuid() != 0,
    reason="needs the kvm-run guest as root (KVM_RUN=1, apparmor in /sys/kernel/security/lsm)",
)

PROFILES = Path("/sys/kernel/security/apparmor/profiles")
DENY_HOSTNAME = 'extends = "strict"\n[apparmor]\nextra_rules = ["deny /etc/hostname r,"]\n'


@pytest.fixture(scope="module", autouse=True)
def state_dir():
    """The guest's root is read-only: state on its tmpfs (the guest stage sets the same)."""
    os.environ.setdefault("SANDBOX_STATE_DIR", "/tmp/sandbox-state")


@pytest.fixture(scope="module")
def probes() -> dict[str, Path]:
    return build_probes()


def loaded() -> set[str]:
    """Names of the generated profiles the kernel has loaded."""
    names = (line.split(" (")[0] for line in PROFILES.read_text().splitlines())
    return {n for n in names if NAME_RE.match(n)}


def profile_name(record: dict) -> str:
    detail = record["enforcement"]["apparmor"]["detail"]
    name = detail.split()[1].rstrip(";")
    assert NAME_RE.match(name), detail
    return name


def write_profile(tmp: Path, name: str, text: str) -> Path:
    p = tmp / f"{name}.toml"
    p.write_text(text)
    return p


# ------------------------------------------------------------ done when ----


def test_strict_runs_with_apparmor_enforced_landlock_partial_cgroups_full(probes, tmp_path):
    """The issue's "done when", with the real CLI: the record says AppArmor enforced
    with the generated profile, and the payload's attr/current names it."""
    r = run_cli(
        ["exec", "--profile", "strict", "--", str(probes["inside"])], tmp=tmp_path, timeout=300
    )
    assert r.rc == 0, r.err
    info, rec = json.loads(r.out), r.record
    enf = rec["enforcement"]
    name = profile_name(rec)
    assert enf["apparmor"]["state"] == "full"
    assert info["attr_current"].strip() == f"{name} (enforce)"
    assert enf["landlock"]["state"] == "partial"
    ll = enf["landlock"]["detail"]
    assert "ABI 2" in ll and "LANDLOCK_ACCESS_FS_TRUNCATE" in ll and "NET_CONNECT_TCP" in ll
    assert enf["cgroups"]["state"] == "full"
    assert {"memory", "pids", "cpu"} <= set(enf["cgroups"]["detail"].split(": ", 1)[1].split(", "))
    for layer in ("namespaces", "overlay", "capabilities", "no_new_privs", "seccomp"):
        assert enf[layer]["state"] == "full", (layer, enf[layer])
    assert info["uid"] == [1000, 1000, 1000] and info["pid"] == 2
    assert "NoNewPrivs:\t1" in info["status"] and "Seccomp:\t2" in info["status"]
    # v2: the payload sits at the root of its cgroup namespace, a leaf of the unified tree
    assert info["cgroup"].strip() == "0::/"
    assert name not in loaded()  # released with the run: nothing holds it any more


def test_shell_example_of_the_container_issue(tmp_path):
    r = run_cli_fast(
        ["exec", "--profile", "strict", "--", "/bin/sh", "-c", "id -u; ls /proc; exit 7"],
        tmp=tmp_path,
    )
    assert r.rc == 7, r.err
    lines = r.out.split()
    assert int(lines[0]) == 1000
    assert max(int(x) for x in lines[1:] if x.isdigit()) < 10
    assert r.record["exit_code"] == 7 and r.record["enforcement"]["apparmor"]["state"] == "full"


# --------------------------------------------------------- reads, execs ----


def test_denied_read_is_eacces_under_apparmor_and_works_with_the_layer_ablated(probes, tmp_path):
    """/etc/hostname is inside /etc, which both layers let the payload read; one
    AppArmor deny rule takes it away. Landlock cannot deny a file inside a tree it
    grants, so with AppArmor ablated Landlock (still on) allows the read: the
    denial is AppArmor's, not Landlock's or the file mode's."""
    prof = write_profile(tmp_path, "denyhost", DENY_HOSTNAME)
    argv = ["exec", "--profile", str(prof)]
    probe = ["--", str(probes["fsops"]), "read:/etc/hostname", "read:/etc/passwd", "attr"]
    on = run_cli_fast([*argv, *probe], tmp=tmp_path)
    assert on.rc == 0, on.err
    got = json.loads(on.out)
    assert got["read:/etc/hostname"] == "EACCES"
    assert got["read:/etc/passwd"] == 0
    assert got["attr"] == f"{profile_name(on.record)} (enforce)"
    off = run_cli_fast([*argv, "--test-ablate", "apparmor", *probe], tmp=tmp_path)
    assert off.rc == 0, off.err
    got = json.loads(off.out)
    assert got["read:/etc/hostname"] == 0 and got["attr"] == "unconfined"
    assert off.record["enforcement"]["landlock"]["state"] == "partial"  # Landlock was on
    assert off.record["enforcement"]["apparmor"]["state"] == "off"


def test_denied_exec_fails_and_an_allowed_one_works(probes, tmp_path):
    """AppArmor alone (Landlock ablated): a program the payload wrote to /tmp (not an
    exec path) cannot be executed, /usr/bin/true can; with both layers ablated both
    run, so it is the profile that refuses, not noexec or the file mode."""
    ops = ["copy:/usr/bin/true:/tmp/t", "exec:/tmp/t", "exec:/usr/bin/true", "attr"]
    base = ["exec", "--profile", "strict", "--test-ablate", "landlock"]
    aa = run_cli_fast([*base, "--", str(probes["fsops"]), *ops], tmp=tmp_path)
    got = json.loads(aa.out)
    assert got["exec:/tmp/t"] == "EACCES" and got["exec:/usr/bin/true"] == 0
    assert got["attr"].endswith("(enforce)")
    neither = run_cli_fast(
        [*base, "--test-ablate", "apparmor", "--", str(probes["fsops"]), *ops], tmp=tmp_path
    )
    got = json.loads(neither.out)
    assert got["exec:/tmp/t"] == 0 and got["exec:/usr/bin/true"] == 0
    assert got["attr"] == "unconfined"


# ---------------------------------------------------------- fail closed ----


def test_a_profile_requiring_apparmor_is_enforced(probes, tmp_path):
    prof = write_profile(tmp_path, "aareq", 'extends = "strict"\n[layers]\napparmor = "required"\n')
    r = run_cli_fast(["exec", "--profile", str(prof), "--", str(probes["fsops"]), "attr"],
                     tmp=tmp_path)  # fmt: skip
    assert r.rc == 0, r.err
    assert r.record["enforcement"]["apparmor"]["state"] == "full"
    assert json.loads(r.out)["attr"] == f"{profile_name(r.record)} (enforce)"


def test_required_apparmor_that_cannot_be_enforced_refuses_the_run(tmp_path):
    prof = write_profile(tmp_path, "aareq", 'extends = "strict"\n[layers]\napparmor = "required"\n')
    r = run_cli_fast(
        ["exec", "--profile", str(prof), "--", "/bin/true"],
        tmp=tmp_path,
        env={"SANDBOX_TEST_HIDE_LAYERS": "apparmor"},
    )
    assert r.rc == 125
    assert "'apparmor' is required but cannot be enforced" in r.err and r.err.count("\n") == 1
    assert not loaded()


def test_strict_without_apparmor_falls_back_to_landlock_and_says_so(probes, tmp_path):
    argv = ["exec", "--profile", "strict", "--", str(probes["fsops"]), "list:/var", "attr"]
    r = run_cli_fast(argv, tmp=tmp_path, env={"SANDBOX_TEST_HIDE_LAYERS": "apparmor"})
    assert r.rc == 0, r.err
    enf = r.record["enforcement"]
    assert enf["apparmor"]["state"] == "off"
    assert "hidden by the test hook" in enf["apparmor"]["detail"]
    assert enf["landlock"]["state"] == "partial"
    got = json.loads(r.out)
    assert got == {"list:/var": "EACCES", "attr": "unconfined"}  # Landlock's denial
    both = run_cli_fast(argv, tmp=tmp_path, env={"SANDBOX_TEST_HIDE_LAYERS": "apparmor,landlock"})
    assert both.rc == 125 and "file mediation needs Landlock" in both.err


def test_stdin_from_a_host_file_cannot_be_fstat_under_apparmor(probes, tmp_path):
    """A listed difference (compare.differences 'host-stdio'): the supervisor opens
    --stdin FILE on the host, outside the payload's root, so AppArmor sees a
    disconnected path: reading works (delegated), fstat is EACCES; Landlock does
    not check open descriptors. A pipe is fine under both."""
    data = tmp_path / "input.txt"
    data.write_text("1 2\n")
    probe = ["--", str(probes["fsops"]), "fstat:0", "fdread:0", "fstat:1"]
    base = ["exec", "--profile", "strict", "--stdin", str(data)]
    aa = json.loads(run_cli_fast([*base, "--test-ablate", "landlock", *probe], tmp=tmp_path).out)
    ll = json.loads(run_cli_fast([*base, "--test-ablate", "apparmor", *probe], tmp=tmp_path).out)
    assert aa == {"fstat:0": "EACCES", "fdread:0": 0, "fstat:1": 0}
    assert ll == {"fstat:0": 0, "fdread:0": 0, "fstat:1": 0}


# ------------------------------------------------------ profile lifetime ----


def test_two_concurrent_runs_share_the_profile_until_the_last_ends(probes, tmp_path):
    """Run B waits on its stdin while run A (same policy, same program: same
    profile) starts and ends. A's release must not remove the profile B uses:
    afterwards B's attr/current still names it and its deny rule still holds."""
    prof = write_profile(tmp_path, "denyhost", DENY_HOSTNAME)
    fsops = str(probes["fsops"])
    b = start_cli(
        [
            "exec", "--profile", str(prof), "--", fsops,
            "attr", "say:ready", "stdin", "attr", "read:/etc/hostname",
        ],
        tmp=tmp_path,
        stdin_pipe=True,
    )  # fmt: skip
    assert b.err_contains("ready"), "run B did not start"
    a = run_cli_fast(["exec", "--profile", str(prof), "--", fsops, "attr"], tmp=tmp_path)
    assert a.rc == 0, a.err
    name = profile_name(a.record)
    assert json.loads(a.out)["attr"] == f"{name} (enforce)"
    assert name in loaded()  # A released it; B still holds it
    assert b.stdin is not None
    os.write(b.stdin, b"g")
    rb = b.wait()
    assert rb.rc == 0, rb.err
    got = json.loads(rb.out)
    assert profile_name(rb.record) == name
    assert got["attr"] == f"{name} (enforce)"  # read after A ended
    assert got["read:/etc/hostname"] == "EACCES"
    assert name not in loaded()  # the last holder is gone: removed


def test_a_changed_policy_gets_a_new_name_and_the_old_profile_goes_once_unused(probes, tmp_path):
    fsops = str(probes["fsops"])
    old = write_profile(tmp_path, "old", DENY_HOSTNAME)
    new = write_profile(
        tmp_path, "new", DENY_HOSTNAME.replace("/etc/hostname r", "/etc/hostname rw")
    )
    holder = start_cli(
        ["exec", "--profile", str(old), "--", fsops, "say:ready", "stdin", "attr"],
        tmp=tmp_path,
        stdin_pipe=True,
    )
    assert holder.err_contains("ready")
    changed = run_cli_fast(["exec", "--profile", str(new), "--", fsops, "attr"], tmp=tmp_path)
    assert changed.rc == 0, changed.err
    new_name = profile_name(changed.record)
    assert json.loads(changed.out)["attr"] == f"{new_name} (enforce)"
    assert new_name not in loaded()  # its only run ended
    before = loaded()
    assert len(before) == 1 and new_name not in before  # the old one, held by the first run
    (old_name,) = before
    assert holder.stdin is not None
    os.write(holder.stdin, b"g")
    r = holder.wait()
    assert r.rc == 0, r.err
    assert profile_name(r.record) == old_name != new_name
    assert json.loads(r.out)["attr"] == f"{old_name} (enforce)"
    assert old_name not in loaded()


# --------------------------------------------------------------- overlay ----


def test_rmdir_then_mkdir_of_a_lower_directory_leaves_the_host_unchanged(tmp_path):
    prof = write_profile(tmp_path, "var", 'extends = "strict"\n[filesystem]\nwritable = ["/var"]\n')
    r = run_cli_fast(
        [
            "exec", "--profile", str(prof), "--", "/bin/sh", "-c",
            "rmdir /var/tmp && mkdir /var/tmp && touch /var/tmp/new && ls -d /var/tmp/new",
        ],
        tmp=tmp_path,
    )  # fmt: skip
    assert r.rc == 0, r.err
    assert r.out.strip() == "/var/tmp/new"
    assert r.record["enforcement"]["apparmor"]["state"] == "full"
    images = Path(os.environ["SANDBOX_STATE_DIR"]) / "images"
    dirs = [p for p in images.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert dirs
    for img in dirs:
        assert (img / "var/tmp").is_dir() and not (img / "var/tmp/new").exists()
        assert oct((img / "var/tmp").stat().st_mode & 0o7777) == "0o1777"


# ---------------------------------------------------------------- doctor ----


def test_doctor_reports_apparmor_on(tmp_path):
    r = run_cli(["doctor", "--json"], tmp=tmp_path, timeout=300)
    assert r.rc == 0, r.err
    data = json.loads(r.out)
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["apparmor"]["status"] == "ok", checks["apparmor"]
    assert checks["apparmor"]["summary"].startswith("AppArmor on")
    assert checks["apparmor"]["detail"]["restrict_unprivileged_userns"] is None
    assert checks["landlock"]["detail"]["abi"] == 2 and checks["landlock"]["status"] == "warn"
    assert checks["cgroups"]["status"] == "ok" and checks["cgroups"]["detail"]["mode"] == "v2"
    assert checks["kernel"]["detail"]["version"][:2] == [6, 1]
    assert checks["overlay"]["status"] == "ok"
    strict = data["profiles"]["strict"]
    assert strict["runs"]
    assert strict["layers"]["apparmor"]["state"] == "full"
    assert strict["layers"]["landlock"]["state"] == "partial"
    assert strict["layers"]["cgroups"]["state"] == "full"
    assert not [n for n in loaded()]  # the doctor loads nothing
    text = run_cli_fast(["doctor"], tmp=tmp_path)
    assert "apparmor   ok    AppArmor on" in text.out


# ----------------------------------------------------- judge on cgroup v2 ----


def test_memory_limit_is_memory_limit_with_the_oom_flag(probes, tmp_path):
    r = run_cli_fast(
        ["exec", "--memory", "32M", "--", str(probes["cgprobe"]), "alloc", "128"], tmp=tmp_path
    )
    rec = r.record
    assert rec["verdict"] == "MEMORY_LIMIT", rec
    assert rec["oom_killed"] is True and rec["signal"] == 9
    assert rec["memory_peak"] <= 32 << 20


def test_processes_bound_a_fork_bomb(tmp_path):
    r = run_cli_fast(
        [
            "exec", "--processes", "8", "--wall-time", "60", "--", "/bin/sh", "-c",
            "n=0; while [ $n -lt 50 ]; do sleep 30 & n=$((n+1)); echo $n; done",
        ],
        tmp=tmp_path,
    )  # fmt: skip
    started = [int(x) for x in r.out.split()]
    assert started and max(started) < 8, r.out
    assert "fork" in r.err.lower(), r.err
    assert r.record["verdict"] != "WALL_TIME_LIMIT"  # the shell gave up at once
    assert r.record["enforcement"]["cgroups"]["state"] == "full"


def test_cpu_time_limit_by_polling(probes, tmp_path):
    t0 = time.monotonic()
    r = run_cli_fast(
        ["exec", "--cpu-time", "1", "--", str(probes["cgprobe"]), "burn", "5"], tmp=tmp_path
    )
    rec = r.record
    assert rec["verdict"] == "TIME_LIMIT", rec
    assert 1.0 <= rec["cpu_time"] < 1.5  # stopped by polling, not RLIMIT_CPU (2 s)
    assert rec["signal"] == 9 and time.monotonic() - t0 < 60


def test_wall_time_limit(tmp_path):
    r = run_cli_fast(["exec", "--wall-time", "1", "--", "/bin/sleep", "30"], tmp=tmp_path)
    assert r.record["verdict"] == "WALL_TIME_LIMIT", r.record
    assert 1.0 <= r.record["wall_time"] < 5


def test_a_denied_syscall_is_recorded_through_the_listener_init_hands_over(tmp_path):
    """On 6.1 (Yama, AppArmor): init copies the listener with pidfd_getfd, the
    supervisor records the first denied syscall and the shell never goes on."""
    r = run_cli_fast(
        ["exec", "--", "/bin/sh", "-c", "echo before; unshare -U true; echo after $?"],
        tmp=tmp_path,
    )
    assert r.record["verdict"] == "SECURITY_VIOLATION", r.record
    assert r.record["violation"]["syscall"] == "unshare"
    assert "before" in r.out and "after" not in r.out

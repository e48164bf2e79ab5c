"""sandbox-runtime against the runtime-spec's required behaviour (runtime.md, config.md).

Each test drives ``sandbox-runtime`` as an engine does (separate processes for
create, start, state, kill, delete) on a busybox bundle, and checks what the
spec requires: the lifecycle and its states, errors for operations in the
wrong state, hook order, mount order, the exit status the engine sees, and
that a refused bundle leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from ocikit import RUNTIME, Runtime, config, make_bundle, supervisor_status

pytestmark = pytest.mark.requires("root", "userns")


@pytest.fixture
def rt(tmp_path: Path):
    """A private runtime root; whatever a failed test left running is deleted after it."""
    r = Runtime(tmp_path / "state")
    yield r
    for d in r.root.iterdir() if r.root.is_dir() else ():
        if d.name != "records":
            r("delete", "--force", d.name)


def _gone(rt: Runtime, cid: str) -> bool:
    return not (rt.root / cid).exists()


# ------------------------------------------------------------- lifecycle ----
def test_lifecycle_states(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    """creating -> created (payload not run) -> running -> stopped -> deleted (runtime.md)."""
    marker = "/tmp/ran"
    b = make_bundle(tmp_path, ["sh", "-c", f"touch {marker}; sleep 30"])
    rt("create", "--bundle", str(b), "c1", check=True)
    st = rt.state("c1")
    assert st["status"] == "created"
    assert st["id"] == "c1" and st["bundle"] == str(b) and st["pid"] > 0
    assert st["ociVersion"].startswith("1.")
    # The user program must not run before start.
    time.sleep(0.2)
    assert rt("exec", "c1", "true").returncode != 0  # nothing runs in a created container
    rt("start", "c1", check=True)
    assert rt.state("c1")["status"] == "running"
    rt("kill", "c1", "KILL", check=True)
    assert rt.wait_status("c1", "stopped")["status"] == "stopped"
    rt("delete", "c1", check=True)
    assert _gone(rt, "c1")
    assert rt("state", "c1").returncode != 0


def test_program_does_not_run_before_start(rt: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the payload's uid 0 is a run slot's host uid, not root
    mounts = [{"destination": "/out", "type": "bind", "source": str(out), "options": ["rbind"]}]
    b = make_bundle(tmp_path, ["sh", "-c", "echo ran > /out/f"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["mounts"] += mounts
    (b / "config.json").write_text(json.dumps(cfg))
    rt("create", "--bundle", str(b), "c2", check=True)
    time.sleep(0.3)
    assert not (out / "f").exists()
    rt("start", "c2", check=True)
    rt.wait_status("c2", "stopped")
    assert (out / "f").read_text() == "ran\n"
    rt("delete", "c2", check=True)


@pytest.mark.parametrize(
    ("script", "expect"),
    [("exit 0", ("exit", 0)), ("exit 42", ("exit", 42)), ("kill -TERM $$", ("signal", 15))],
)
def test_supervisor_exits_as_the_payload(rt: Runtime, tmp_path: Path, script, expect) -> None:
    """The pid in --pid-file ends with the container's status (a signal is re-raised)."""
    b = make_bundle(tmp_path, ["sh", "-c", script])
    _, status = supervisor_status(rt, b, "c3")
    if expect[0] == "exit":
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == expect[1]
    else:
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == expect[1]


def test_run_exit_code_and_output(rt: Runtime, tmp_path: Path) -> None:
    b = make_bundle(tmp_path, ["sh", "-c", "read x; echo got $x; echo err >&2; exit 3"])
    p = rt("run", "--bundle", str(b), "c4", input="hello\n")
    assert p.returncode == 3
    assert p.stdout == "got hello\n"
    assert p.stderr == "err\n"
    assert _gone(rt, "c4")


def test_oom_score_adj_is_the_payloads(rt: Runtime, tmp_path: Path) -> None:
    """process.oomScoreAdj is set on the container's process, not on ours."""
    cfg = config(["cat", "/proc/self/oom_score_adj"])
    cfg["process"]["oomScoreAdj"] = 617
    b = make_bundle(tmp_path, [])
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("run", "--bundle", str(b), "c-oom")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "617"
    assert _gone(rt, "c-oom")


def test_rootfs_given_as_a_symlink_is_followed_once(rt: Runtime, tmp_path: Path) -> None:
    """root.path may name a link to the rootfs (runc follows it too)."""
    b = make_bundle(tmp_path, ["echo", "inside"])
    (b / "rootfs").rename(b / "real-rootfs")
    (b / "rootfs").symlink_to("real-rootfs")
    p = rt("run", "--bundle", str(b), "c-rootlink")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "inside\n"
    assert _gone(rt, "c-rootlink")


@pytest.mark.parametrize("value", ["0 0", "0 4000"])
def test_ping_group_range_of_a_non_root_user(rt: Runtime, tmp_path: Path, value) -> None:
    """podman sets ping_group_range "0 0" for every container; with --user 1000:1000
    gid 0 is not mapped in the container and the kernel refused the value, so create
    failed. The range is clipped to the container's gid (the values: unit tests)."""
    cfg = config(["id", "-g"])
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["linux"]["sysctl"] = {"net.ipv4.ping_group_range": value}
    b = make_bundle(tmp_path, [])
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("run", "--bundle", str(b), "c-ping")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1000"
    assert _gone(rt, "c-ping")


# -------------------------------------------------------- wrong states ----
def test_errors_on_wrong_states(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    b = make_bundle(tmp_path, ["sleep", "30"])
    assert rt("state", "nope").returncode != 0
    assert rt("start", "nope").returncode != 0
    assert rt("kill", "nope").returncode != 0
    assert rt("delete", "nope").returncode != 0
    rt("create", "--bundle", str(b), "c5", check=True)
    second = rt("create", "--bundle", str(b), "c5")
    assert second.returncode != 0 and "already exists" in second.stderr
    assert rt("resume", "c5").returncode != 0  # not paused
    rt("start", "c5", check=True)
    again = rt("start", "c5")
    assert again.returncode != 0 and "not created" in again.stderr
    busy = rt("delete", "c5")
    assert busy.returncode != 0 and "running" in busy.stderr
    rt("pause", "c5", check=True)
    assert rt.state("c5")["status"] == "paused"
    rt("resume", "c5", check=True)
    assert rt.state("c5")["status"] == "running"
    rt("delete", "--force", "c5", check=True)
    assert _gone(rt, "c5")


def test_kill_signal_and_ps(rt: Runtime, tmp_path: Path) -> None:
    b = make_bundle(tmp_path, ["sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.05; done"])
    rt("create", "--bundle", str(b), "c6", check=True)
    rt("start", "c6", check=True)
    time.sleep(0.3)
    pids = json.loads(rt("ps", "--format", "json", "c6", check=True).stdout)
    assert pids and all(isinstance(p, int) for p in pids)
    rt("kill", "c6", "SIGUSR1", check=True)
    rt.wait_status("c6", "stopped")
    record = json.loads((rt.root / "records" / "c6.json").read_text())
    assert record["exit_code"] == 7
    stopped = rt("kill", "c6", "KILL")
    assert stopped.returncode != 0
    rt("delete", "c6", check=True)


# ------------------------------------------------------------------ exec ----
def _status_fields(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_exec_joins_with_the_same_layers(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    """An exec'd process is in the container's namespaces and leaf, under the same
    seccomp filter, no_new_privs and bounding set as the container's first process."""
    b = make_bundle(tmp_path, ["sleep", "30"])
    rt("create", "--bundle", str(b), "x1", check=True)
    rt("start", "x1", check=True)
    try:
        main = rt("exec", "x1", "cat", "/proc/1/cmdline", check=True)
        assert main.stdout.startswith("sandbox-init")  # the container's own pid namespace
        first = _status_fields(rt("exec", "x1", "cat", "/proc/self/status", check=True).stdout)
        assert first["NoNewPrivs"] == "1"
        assert first["Seccomp"] == "2"
        assert int(first["CapBnd"], 16) == (1 << 5) | (1 << 10)  # CAP_KILL, CAP_NET_BIND_SERVICE
        host = rt("exec", "x1", "sh", "-c", "hostname; exit 9")
        assert host.returncode == 9 and host.stdout == "oci-test\n"
        cap = rt("exec", "--cap", "CAP_SYS_ADMIN", "x1", "true")
        del cap  # a capability the container lacks is never granted (checked below)
        p = tmp_path / "proc.json"
        p.write_text(
            json.dumps(
                {
                    "args": ["grep", "CapEff", "/proc/self/status"],
                    "cwd": "/",
                    "capabilities": {
                        k: ["CAP_SYS_ADMIN", "CAP_KILL"]
                        for k in ("bounding", "effective", "permitted")
                    },
                }
            )
        )
        eff = rt("exec", "--process", str(p), "x1", check=True).stdout
        assert int(eff.split()[1], 16) == 1 << 5  # CAP_KILL only: never more than the container
        other = rt("exec", "--user", "1000", "x1", "true")
        assert other.returncode != 0 and "only the container's own ids" in other.stderr
        missing = rt("exec", "x1", "no-such-program")
        assert missing.returncode == 127, missing.stderr  # runc's status and wording
        assert "executable file not found in $PATH" in missing.stderr
        # In the container's leaf, every hierarchy, as its first process (our ps: the
        # leaf's tasks; the host's view of each one's cgroup).
        payload = json.loads(rt("ps", "--format", "json", "x1", check=True).stdout)
        assert len(payload) == 1
        with tempfile.TemporaryFile() as out:
            execd = subprocess.Popen(
                [RUNTIME, "--root", str(rt.root), "exec", "x1", "sleep", "29"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
            try:
                end = time.monotonic() + 20
                while len(pids := json.loads(rt("ps", "--format", "json", "x1").stdout)) < 2:
                    assert time.monotonic() < end and execd.poll() is None, pids
                    time.sleep(0.05)
                (other,) = set(pids) - set(payload)
                cmd = Path(f"/proc/{other}/cmdline").read_bytes()
                assert cmd == b"sleep\x0029\x00"
                cg = Path(f"/proc/{other}/cgroup").read_text()
                assert cg == Path(f"/proc/{payload[0]}/cgroup").read_text()
            finally:
                execd.kill()
                execd.wait()
    finally:
        rt("delete", "--force", "x1", check=True)


def test_exec_detach_returns_at_once_and_its_pid_lives_as_long_as_the_process(
    rt: Runtime, tmp_path: Path
) -> None:
    """podman exec -d: the command returns once the process started, and the pid-file's
    process (what conmon waits for) ends with it, not before (it returned only at the
    process's end: the exec's helpers held the report pipe the command reads to EOF)."""
    b = make_bundle(tmp_path, ["sleep", "30"])
    rt("create", "--bundle", str(b), "x3", check=True)
    rt("start", "x3", check=True)
    pidfile = tmp_path / "exec.pid"
    try:
        start = time.monotonic()
        d = rt("exec", "--detach", "--pid-file", str(pidfile), "x3", "sleep", "3", check=True)
        assert d.returncode == 0 and time.monotonic() - start < 2.5
        pid = int(pidfile.read_text())
        time.sleep(1.0)
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert stat[0] in ("S", "R"), stat[0]  # alive, not a zombie: the process runs
        end = time.monotonic() + 15
        while Path(f"/proc/{pid}").exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert time.monotonic() - start >= 2.9  # it ended with the process, not before
    finally:
        rt("delete", "--force", "x3", check=True)


def test_exec_in_stopped_container_is_refused(rt: Runtime, tmp_path: Path) -> None:
    b = make_bundle(tmp_path, ["true"])
    rt("create", "--bundle", str(b), "x2", check=True)
    assert rt("exec", "x2", "true").returncode != 0  # created, not running
    rt("start", "x2", check=True)
    rt.wait_status("x2", "stopped")
    p = rt("exec", "x2", "true")
    assert p.returncode != 0 and "not running" in p.stderr
    rt("delete", "x2", check=True)


# -------------------------------------------------------- hooks, mounts ----
def test_hook_order(rt: Runtime, tmp_path: Path) -> None:
    """prestart/createRuntime run at create, poststart after start, poststop at delete;
    each gets the state on stdin (config.md, runtime.md)."""
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    states = "'running|created|stopped'"
    hook.write_text(f'#!/bin/sh\nread -r s\necho "$1 $(echo "$s" | grep -oE {states})" >> {log}\n')
    hook.chmod(0o755)

    def h(name: str) -> list[dict]:
        return [{"path": str(hook), "args": ["hook.sh", name]}]

    hooks = {k: h(k) for k in ("prestart", "createRuntime", "poststart", "poststop")}
    b = make_bundle(tmp_path, ["true"], hooks=hooks)
    rt("create", "--bundle", str(b), "c7", check=True)
    assert log.read_text().split("\n")[:2] == ["prestart created", "createRuntime created"]
    rt("start", "c7", check=True)
    rt.wait_status("c7", "stopped")
    rt("delete", "c7", check=True)
    assert log.read_text().split() == [
        "prestart",
        "created",
        "createRuntime",
        "created",
        "poststart",
        "running",
        "poststop",
        "stopped",
    ]


def test_failing_hook_refuses_create(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    b = make_bundle(tmp_path, ["true"], hooks={"prestart": [{"path": "/bin/false"}]})
    p = rt("create", "--bundle", str(b), "c8")
    assert p.returncode != 0 and "prestart hook" in p.stderr
    assert _gone(rt, "c8")


def test_mount_order(rt: Runtime, tmp_path: Path) -> None:
    """Mounts are made in order: a tmpfs listed after a bind covers a path inside it."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "hidden").write_text("x")
    (src / "top").write_text("t")
    b = make_bundle(tmp_path, ["sh", "-c", "ls /data/sub; cat /data/top"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
        {"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("run", "--bundle", str(b), "c9")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "t"


# ---------------------------------------------------------- bad bundles ----
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(ociVersion="0.9"), "ociVersion"),
        (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "unknown namespace"),
        (lambda c: c["linux"].update(namespaces=[{"type": "mount"}]), "no pid namespace"),
        (lambda c: c["root"].update(path="../../etc"), "escapes the bundle"),
        (lambda c: c["root"].update(path="missing"), "not a directory"),
        (lambda c: c["process"].update(args=[]), "process.args"),
        (lambda c: c["process"].update(cwd="rel"), "absolute"),
        (lambda c: c.update(frobnicate=1), "frobnicate"),
        (lambda c: c["linux"].update(seccomp={"defaultAction": "SCMP_ACT_BOGUS"}), "unsupported"),
        (lambda c: c["linux"].update(sysctl={"kernel.panic": "1"}), "sysctl"),
        (
            lambda c: c["mounts"].append({"destination": "/x", "type": "nfs", "source": "h:/"}),
            "nfs",
        ),
        (lambda c: c["linux"]["resources"].update(memory={"limit": -5}), "memory.limit"),
        (
            lambda c: c["linux"].update(
                devices=[{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}]
            ),
            "/dev/sda",
        ),
        (lambda c: c["process"].update(apparmorProfile="x", selinuxLabel="y"), "SELinux"),
    ],
)
def test_bad_bundle_is_refused_cleanly(rt, tmp_path: Path, mutate, message, no_leftovers) -> None:
    b = make_bundle(tmp_path, ["true"])
    cfg = json.loads((b / "config.json").read_text())
    mutate(cfg)
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("create", "--bundle", str(b), "bad")
    assert p.returncode != 0
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert _gone(rt, "bad")


@pytest.mark.skipif(
    Path("/sys/module/apparmor/parameters/enabled").exists()
    and Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y",
    reason="this kernel has AppArmor (the guest stage tests the profile applied)",
)
def test_apparmor_profile_without_apparmor_is_refused(rt, tmp_path: Path, no_leftovers) -> None:
    """A bundle's AppArmor profile is never dropped silently (fail closed)."""
    b = make_bundle(tmp_path, ["true"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["apparmorProfile"] = "some-profile"
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("create", "--bundle", str(b), "aa")
    assert p.returncode != 0 and "AppArmor is not enabled" in p.stderr
    assert _gone(rt, "aa")


def test_callers_terminal_is_never_the_payloads(rt: Runtime, tmp_path: Path) -> None:
    """Issue 13's terminal rule: with stdio on a terminal and no console socket, create
    refuses (the payload's ioctls on it would outlive the container)."""
    import shlex

    b = make_bundle(tmp_path, ["true"])
    cmd = shlex.join([RUNTIME, "--root", str(rt.root), "create", "--bundle", str(b), "tt"])
    p = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode != 0
    assert "caller's terminal" in p.stdout
    assert _gone(rt, "tt")


def test_malformed_json(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    b = make_bundle(tmp_path, ["true"])
    (b / "config.json").write_text('{"ociVersion": ')
    p = rt("create", "--bundle", str(b), "bad")
    assert p.returncode != 0 and "malformed JSON" in p.stderr
    assert _gone(rt, "bad")


# ---------------------------------------------------------- leftovers ----
def test_supervisor_killed_then_delete_force(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    """A crashed supervisor leaves nothing that delete --force cannot remove."""
    b = make_bundle(tmp_path, ["sleep", "60"])
    rt("create", "--bundle", str(b), "c10", check=True)
    rt("start", "c10", check=True)
    pid = rt.state("c10")["pid"]
    os.kill(pid, signal.SIGKILL)
    assert rt.wait_status("c10", "stopped")["status"] == "stopped"
    rt("delete", "--force", "c10", check=True)
    assert _gone(rt, "c10")


def test_delete_force_of_created(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    b = make_bundle(tmp_path, ["sleep", "60"])
    rt("create", "--bundle", str(b), "c11", check=True)
    rt("delete", "--force", "c11", check=True)
    assert _gone(rt, "c11")


def test_run_records_are_bounded(rt: Runtime, tmp_path: Path, no_leftovers) -> None:
    """Records outlive delete, and only the newest N containers' are kept."""
    b = make_bundle(tmp_path, ["true"])
    env = {**os.environ, "SANDBOX_RUNTIME_RECORDS": "2"}
    for cid in ("r1", "r2", "r3"):
        assert rt("run", "--bundle", str(b), cid, env=env).returncode == 0
    kept = sorted(p.name for p in (rt.root / "records").glob("*.json"))
    assert kept == ["r2.json", "r3.json"]
    bad = rt("create", "--bundle", str(b), "r4", env={**env, "SANDBOX_RUNTIME_RECORDS": "0"})
    assert bad.returncode == 1 and "SANDBOX_RUNTIME_RECORDS" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert not (rt.root / "r4").exists()

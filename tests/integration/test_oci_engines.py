"""Real engines drive sandbox-runtime: podman (through conmon) and containerd (runc v2 shim).

Images are built here from busybox (no registry is reachable): ``podman import``
of a rootfs tarball into a private storage root; containerd runs a private
daemon (its own root, state and socket) and ``ctr run --rootfs``. The
runtime's state and run records go to a private ``--root`` too
(``--runtime-flag root=...``), so each test reads its own records.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from ocikit import RUNTIME, make_rootfs

pytestmark = pytest.mark.requires("root", "userns")
# podman asks for RLIMIT_NOFILE/NPROC 1048576 by default, above this host's hard limits.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = "localhost/sbx-busybox:test"


class Podman:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.state = base / "rt"

    def cmd(self, *args: str, runtime: str = RUNTIME) -> list[str]:
        return [
            "podman",
            "--root",
            str(self.base / "storage"),
            "--runroot",
            str(self.base / "run"),
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--runtime",
            runtime,
            "--runtime-flag",
            f"root={self.state}",
            *args,
        ]

    def __call__(self, *args: str, runtime: str = RUNTIME, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        return subprocess.run(self.cmd(*args, runtime=runtime), **kw)

    def run(self, *args: str, runtime: str = RUNTIME, **kw) -> subprocess.CompletedProcess:
        return self("run", "--network", "none", *ULIMITS, *args, runtime=runtime, **kw)

    def records(self) -> list[dict]:
        d = self.state / "records"
        return [json.loads(p.read_text()) for p in sorted(d.glob("*.json"), key=os.path.getmtime)]


@pytest.fixture(scope="module")
def podman(tmp_path_factory) -> Podman:
    if not shutil.which("podman"):
        pytest.skip("podman is not installed (scripts/setup.sh installs it)")
    base = tmp_path_factory.mktemp("podman")
    root = make_rootfs(base / "rootfs")
    tar = base / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(root, arcname=".")
    p = Podman(base)
    out = p("import", str(tar), IMAGE)
    assert out.returncode == 0, out.stderr
    yield p
    p("rm", "-a", "-f")
    p("rmi", "-a", "-f")
    subprocess.run(["umount", "-R", str(base / "storage" / "overlay")], capture_output=True)


def test_run_exit_code_stdin_stdout(podman: Podman) -> None:
    p = podman.run("--rm", "-i", IMAGE, "sh", "-c", "read x; echo got $x; exit 7", input="hi\n")
    assert p.returncode == 7, p.stderr
    assert p.stdout == "got hi\n"


def test_default_network_namespace_is_joined(podman: Podman) -> None:
    """podman's own network (CNI) hands over a namespace by path: joined, and moby's
    conditional socket rule kept as a subset (netlink works for `ip`)."""
    cmd = ["run", "--rm", *ULIMITS, IMAGE, "busybox", "ip", "-o", "-4", "addr"]
    base = podman(*cmd, runtime="runc")
    if base.returncode != 0 or "eth0" not in base.stdout:
        pytest.skip(f"podman's default network does not work here with runc: {base.stderr}")
    p = podman(*cmd)
    assert p.returncode == 0, p.stderr
    assert "eth0" in p.stdout and "lo" in p.stdout


def test_read_only_memory_pids_caps(podman: Podman) -> None:
    script = (
        "touch /x 2>/dev/null && echo rootw; touch /tmp/y && echo tmpw; "
        "grep CapEff /proc/self/status"
    )
    p = podman.run(
        "--rm",
        "--read-only",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "--cap-drop",
        "all",
        "--cap-add",
        "kill",
        IMAGE,
        "sh",
        "-c",
        script,
    )
    assert p.returncode == 0, p.stderr
    assert "rootw" not in p.stdout and "tmpw" in p.stdout
    assert "CapEff:\t0000000000000020" in p.stdout  # CAP_KILL only
    rec = podman.records()[-1]
    assert rec["verdict"] == "OK"
    assert "memory" in rec["enforcement"]["cgroups"]["detail"]


def test_tty_through_console_socket(podman: Podman) -> None:
    """-t: conmon receives a pty master over --console-socket; the payload's stdio is
    its slave, never conmon's or the caller's terminal."""
    cmd = podman.cmd(
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        *ULIMITS,
        IMAGE,
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo is-a-tty",
    )
    p = subprocess.run(
        ["script", "-qec", shlex.join(cmd), "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "is-a-tty" in p.stdout


def _export(profile: str, out: Path) -> dict:
    sandbox = str(Path(RUNTIME).with_name("sandbox"))
    e = subprocess.run(
        [sandbox, "seccomp", "export", profile, "-o", str(out)], capture_output=True, text=True
    )
    assert e.returncode == 0, e.stderr
    return json.loads(out.read_text())


def test_seccomp_file_exported_by_sandbox(podman: Podman, tmp_path: Path) -> None:
    """`sandbox seccomp export` writes what engines load: runc and sandbox-runtime both
    run under it (its prctl option list included: our runtime keeps such
    conditions as one rule), and a syscall it refuses fails in both. runc gets
    no-new-privileges: without it runc loads the filter before its own
    bounding-set, setgroups and capset calls, which an allow-list for a
    payload refuses (podman's default profile allows them)."""
    out = tmp_path / "engine.json"
    _export(str(Path(__file__).parents[1] / "fixtures/profiles/engine-init.toml"), out)
    for runtime in ("runc", RUNTIME):
        p = podman.run(
            "--rm",
            "--security-opt",
            "no-new-privileges",
            "--security-opt",
            f"seccomp={out}",
            IMAGE,
            "sh",
            "-c",
            "echo ok; unshare -n true",
            runtime=runtime,
        )
        assert p.stdout == "ok\n", (runtime, p.stderr)
        assert p.returncode == 1, runtime  # unshare refused with EPERM
        assert "Operation not permitted" in p.stderr


def test_seccomp_notify_default_exported_as_kill(podman: Podman, tmp_path: Path) -> None:
    """strict's notify default needs a listener no engine has: exported as the kill.
    Loaded by our runtime, its prctl option list holds (busybox's sh runs), and the
    refused syscall is the supervisor's violation: the container is killed (137,
    where runc's kernel kill reads 159) and the run record names the call."""
    out = tmp_path / "strict.json"
    doc = _export("strict", out)
    assert doc["defaultAction"] == "SCMP_ACT_KILL_PROCESS"
    assert "notify" in doc["comment"]
    assert all(e["action"] != "SCMP_ACT_NOTIFY" for e in doc["syscalls"])
    p = podman.run(
        "--rm", "--security-opt", f"seccomp={out}", IMAGE, "sh", "-c", "echo ok; unshare -n true"
    )
    assert p.stdout == "ok\n", p.stderr
    assert p.returncode == 128 + signal.SIGKILL
    rec = podman.records()[-1]
    assert rec["verdict"] == "SECURITY_VIOLATION", rec
    assert rec["violation"]["syscall"] == "unshare", rec


def test_strict_annotation_records_violation(podman: Podman) -> None:
    p = podman.run(
        "--rm", "--annotation", "run.sandbox.profile=strict", IMAGE, "unshare", "-n", "true"
    )
    assert p.returncode != 0
    rec = podman.records()[-1]
    assert rec["profile"] == "strict"
    assert rec["verdict"] == "SECURITY_VIOLATION"
    assert rec["violation"]["syscall"] == "unshare"


def _leftovers() -> dict[str, int]:
    from sbxtest import host_snapshot

    snap = host_snapshot()
    return {k: len(v) if not isinstance(v, int) else v for k, v in snap.items()}


def test_detached_pause_stop_rm(podman: Podman) -> None:
    p = podman.run("-d", "--name", "sbx-d", IMAGE, "sleep", "60")
    assert p.returncode == 0, p.stderr
    try:
        assert podman("pause", "sbx-d").returncode == 0
        st = podman("inspect", "sbx-d", "--format", "{{.State.Status}}").stdout.strip()
        assert st == "paused"
        assert podman("unpause", "sbx-d").returncode == 0
        assert podman("kill", "--signal", "USR1", "sbx-d").returncode == 0
        time.sleep(0.5)
        code = podman("inspect", "sbx-d", "--format", "{{.State.ExitCode}}").stdout.strip()
        assert code == str(128 + signal.SIGUSR1)
    finally:
        podman("rm", "-f", "sbx-d")


def test_ps_and_stop(podman: Podman) -> None:
    script = "trap 'exit 5' TERM; while :; do sleep 0.1; done"
    p = podman.run("-d", "--name", "sbx-s", IMAGE, "sh", "-c", script)
    assert p.returncode == 0, p.stderr
    try:
        ps = podman("ps", "--format", "{{.Names}} {{.Status}}")
        assert any(line.startswith("sbx-s Up") for line in ps.stdout.splitlines()), ps.stdout
        assert podman("stop", "-t", "10", "sbx-s").returncode == 0
        code = podman("inspect", "sbx-s", "--format", "{{.State.ExitCode}}").stdout.strip()
        assert code == "5"  # SIGTERM reached the payload, which exited on its own
    finally:
        podman("rm", "-f", "sbx-s")


def test_nothing_left_after_conmon_sigkill(podman: Podman, no_leftovers) -> None:
    p = podman.run("-d", "--name", "sbx-k", IMAGE, "sleep", "60")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    conmon = subprocess.run(["pgrep", "-f", f"conmon.*{cid}"], capture_output=True, text=True)
    for pid in conmon.stdout.split():
        os.kill(int(pid), signal.SIGKILL)
    assert podman("rm", "-f", "sbx-k").returncode == 0


def test_podman_exec(podman: Podman) -> None:
    p = podman.run("-d", "--name", "sbx-e", IMAGE, "sleep", "60")
    assert p.returncode == 0, p.stderr
    try:
        e = podman("exec", "sbx-e", "sh", "-c", "echo in; exit 3")
        assert e.returncode == 3, e.stderr
        assert e.stdout == "in\n"
        # A program the container lacks: 127 and runc's wording, as a shell says it.
        missing = podman("exec", "sbx-e", "no-such-program")
        assert missing.returncode == 127, (missing.returncode, missing.stderr)
        assert "not found" in missing.stderr
        cmd = podman.cmd("exec", "-t", "sbx-e", "sh", "-c", "[ -t 0 ] && echo tty-yes")
        t = subprocess.run(
            ["script", "-qec", shlex.join(cmd), "/dev/null"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "tty-yes" in t.stdout, t.stdout + t.stderr
    finally:
        podman("rm", "-f", "sbx-e")


# --------------------------------------------------- linux.cgroupsPath ----
def _leaf_of(podman: Podman, name: str, runtime: str) -> tuple[str, Path]:
    """(the bundle's cgroupsPath, its directory in the memory hierarchy)."""
    cfg = podman("inspect", name, "--format", "{{.OCIConfigPath}}", runtime=runtime).stdout
    path = json.loads(Path(cfg.strip()).read_text())["linux"]["cgroupsPath"]
    return path, Path("/sys/fs/cgroup/memory") / path.lstrip("/")


def _procs(d: Path) -> list[str]:
    try:
        return (d / "cgroup.procs").read_text().split()
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("runtime", [RUNTIME, "runc"], ids=["sandbox-runtime", "runc"])
@pytest.mark.parametrize("cgroup_parent", [None, "/sbxtest-parent"])
def test_leaf_at_the_engine_cgroups_path_like_runc(
    podman: Podman, runtime: str, cgroup_parent: str | None
) -> None:
    """podman's cgroupfs path (/libpod_parent/libpod-<id>, or under --cgroup-parent): the
    container's processes and its --memory limit are there, with runc as with ours; rm
    removes the leaf."""
    if runtime == "runc" and not shutil.which("runc"):
        pytest.skip("runc is not installed (scripts/setup.sh installs it)")
    extra = ["--cgroup-parent", cgroup_parent] if cgroup_parent else []
    name = f"sbx-cg-{'runc' if runtime == 'runc' else 'sbx'}"
    p = podman.run(
        "-d", "--name", name, "--memory", "64m", *extra, IMAGE, "sleep", "60", runtime=runtime
    )
    assert p.returncode == 0, p.stderr
    try:
        path, mem = _leaf_of(podman, name, runtime)
        cid = p.stdout.strip()
        assert path == f"{cgroup_parent or '/libpod_parent'}/libpod-{cid}"
        assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
        end = time.monotonic() + 10
        while not _procs(mem):
            assert time.monotonic() < end, f"no process in {mem}"
            time.sleep(0.02)
        pid = _procs(mem)[-1]
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"sleep")
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        for ctrl in ("memory", "pids", "cpuacct", "freezer"):
            assert any(f":{ctrl}:{path}" in ln for ln in lines if f":{ctrl}:" in ln), lines
        conmon = podman("inspect", name, "--format", "{{.State.ConmonPid}}", runtime=runtime)
        assert f":memory:{path}" not in Path(f"/proc/{conmon.stdout.strip()}/cgroup").read_text()
    finally:
        podman("rm", "-f", name, runtime=runtime)
        left = mem.exists()
        if cgroup_parent:  # podman's own conmon cgroup under the parent, which it leaves
            _remove_parent(cgroup_parent, path.rsplit("/", 1)[-1])
    # Ours is gone with the container; runc 1.1 (Debian 12) leaves its leaf under a
    # --cgroup-parent (seen here: in every hierarchy, empty), so it is only tidied up.
    assert runtime == "runc" or not left


def _remove_parent(parent: str, leaf: str) -> None:
    """rmdir ``parent``, podman's conmon cgroup and an empty leftover leaf in it."""
    end = time.monotonic() + 10
    for d in Path("/sys/fs/cgroup").glob(f"*{parent}"):
        for sub in (d / leaf, d / "conmon", d):
            while sub.exists():
                try:
                    sub.rmdir()
                except OSError:
                    assert time.monotonic() < end, f"{sub} stays busy"
                    time.sleep(0.05)


@pytest.mark.xfail(
    strict=True,
    reason="podman 4.3 reads /proc/<State.Pid>/cgroup (stats) and State.Pid's mount "
    "namespace (top); State.Pid is the pid-file's, our supervisor, which conmon must "
    "reap: the leaf at cgroupsPath is right, the pid is not the container's (issue 14)",
)
def test_podman_top_and_stats_show_the_container(podman: Podman) -> None:
    p = podman.run("-d", "--name", "sbx-top", "--memory", "64m", IMAGE, "sleep", "60")
    assert p.returncode == 0, p.stderr
    try:
        top = podman("top", "sbx-top", "pid", "args")
        assert top.returncode == 0, top.stderr
        rows = [ln.split(None, 1) for ln in top.stdout.splitlines()[1:]]
        assert [r[1].strip() for r in rows] == ["sleep 60"], top.stdout
        st = podman("stats", "--no-stream", "--format", "{{.PIDs}} {{.MemUsage}}", "sbx-top")
        assert st.stdout.split()[0] == "1", st.stdout
    finally:
        podman("rm", "-f", "sbx-top")


# ------------------------------------------------------------ containerd ----
@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    if not shutil.which("containerd") or not shutil.which("containerd-shim-runc-v2"):
        pytest.skip("containerd is not installed (scripts/setup.sh installs it)")
    base = tmp_path_factory.mktemp("ctrd")
    sock = base / "sock"
    cfg = base / "config.toml"
    cfg.write_text('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
    log = (base / "log").open("w")
    proc = subprocess.Popen(
        [
            "containerd",
            "--config",
            str(cfg),
            "--root",
            str(base / "root"),
            "--state",
            str(base / "state"),
            "--address",
            str(sock),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    end = time.monotonic() + 30
    while not sock.exists():
        assert proc.poll() is None, (base / "log").read_text()
        assert time.monotonic() < end, "containerd did not start"
        time.sleep(0.05)
    yield base, sock
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_containerd_runc_shim_runs_and_removes(containerd, no_leftovers) -> None:
    base, sock = containerd
    rootfs = make_rootfs(base / "rootfs")
    p = subprocess.run(
        [
            "ctr",
            "--address",
            str(sock),
            "run",
            "--rm",
            "--runc-binary",
            RUNTIME,
            "--rootfs",
            str(rootfs),
            "sbx-ctr",
            "sh",
            "-c",
            "echo from-ctr; exit 5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 5, p.stderr
    assert "from-ctr" in p.stdout
    left = subprocess.run(
        ["ctr", "--address", str(sock), "containers", "list", "-q"], capture_output=True, text=True
    )
    assert "sbx-ctr" not in left.stdout

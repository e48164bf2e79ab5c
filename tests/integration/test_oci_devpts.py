"""The container's own /dev/pts and its console, on the real kernel and through real podman.

With a devpts mount in the bundle (podman's config.json always lists one)
the container gets a devpts instance of its own at /dev/pts and /dev/ptmx ->
pts/ptmx; with ``process.terminal`` its console is a pty of that instance,
opened by the payload itself, whose master reaches the engine through the
console socket (runc's behaviour). Checked from inside by a static probe
(tests/probes/static/ptyprobe.c): the payload's stdio is /dev/pts/0 and its
controlling terminal, it can make ptys of its own, it holds no master, and
the instance is neither the host's nor another container's.
"""

from __future__ import annotations

import array
import errno
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from ocikit import ROOT, RUNTIME, Runtime, config, make_rootfs

pytestmark = pytest.mark.requires("root", "userns")

PROBE_SRC = ROOT / "tests" / "probes" / "static" / "ptyprobe.c"
DEVPTS = {
    "destination": "/dev/pts",
    "type": "devpts",
    "source": "devpts",
    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/setup.sh installs it)")
    out = tmp_path_factory.mktemp("ptyprobe") / "ptyprobe"
    p = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(PROBE_SRC)],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        pytest.skip(f"no static libc to build the probe with: {p.stderr.strip()[:200]}")
    return out


def parse(text: str) -> dict[str, str]:
    """The probe's ``key value`` lines (a tty turns \\n into \\r\\n)."""
    out = {}
    for line in text.replace("\r", "").splitlines():
        key, _, value = line.partition(" ")
        if key in ("stdin", "ctty", "pts", "list", "own", "same", "master"):
            out[key] = value
    return out


def check_inside(got: dict[str, str], first: str = "/dev/pts/0") -> None:
    """What the probe must have seen from inside a container with a console."""
    assert got.get("stdin") == first, got  # ttyname works: the slave exists in there
    assert got["ctty"] == "1", got  # and it is the controlling terminal
    host = os.stat("/dev/pts").st_dev
    assert int(got["pts"]) != host, "the container's /dev/pts is the host's devpts"
    names = set(got["list"].split())
    assert "ptmx" in names and first.rsplit("/", 1)[1] in names, got
    own, ok = got["own"].split()
    assert own.startswith("/dev/pts/") and ok == "1", got  # a pty of its own, working
    assert got["same"] == "1", got  # allocated from the container's own instance
    assert got["master"] == "0", "the payload holds a pty master"


# ---------------------------------------------------------- runtime level ----


class ConsoleSocket:
    """An engine's end of --console-socket: takes the master, reads everything from it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(60)
        self.master = -1
        self.name = ""
        self.output = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            data, anc, _, _ = conn.recvmsg(256, socket.CMSG_SPACE(4 * fds.itemsize))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        self.name = data.decode()
        assert len(fds) == 1
        self.master = fds[0]
        while True:  # until the last slave closes: EIO
            try:
                chunk = os.read(self.master, 65536)
            except OSError as e:
                assert e.errno == errno.EIO
                break
            if not chunk:
                break
            self.output += chunk

    def close(self) -> None:
        self.thread.join(60)
        if self.master >= 0:
            os.close(self.master)
        self.sock.close()


_REAPER = """
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the supervisor is ours
rt, root, bundle, cid, pidfile, console = sys.argv[1:7]
base = [rt, "--root", root]
c = subprocess.run(base + ["create", "--bundle", bundle, "--pid-file", pidfile,
                           "--console-socket", console, cid], capture_output=True, text=True,
                   stdin=subprocess.DEVNULL)
if c.returncode != 0:
    print(json.dumps({"error": c.stdout + c.stderr}))
    sys.exit(0)
pid = int(open(pidfile).read())
subprocess.run(base + ["start", cid], check=True)
_, status = os.waitpid(pid, 0)
subprocess.run(base + ["delete", cid], check=True)
print(json.dumps({"status": status}))
"""


def run_with_console(
    tmp: Path, args: list[str], launcher: str, probe: Path, **over
) -> tuple[dict, ConsoleSocket]:
    bundle = tmp / "bundle"
    make_rootfs(bundle / "rootfs")
    shutil.copy2(probe, bundle / "rootfs/usr/bin/ptyprobe")
    cfg = config(args)
    cfg["process"]["terminal"] = True
    cfg["mounts"].append(DEVPTS)
    cfg.update(over)
    (bundle / "config.json").write_text(json.dumps(cfg))
    console = ConsoleSocket(tmp / "console.sock")
    env = {**os.environ, "SANDBOX_LAUNCHER": launcher}
    p = subprocess.run(
        [sys.executable, "-c", _REAPER, RUNTIME, str(tmp / "rt"), str(bundle), "c1",
         str(tmp / "pid"), console.path],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if "error" in out:
        console.sock.close()
        return out, console
    console.close()
    return out, console


@pytest.mark.parametrize("launcher", ["native", "python"])
def test_console_is_a_pty_of_the_containers_own_devpts(
    launcher, probe, tmp_path, no_leftovers
) -> None:
    """The engine's master is a ptmx of the container's instance, never the host's;
    inside, stdio is /dev/pts/0 and the controlling terminal; exit codes pass."""
    out, console = run_with_console(
        tmp_path, ["/bin/sh", "-c", "/usr/bin/ptyprobe && exit 3"], launcher, probe
    )
    assert "error" not in out, out
    assert os.WIFEXITED(out["status"]) and os.WEXITSTATUS(out["status"]) == 3, out
    assert console.name == "/dev/pts/0"
    got = parse(console.output.decode(errors="replace"))
    check_inside(got)


@pytest.mark.parametrize("launcher", ["native", "python"])
def test_a_terminal_without_devpts_is_refused_at_create(launcher, probe, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    make_rootfs(bundle / "rootfs")
    cfg = config(["true"])
    cfg["process"]["terminal"] = True
    (bundle / "config.json").write_text(json.dumps(cfg))
    console = ConsoleSocket(tmp_path / "console.sock")
    rt = Runtime(tmp_path / "rt")
    p = rt(
        "create", "--bundle", str(bundle), "--console-socket", console.path, "c1",
        env={**os.environ, "SANDBOX_LAUNCHER": launcher}, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    console.sock.close()
    assert p.returncode != 0
    assert "process.terminal needs a devpts mount at /dev/pts" in p.stdout + p.stderr
    assert not (tmp_path / "rt" / "c1").exists()


def test_without_a_terminal_the_container_still_has_its_own_devpts(
    probe, tmp_path, no_leftovers
) -> None:
    """No console (stdio are pipes): /dev/pts is still the container's, empty but
    for ptmx, and the payload can make ptys there."""
    bundle = tmp_path / "bundle"
    make_rootfs(bundle / "rootfs")
    shutil.copy2(probe, bundle / "rootfs/usr/bin/ptyprobe")
    cfg = config(["/usr/bin/ptyprobe"])
    cfg["mounts"].append(DEVPTS)
    (bundle / "config.json").write_text(json.dumps(cfg))
    rt = Runtime(tmp_path / "rt")
    p = rt("run", "--bundle", str(bundle), "c1", stdin=subprocess.DEVNULL, check=True)
    got = parse(p.stdout)
    assert got["stdin"] == "not-a-tty" and got["ctty"] == "0", got
    assert set(got["list"].split()) == {"ptmx"}, got  # none of the host's ptys
    assert int(got["pts"]) != os.stat("/dev/pts").st_dev
    assert got["own"].split() == ["/dev/pts/0", "1"] and got["same"] == "1", got


# ------------------------------------------------------------------ podman ----

IMAGE = "localhost/sbx-busybox-pty:test"


@pytest.fixture(scope="module")
def podman(tmp_path_factory, probe):
    from test_oci_engines import Podman

    if not shutil.which("podman") or not shutil.which("script"):
        pytest.skip("podman or script is not installed (scripts/setup.sh installs them)")
    base = tmp_path_factory.mktemp("podman-pty")
    root = make_rootfs(base / "rootfs")
    shutil.copy2(probe, root / "usr/bin/ptyprobe")
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


def under_script(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` on a pty of the host's (as a user's shell would): podman -t needs one."""
    return subprocess.run(
        ["script", "-qec", shlex.join(cmd), "/dev/null"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_podman_run_t(podman) -> None:
    """`podman run -t`: tty prints /dev/pts/0, /dev/ptmx is the container's, a program
    makes its own pty, the exit code passes, and the host's ptys (script's own,
    on the host's devpts) are not in the container's /dev/pts."""
    from test_oci_engines import ULIMITS

    script = (
        "busybox tty; test -c /dev/ptmx && echo ptmx-ok; ls -l /dev/ptmx; /usr/bin/ptyprobe; exit 5"
    )
    cmd = podman.cmd("run", "--rm", "-t", "--network", "none", *ULIMITS, IMAGE, "sh", "-c", script)
    p = under_script(cmd)
    assert p.returncode == 5, p.stdout + p.stderr
    text = p.stdout.replace("\r", "")
    assert text.splitlines()[0] == "/dev/pts/0", text
    assert "ptmx-ok" in text and "-> pts/ptmx" in text, text
    check_inside(parse(text))
    rec = podman.records()[-1]
    assert rec["exit_code"] == 5, rec
    assert any("/dev/pts: gid=5 is not mapped" in n for n in rec["notes"]), rec["notes"]


def test_podman_exec_t_and_a_second_container(podman) -> None:
    """`podman exec -t` gets a pty of the same container's instance (/dev/pts/1 beside
    the first process's /dev/pts/0); another container's instance is another."""
    from test_oci_engines import ULIMITS

    run = podman.cmd("run", "-d", "-t", "--name", "sbx-pts", "--network", "none", *ULIMITS,
                     IMAGE, "sleep", "60")  # fmt: skip
    p = under_script(run)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        e = under_script(podman.cmd("exec", "-t", "sbx-pts", "/usr/bin/ptyprobe"))
        assert e.returncode == 0, e.stdout + e.stderr
        first = parse(e.stdout)
        check_inside(first, first="/dev/pts/1")
        other = under_script(
            podman.cmd("run", "--rm", "-t", "--network", "none", *ULIMITS, IMAGE,
                       "/usr/bin/ptyprobe")
        )  # fmt: skip
        assert other.returncode == 0, other.stdout + other.stderr
        second = parse(other.stdout)
        check_inside(second)
        assert first["pts"] != second["pts"], "two containers share a devpts instance"
        assert set(second["list"].split()) == {"ptmx", "0"}, second  # not sbx-pts's 0 and 1
    finally:
        podman("rm", "-f", "-t", "0", "sbx-pts")

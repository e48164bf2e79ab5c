"""Helpers for the OCI runtime tests: busybox bundles, the runtime's command line, a reaper."""

from __future__ import annotations

import array
import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = str(ROOT / ".venv" / "bin" / "sandbox-runtime")
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
APPLETS = (
    "sh",
    "true",
    "false",
    "echo",
    "cat",
    "ls",
    "sleep",
    "id",
    "grep",
    "touch",
    "unshare",
    "kill",
    "head",
    "wc",
    "env",
    "mkdir",
    "stat",
)


def make_rootfs(path: Path, usr: bool = True) -> Path:
    """A busybox root: /usr/bin/busybox with applet links, /bin -> usr/bin (merged usr)."""
    bindir = path / ("usr/bin" if usr else "bin")
    bindir.mkdir(parents=True)
    shutil.copy2(BUSYBOX, bindir / "busybox")
    for a in APPLETS:
        (bindir / a).symlink_to("busybox")
    if usr:
        (path / "bin").symlink_to("usr/bin")
    for d in ("etc", "tmp", "proc", "dev", "root", "run"):
        (path / d).mkdir(exist_ok=True)
    (path / "tmp").chmod(0o1777)
    (path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (path / "etc/group").write_text("root:x:0:\n")
    return path


def config(args: list[str], **over: Any) -> dict[str, Any]:
    """A minimal valid config.json (runtime-spec 1.0.2) running ``args``."""
    caps = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/bin:/bin", "HOME=/root"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs"},
        "hostname": "oci-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "mode=755", "size=65536k"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "resources": {"pids": {"limit": 64}, "memory": {"limit": 256 << 20}},
        },
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def make_bundle(tmp: Path, args: list[str], **over: Any) -> Path:
    """A bundle directory with a busybox rootfs and a config.json."""
    b = tmp / "bundle"
    if not (b / "rootfs").exists():
        make_rootfs(b / "rootfs")
    (b / "config.json").write_text(json.dumps(config(args, **over)))
    return b


class Runtime:
    """``sandbox-runtime --root ROOT ...`` with a private state root."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, *args: str, check: bool = False, **kw: Any) -> subprocess.CompletedProcess:
        """Run one command. Output goes through files, not pipes: the container's
        supervisor inherits create's stdio (the payload's), as runc's init does, and
        would hold a pipe open for the container's whole life."""
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            p = subprocess.run(
                [RUNTIME, "--root", str(self.root), *args], stdout=out, stderr=err, **kw
            )
            out.seek(0)
            err.seek(0)
            p.stdout, p.stderr = out.read(), err.read()
        if check and p.returncode != 0:
            raise AssertionError(f"{args}: rc={p.returncode}: {p.stderr}")
        return p

    def state(self, cid: str) -> dict[str, Any]:
        p = self("state", cid, check=True)
        return json.loads(p.stdout)

    def wait_status(self, cid: str, want: str, timeout: float = 20) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            st = self.state(cid)
            if st["status"] == want or time.monotonic() > end:
                return st
            time.sleep(0.02)


_REAPER = """
import ctypes, json, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: the supervisor is ours
rt, root, bundle, cid, pidfile = sys.argv[1:6]
base = [rt, "--root", root]
subprocess.run(base + ["create", "--bundle", bundle, "--pid-file", pidfile, cid], check=True)
pid = int(open(pidfile).read())
subprocess.run(base + ["start", cid], check=True)
_, status = os.waitpid(pid, 0)
subprocess.run(base + ["delete", cid], check=True)
print(json.dumps({"pid": pid, "status": status}))
"""


def supervisor_status(rt: Runtime, bundle: Path, cid: str) -> tuple[int, int]:
    """Run a container as an engine would (a subreaper waits for the pid-file's pid):
    (the supervisor's pid, its wait status)."""
    p = subprocess.run(
        [
            sys.executable,
            "-c",
            _REAPER,
            RUNTIME,
            str(rt.root),
            str(bundle),
            cid,
            str(bundle / "pidfile"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["pid"], out["status"]


# ------------------------------------------------------- devpts and console ----
PROBE_SRC = ROOT / "tests" / "probes" / "static" / "ptyprobe.c"
DEVPTS = {
    "destination": "/dev/pts",
    "type": "devpts",
    "source": "devpts",
    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
}


def build_ptyprobe(out_dir: Path) -> Path:
    """tests/probes/static/ptyprobe.c, built static (busybox roots have no libc)."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed (scripts/setup.sh installs it)")
    out = out_dir / "ptyprobe"
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


class ConsoleSocket:
    """An engine's end of --console-socket: takes the master, reads everything from it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(600)
        self.master = -1
        self.name = ""
        self.output = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:  # closed unused: create was refused before it connected
            return
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
        self.thread.join(600)
        if self.master >= 0:
            os.close(self.master)
        self.sock.close()


_CONSOLE_REAPER = """
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
    tmp: Path,
    args: list[str],
    launcher: str,
    probe: Path,
    mutate: Callable[[dict[str, Any]], None] | None = None,
    timeout: float = 120,
) -> tuple[dict, ConsoleSocket]:
    """create (with a console socket), start, wait, delete, as an engine would:
    ({"status": wait status} or {"error": create's output}, the engine's end)."""
    bundle = tmp / "bundle"
    make_rootfs(bundle / "rootfs")
    shutil.copy2(probe, bundle / "rootfs/usr/bin/ptyprobe")
    cfg = config(args)
    cfg["process"]["terminal"] = True
    cfg["mounts"].append(DEVPTS)
    if mutate is not None:
        mutate(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))
    console = ConsoleSocket(tmp / "console.sock")
    env = {**os.environ, "SANDBOX_LAUNCHER": launcher}
    p = subprocess.run(
        [sys.executable, "-c", _CONSOLE_REAPER, RUNTIME, str(tmp / "rt"), str(bundle), "c1",
         str(tmp / "pid"), console.path],
        capture_output=True,
        text=True,
        timeout=timeout,
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

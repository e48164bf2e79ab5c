"""Helpers for the OCI runtime tests: busybox bundles, the runtime's command line, a reaper."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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

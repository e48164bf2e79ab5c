"""Helpers shared by the test suites: host features, the CLI runner, probes, leak checks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "tests" / "probes"
BUILD = PROBES / "build"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _landlock_abi() -> int:
    from sandbox.syscalls.probes import landlock_abi

    return landlock_abi()


FEATURES: dict[str, Any] = {
    "root": os.geteuid() == 0,
    "userns": int(_read("/proc/sys/user/max_user_namespaces") or 0) > 0,
    "cgroup_v1": os.path.isdir("/sys/fs/cgroup/memory")
    and not os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    "cgroup_v2": os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    "landlock": _landlock_abi(),
    "apparmor": _read("/sys/module/apparmor/parameters/enabled").strip() == "Y",
    "kvm_guest": os.environ.get("KVM_RUN") == "1",
    "gcc": any(
        os.access(os.path.join(d, "gcc"), os.X_OK) for d in os.environ.get("PATH", "").split(":")
    ),
}


def feature_missing(feature: str) -> str | None:
    """None when the host has ``feature`` (``landlock>=3`` style allowed), else why not."""
    if ">=" in feature:
        name, want = feature.split(">=")
        have = FEATURES.get(name, 0)
        return None if have >= int(want) else f"{name} is {have}"
    if feature not in FEATURES:
        return f"unknown feature {feature!r}"
    return None if FEATURES[feature] else "not available on this host"


@dataclass
class CliResult:
    """What ``sandbox exec`` did: status, output and the run record (None if not written)."""

    rc: int
    out: str
    err: str
    record: dict[str, Any] | None


def sandbox_cmd() -> list[str]:
    """How to start the CLI as its entry point does (the venv's interpreter, not the pyenv
    shim): ``exec`` through the zygote (``SANDBOX_ZYGOTE=0`` runs it in-process)."""
    return [sys.executable, "-m", "sandbox.cli.fast"]


def run_cli(
    args: list[str],
    *,
    tmp: Path,
    input: bytes | None = None,
    timeout: float = 120,
    meta: bool = True,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
) -> CliResult:
    """Run ``sandbox <args>``; ``--meta`` is added after ``exec`` when ``meta``.

    ``stdin`` is an fd for the CLI's (and so the payload's) standard input,
    when ``input`` is not given.
    """
    meta_path = tmp / f"meta-{os.urandom(4).hex()}.json"
    argv = list(args)
    if meta and argv and argv[0] == "exec":
        argv[1:1] = ["--meta", str(meta_path)]
    extra = os.environ.get("SANDBOX_TEST_EXTRA_ARGS", "").split()
    if extra and argv and argv[0] == "exec":
        argv[1:1] = extra
    p = subprocess.run(
        [*sandbox_cmd(), *argv],
        input=input,
        stdin=stdin if input is None else None,
        capture_output=True,
        timeout=timeout,
        cwd=tmp,
        env={**os.environ, **(env or {})},
    )
    record = json.loads(meta_path.read_text()) if meta_path.exists() else None
    return CliResult(
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), record
    )


def build_probes() -> dict[str, Path]:
    """Compile tests/probes/*.c into tests/probes/build (again only when a source is newer)."""
    BUILD.mkdir(exist_ok=True)
    built = {}
    for src in sorted(PROBES.glob("*.c")):
        out = BUILD / src.stem
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(
                [
                    "gcc",
                    "-O2",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    "-o",
                    str(out),
                    str(src),
                    "-lpthread",
                ],
                check=True,
            )
        built[src.stem] = out
    return built


def host_snapshot() -> dict[str, Any]:
    """What a run must not leave behind: mounts, run locks, cgroup leaves, processes."""
    leaves = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        for dirpath, dirnames, _ in os.walk(base):
            leaves += [os.path.join(dirpath, d) for d in dirnames if d.startswith("sbx-")]
            if dirpath.count("/") > 8:
                dirnames[:] = []
    runs = sorted(os.listdir("/run/sandbox/runs")) if os.path.isdir("/run/sandbox/runs") else []
    runs = [e for e in runs if e != "leaf-tag"]  # the directory's own, made once
    return {
        "mounts": len(Path("/proc/self/mountinfo").read_text().splitlines()),
        "runs": runs,
        "leaves": sorted(leaves),
        "procs": sorted(
            p
            for p in os.listdir("/proc")
            if p.isdigit() and int(p) != os.getpid() and (_is_sandbox_cmd(p) or _in_slot_range(p))
        ),
    }


def _is_sandbox_cmd(pid: str) -> bool:
    """A CLI, or a zygote's fork running one (the zygote itself outlives calls on purpose)."""
    cmd = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
    if "sandbox.cli.main" in cmd or "sandbox.cli.fast" in cmd:
        return True
    if "sandbox.cli.zygote" not in cmd:
        return False
    if _read(f"/proc/{pid}/comm").strip() == "sandbox-spare":
        return False  # a fork made ahead for the next call: part of the zygote, no run's
    stat = _read(f"/proc/{pid}/stat")
    ppid = stat.rsplit(")", 1)[1].split()[1] if ")" in stat else "0"
    return "sandbox.cli.zygote" in _read(f"/proc/{ppid}/cmdline")


def _in_slot_range(pid: str) -> bool:
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            return 61000 <= int(line.split()[1]) <= 61999
    return False


def leaf_run_id(path: str) -> str:
    """The run id in a leaf's path ``.../sbx-<tag>-<run_id>`` (``tag``: the supervisor's
    runtime directory, sandbox.runner.acquire.leaf_prefix); a lock's name too."""
    name = path.rsplit("/", 1)[-1].removesuffix(".lock").removeprefix("sbx-")
    return name[9:] if re.match(r"^[0-9a-f]{8}-", name) else name

"""linux.cgroupsPath on real cgroups: the leaf where the engine asks, and everything through it.

Accounting, pause/resume, kill, delete and ``delete --force`` after the
supervisor and its watchdog were SIGKILLed, with the leaf at an absolute path
(from each hierarchy's root) and at a relative one (under the runtime's own
cgroup); the path is refused when systemd-style, when its leaf exists, and
when a bind mount is planted on the way. Each test uses a parent of its own
(``sbxtest-<random>``) and checks it is gone at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ocikit import RUNTIME, Runtime, make_bundle

pytestmark = pytest.mark.requires("root", "userns")
CG = Path("/sys/fs/cgroup")


def _bundle(tmp: Path, args: list[str], path: str, **res) -> Path:
    b = make_bundle(tmp, args)
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = path
    cfg["linux"]["resources"].update(res)
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def _mount(controller: str) -> Path:
    """The v1 mount holding ``controller``, else the v2 one."""
    for p in CG.iterdir():
        if controller in p.name.split(","):
            return p
    return CG / "unified" if (CG / "unified").is_dir() else CG


def _own(controller: str) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if controller in ctrls.split(",") or (
            not ctrls and _mount(controller) in (CG, CG / "unified")
        ):
            return path
    raise AssertionError(controller)


def _by_controllers(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as controllers -> path (hierarchy ids differ between mounts)."""
    return {ln.split(":", 2)[1]: ln.split(":", 2)[2] for ln in text.splitlines()}


def _procs(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def _wait(cond, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.fixture
def parent():
    """A fresh top-level name; nothing of it may be left in any hierarchy afterwards."""
    name = f"sbxtest-{secrets.token_hex(4)}"
    yield name
    left = [str(p) for p in CG.glob(f"*/{name}")] + [str(p) for p in CG.glob(name)]
    for p in sorted(left, key=len, reverse=True):  # tidy up, then fail
        subprocess.run(["find", p, "-depth", "-type", "d", "-delete"], capture_output=True)
    assert not left, left


def test_absolute_path_limits_accounting_pause_kill_delete(tmp_path: Path, parent, no_leftovers):
    rt = Runtime(tmp_path / "state")
    own_before = Path("/proc/self/cgroup").read_text()
    b = _bundle(
        tmp_path,
        ["sh", "-c", "head -c 3000000 /dev/zero > /tmp/f; sleep 60"],
        f"/{parent}/ctr",
        memory={"limit": 64 << 20},
        pids={"limit": 40},
    )
    rt("create", "--bundle", str(b), "p1", check=True)
    try:
        mem = _mount("memory") / parent / "ctr"
        pids = _mount("pids") / parent / "ctr"
        freezer = _mount("freezer")
        assert int((mem / "memory.limit_in_bytes").read_text()) == 64 << 20
        assert (pids / "pids.max").read_text().strip() == "40"
        st = json.loads((rt.root / "p1" / "state.json").read_text())
        assert str(mem) in st["cgroup_dirs"] and st["status"] == "created"
        rt("start", "p1", check=True)
        _wait(lambda: bool(_procs(mem)))
        payload = _procs(mem)[0]
        cg = Path(f"/proc/{payload}/cgroup").read_text()
        assert f":memory:/{parent}/ctr\n" in cg and f":pids:/{parent}/ctr\n" in cg
        # The runtime's caller (this test) was not moved anywhere (hierarchies another
        # test mounted or unmounted meanwhile, net_cls/net_prio, are not compared).
        now = _by_controllers(Path("/proc/self/cgroup").read_text())
        before = _by_controllers(own_before)
        assert {k: now[k] for k in before if k in now} == {
            k: v for k, v in before.items() if k in now
        }
        ps = rt("ps", "--format", "json", "p1", check=True)
        assert payload in json.loads(ps.stdout)
        if (freezer / "freezer.state").exists() or (freezer / parent).exists():
            rt("pause", "p1", check=True)
            assert (freezer / parent / "ctr" / "freezer.state").read_text().strip() == "FROZEN"
            rt("resume", "p1", check=True)
            assert (freezer / parent / "ctr" / "freezer.state").read_text().strip() == "THAWED"
        _wait(lambda: int((mem / "memory.max_usage_in_bytes").read_text()) > 3_000_000)
        rt("kill", "p1", "KILL", check=True)
        rt.wait_status("p1", "stopped")
        rec = json.loads((rt.root / "records" / "p1.json").read_text())
        assert rec["memory_peak"] > 3_000_000, rec  # the leaf's figures
        assert "leaf ctr" in rec["enforcement"]["cgroups"]["detail"]
    finally:
        rt("delete", "--force", "p1", check=True)
    assert not list(CG.glob(f"*/{parent}"))  # the leaf and the parents made for it


def test_memory_verdict_through_the_engine_placed_leaf(tmp_path: Path, parent, no_leftovers):
    rt = Runtime(tmp_path / "state")
    b = _bundle(
        tmp_path,
        ["sh", "-c", "head -c 100000000 /dev/zero > /tmp/f"],
        f"/{parent}/ctr",
        memory={"limit": 32 << 20},
    )
    rt("create", "--bundle", str(b), "p7", check=True)
    try:
        rt("start", "p7", check=True)
        rt.wait_status("p7", "stopped")
        rec = json.loads((rt.root / "records" / "p7.json").read_text())
        assert rec["verdict"] == "MEMORY_LIMIT" and rec["oom_killed"], rec
    finally:
        rt("delete", "--force", "p7", check=True)


def test_relative_path_goes_under_the_runtime_own_cgroup(tmp_path: Path, parent, no_leftovers):
    rt = Runtime(tmp_path / "state")
    b = _bundle(tmp_path, ["sleep", "30"], f"{parent}/ctr")
    rt("create", "--bundle", str(b), "p2", check=True)
    try:
        rt("start", "p2", check=True)
        mem = _mount("memory") / _own("memory").lstrip("/") / parent / "ctr"
        _wait(lambda: bool(_procs(mem)))
        cg = Path(f"/proc/{_procs(mem)[0]}/cgroup").read_text()
        assert f":memory:{_own('memory').rstrip('/')}/{parent}/ctr\n" in cg
    finally:
        rt("delete", "--force", "p2", check=True)
    assert not list(_mount("memory").glob(f"**/{parent}"))


@pytest.mark.parametrize("paused", [False, True])
def test_delete_force_after_supervisor_and_watchdog_are_killed(
    tmp_path: Path, parent, paused: bool, no_leftovers
):
    rt = Runtime(tmp_path / "state")
    b = _bundle(tmp_path, ["sleep", "60"], f"/{parent}/ctr")
    rt("create", "--bundle", str(b), "p3", check=True)
    rt("start", "p3", check=True)
    mem = _mount("memory") / parent / "ctr"
    _wait(lambda: bool(_procs(mem)))
    if paused:
        rt("pause", "p3", check=True)
    sup = rt.state("p3")["pid"]
    os.killpg(os.getpgid(sup), signal.SIGKILL)  # the supervisor and its launcher (watchdog)
    _wait(lambda: rt.state("p3")["status"] == "stopped")
    rt("delete", "--force", "p3", check=True)
    assert not (rt.root / "p3").exists()
    assert not list(CG.glob(f"*/{parent}"))


@pytest.mark.parametrize("paused", [False, True])
def test_watchdog_removes_the_leaf_when_the_supervisor_dies(
    tmp_path: Path, parent, paused: bool, no_leftovers
):
    """Only the supervisor is SIGKILLed: its launcher (the watchdog) kills the run and
    removes the leaf at the engine's path by itself, a paused one too, before any delete."""
    rt = Runtime(tmp_path / "state")
    b = _bundle(tmp_path, ["sleep", "60"], f"/{parent}/ctr")
    rt("create", "--bundle", str(b), "p8", check=True)
    try:
        rt("start", "p8", check=True)
        mem = _mount("memory") / parent / "ctr"
        _wait(lambda: bool(_procs(mem)))
        if paused:
            rt("pause", "p8", check=True)
        os.kill(rt.state("p8")["pid"], signal.SIGKILL)
        _wait(lambda: not list(CG.glob(f"*/{parent}/ctr")), timeout=10)
    finally:
        rt("delete", "--force", "p8", check=True)


def test_systemd_path_refused_in_one_line(tmp_path: Path, no_leftovers) -> None:
    rt = Runtime(tmp_path / "state")
    b = _bundle(tmp_path, ["true"], "machine.slice:libpod:abc")
    p = rt("create", "--bundle", str(b), "p4")
    assert p.returncode == 1
    err = p.stderr.strip()
    assert "linux.cgroupsPath" in err and "systemd" in err and "\n" not in err
    assert not (rt.root / "p4").exists()


def test_existing_leaf_is_refused_and_left_alone(tmp_path: Path, parent, no_leftovers) -> None:
    rt = Runtime(tmp_path / "state")
    theirs = _mount("pids") / parent / "ctr"
    theirs.mkdir(parents=True)
    try:
        b = _bundle(tmp_path, ["true"], f"/{parent}/ctr")
        p = rt("create", "--bundle", str(b), "p5")
        assert p.returncode == 1 and "exists already" in p.stderr, p.stderr
        assert theirs.is_dir()  # not ours: untouched
        assert not (rt.root / "p5").exists()
        assert [d.name for d in CG.glob(f"*/{parent}")] == [parent]  # only the pids one
    finally:
        theirs.rmdir()
        theirs.parent.rmdir()


def test_bind_planted_on_the_path_is_refused(tmp_path: Path, parent, no_leftovers) -> None:
    """A bind mount over a component (in a private mount namespace) is never crossed."""
    rt = Runtime(tmp_path / "state")
    b = _bundle(tmp_path, ["true"], f"/{parent}/ctr")
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    mem = _mount("memory") / parent
    mem.mkdir()
    try:
        script = (
            f"mount --bind {decoy} {mem} || exit 77; "
            f"{RUNTIME} --root {rt.root} create --bundle {b} p6"
        )
        p = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if p.returncode == 77:
            pytest.skip(f"cannot bind-mount here: {p.stderr.strip()}")
        assert p.returncode == 1, p.stderr
        assert "linux.cgroupsPath" in p.stderr and "cross-device" in p.stderr, p.stderr
        assert list(decoy.iterdir()) == []  # nothing made through the bind
        assert not (rt.root / "p6").exists()
    finally:
        mem.rmdir()


def test_delete_of_a_stopped_container_never_touches_a_later_one_at_its_path(
    tmp_path: Path, parent, no_leftovers
) -> None:
    """c1 stopped (its leaf released), c2 made anew at the same cgroupsPath: `delete c1`
    must not kill c2 (attack2 #2: c1's state still named the path)."""
    rt = Runtime(tmp_path / "state")
    b1 = _bundle(tmp_path / "1", ["true"], f"/{parent}/ctr")
    b2 = _bundle(tmp_path / "2", ["sleep", "60"], f"/{parent}/ctr")
    rt("create", "--bundle", str(b1), "r1", check=True)
    try:
        rt("start", "r1", check=True)
        rt.wait_status("r1", "stopped")
        rt("create", "--bundle", str(b2), "r2", check=True)
        rt("start", "r2", check=True)
        assert rt.wait_status("r2", "running")["status"] == "running"
        assert rt("delete", "r1").returncode == 0
        time.sleep(0.3)
        assert rt.state("r2")["status"] == "running"
        assert _procs(_mount("pids") / parent / "ctr"), "r2's processes are gone"
    finally:
        rt("delete", "--force", "r1")
        rt("delete", "--force", "r2", check=True)

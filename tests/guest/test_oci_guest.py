"""sandbox-runtime in the kvm-run guest: cgroup v2 (freezer, hugetlb, no net_cls) and AppArmor.

Debian's 6.1 kernel with AppArmor and every v2 controller, the runner as root
in the root cgroup; state on the guest's tmpfs. One container goes through
the lifecycle with a hugetlb limit (read back from its v2 leaf), pause and
resume through ``cgroup.freeze``, an exec; a bundle's ``apparmorProfile``
(a profile loaded here, as an engine loads its own) confines the payload; a
bundle asking for net_cls is refused (v2 has no equivalent).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ocikit import Runtime, make_bundle

pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1" or not os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
    reason="runs in the kvm-run guest (cgroup v2, AppArmor) only",
)
PROFILE = "sbx-oci-guest-test"


@pytest.fixture(scope="module", autouse=True)
def state_dir():
    os.environ.setdefault("SANDBOX_STATE_DIR", "/tmp/sandbox-state")


def _leaf(rt: Runtime, cid: str, name: str) -> str:
    st = json.loads((rt.root / cid / "state.json").read_text())
    for d in st["cgroup_dirs"]:
        if (Path(d) / name).exists():
            return (Path(d) / name).read_text()
    raise AssertionError(f"no {name} in {st['cgroup_dirs']}")


def test_lifecycle_on_cgroup_v2(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["sleep", "60"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 4 << 20}]
    (b / "config.json").write_text(json.dumps(cfg))
    rt("create", "--bundle", str(b), "g1", check=True, timeout=300)
    try:
        assert int(_leaf(rt, "g1", "hugetlb.2MB.max")) == 4 << 20
        rt("start", "g1", check=True, timeout=120)
        rt("pause", "g1", check=True, timeout=120)
        assert rt.state("g1")["status"] == "paused"
        assert _leaf(rt, "g1", "cgroup.freeze").strip() == "1"
        rt("resume", "g1", check=True, timeout=120)
        assert _leaf(rt, "g1", "cgroup.freeze").strip() == "0"
        e = rt("exec", "g1", "sh", "-c", "grep Seccomp: /proc/self/status; exit 3", timeout=300)
        assert e.returncode == 3 and "Seccomp:\t2" in e.stdout
    finally:
        rt("delete", "--force", "g1", check=True, timeout=120)
    assert not (rt.root / "g1").exists()


def test_net_cls_refused_on_v2(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["true"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["resources"]["network"] = {"classID": 7}
    (b / "config.json").write_text(json.dumps(cfg))
    p = rt("create", "--bundle", str(b), "g2", timeout=300)
    assert p.returncode != 0 and "cgroup v2 has no equivalent" in p.stderr
    assert not (rt.root / "g2").exists()


def _apparmor() -> bool:
    try:
        return "apparmor" in Path("/sys/kernel/security/lsm").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not _apparmor(), reason="no AppArmor")
def test_bundle_apparmor_profile_confines_the_payload(tmp_path: Path) -> None:
    text = (
        f"abi <abi/3.0>,\nprofile {PROFILE} flags=(attach_disconnected) {{\n"
        "  file,\n  signal,\n  deny /etc/hostname r,\n}\n"
    )
    (tmp_path / "p").write_text(text)
    subprocess.run(["apparmor_parser", "-r", str(tmp_path / "p")], check=True)
    try:
        rt = Runtime(tmp_path / "state")
        b = make_bundle(
            tmp_path,
            [
                "sh",
                "-c",
                "cat /proc/self/attr/current; cat /etc/passwd "
                ">/dev/null && echo passwd-ok; cat /etc/hostname",
            ],
        )
        cfg = json.loads((b / "config.json").read_text())
        cfg["process"]["apparmorProfile"] = PROFILE
        (b / "rootfs" / "etc" / "hostname").write_text("x\n")
        (b / "config.json").write_text(json.dumps(cfg))
        p = rt("run", "--bundle", str(b), "g3", timeout=300)
        assert PROFILE in p.stdout and "passwd-ok" in p.stdout
        assert p.returncode != 0  # /etc/hostname denied by the bundle's profile
        rec = json.loads((rt.root / "records" / "g3.json").read_text())
        assert PROFILE in rec["enforcement"]["apparmor"]["detail"]
    finally:
        subprocess.run(["apparmor_parser", "-R", str(tmp_path / "p")], check=False)


# The container's own devpts and its console (tests/integration/test_oci_devpts.py on the
# host): on 6.1 (no detached overlay layers), through cgroup v2's BPF device filter
# (5:2 and 136:* let through), and under AppArmor, which revalidates the fds a
# payload inherits at exec (the console must stay its stdio).
LAUNCHER = os.environ.get("SANDBOX_LAUNCHER", "native")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    from ocikit import build_ptyprobe

    return build_ptyprobe(tmp_path_factory.mktemp("ptyprobe"))


def test_console_on_cgroup_v2(tmp_path: Path, probe: Path) -> None:
    from ocikit import check_inside, parse, run_with_console

    out, console = run_with_console(
        tmp_path, ["/bin/sh", "-c", "/usr/bin/ptyprobe && exit 3"], LAUNCHER, probe, timeout=600
    )
    assert "error" not in out, out
    assert os.WEXITSTATUS(out["status"]) == 3, out
    assert console.name == "/dev/pts/0"
    check_inside(parse(console.output.decode(errors="replace")))


@pytest.mark.skipif(not _apparmor(), reason="no AppArmor")
@pytest.mark.parametrize("how", ["bundle", "annotation"])
def test_console_stays_the_payloads_under_apparmor(tmp_path: Path, probe: Path, how) -> None:
    """The bundle's own profile (an engine's, allowing files) or our strict layers on
    top (the generated profile): the pty the payload opened before exec is still its
    stdio after the exec-time profile change."""
    from ocikit import parse, run_with_console

    loaded = tmp_path / "p"
    if how == "bundle":
        loaded.write_text(
            f"abi <abi/3.0>,\nprofile {PROFILE} flags=(attach_disconnected) {{\n"
            "  file,\n  signal,\n}\n"
        )
        subprocess.run(["apparmor_parser", "-r", str(loaded)], check=True)

    def confine(cfg):
        if how == "bundle":
            cfg["process"]["apparmorProfile"] = PROFILE
        else:
            cfg["annotations"] = {"run.sandbox.profile": "strict"}

    try:
        out, console = run_with_console(
            tmp_path,
            ["/bin/sh", "-c", "cat /proc/self/attr/current; /usr/bin/ptyprobe"],
            LAUNCHER,
            probe,
            mutate=confine,
            timeout=600,
        )
    finally:
        if how == "bundle":
            subprocess.run(["apparmor_parser", "-R", str(loaded)], check=False)
    assert "error" not in out, out
    text = console.output.decode(errors="replace")
    got = parse(text)
    assert got.get("stdin") == "/dev/pts/0", text
    assert "unconfined" not in text.splitlines()[0], text


def test_cgroups_path_on_v2(tmp_path: Path) -> None:
    """linux.cgroupsPath on cgroup v2: the leaf at the path from the root, the controllers
    enabled in the parent made for it, the freezer and kill through it, all gone after."""
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["sleep", "60"])
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["cgroupsPath"] = "/sbxg-parent/ctr"
    cfg["linux"]["resources"].update(memory={"limit": 64 << 20}, pids={"limit": 50})
    (b / "config.json").write_text(json.dumps(cfg))
    cg = Path("/sys/fs/cgroup")
    rt("create", "--bundle", str(b), "g4", check=True, timeout=300)
    try:
        leaf = cg / "sbxg-parent" / "ctr"
        assert int((leaf / "memory.max").read_text()) == 64 << 20
        assert (leaf / "pids.max").read_text().strip() == "50"
        enabled = (cg / "sbxg-parent" / "cgroup.subtree_control").read_text().split()
        assert {"memory", "pids"} <= set(enabled)
        rt("start", "g4", check=True, timeout=120)
        pid = (leaf / "cgroup.procs").read_text().split()[0]
        assert Path(f"/proc/{pid}/cgroup").read_text() == "0::/sbxg-parent/ctr\n"
        rt("pause", "g4", check=True, timeout=120)
        assert (leaf / "cgroup.freeze").read_text().strip() == "1"
        rt("resume", "g4", check=True, timeout=120)
    finally:
        rt("delete", "--force", "g4", check=True, timeout=120)
    assert not (cg / "sbxg-parent").exists()


def test_cgroups_path_under_a_cgroup_with_processes_is_refused(tmp_path: Path) -> None:
    """v2's no-internal-processes rule: an ancestor holding a process is never written to,
    and the required memory controller refuses create in one line."""
    cg = Path("/sys/fs/cgroup/sbxg-busy")
    cg.mkdir()
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (cg / "cgroup.procs").write_text(str(holder.pid))
        rt = Runtime(tmp_path / "state")
        b = make_bundle(tmp_path, ["true"])
        cfg = json.loads((b / "config.json").read_text())
        cfg["linux"]["cgroupsPath"] = "/sbxg-busy/ctr"
        (b / "config.json").write_text(json.dumps(cfg))
        p = rt("create", "--bundle", str(b), "g5", timeout=300)
        assert p.returncode != 0 and "no internal processes" in p.stderr, p.stderr
        assert (cg / "cgroup.subtree_control").read_text().split() == []
        assert not (cg / "ctr").exists() and not (rt.root / "g5").exists()
    finally:
        holder.kill()
        holder.wait()
        cg.rmdir()

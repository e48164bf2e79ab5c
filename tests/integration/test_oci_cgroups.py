"""hugetlb and net_cls/net_prio through bundles and profiles (cgroup v1, v2, hybrid).

On this hybrid host hugetlb sits on the v2 hierarchy beside v1 controllers;
net_cls/net_prio are in no hierarchy until one is mounted, which a test does
in a private mount namespace (nothing of it reaches the host's mount table).
Limits are read back from the leaf while the container runs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ocikit import RUNTIME, Runtime, make_bundle

pytestmark = pytest.mark.requires("root", "userns")


def _hugetlb_available() -> bool:
    return any(Path("/sys/fs/cgroup").glob("**/hugetlb.2MB.max")) or any(
        Path("/sys/fs/cgroup").glob("hugetlb*/hugetlb.2MB.limit_in_bytes")
    )


def _with_resources(b: Path, **res) -> None:
    cfg = json.loads((b / "config.json").read_text())
    cfg["linux"]["resources"].update(res)
    (b / "config.json").write_text(json.dumps(cfg))


def _leaf_file(rt: Runtime, cid: str, name: str) -> str:
    st = json.loads((rt.root / cid / "state.json").read_text())
    for d in st["cgroup_dirs"]:
        f = Path(d) / name
        if f.exists():
            return f.read_text()
    raise AssertionError(f"no {name} in {st['cgroup_dirs']}")


@pytest.mark.skipif(not _hugetlb_available(), reason="no hugetlb controller on this host")
def test_bundle_hugepage_limits(tmp_path: Path) -> None:
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["sleep", "30"])
    _with_resources(b, hugepageLimits=[{"pageSize": "2MB", "limit": 4 << 20}])
    rt("create", "--bundle", str(b), "h1", check=True)
    try:
        v2 = "hugetlb.2MB.max"
        try:
            value = _leaf_file(rt, "h1", v2)
        except AssertionError:
            value = _leaf_file(rt, "h1", "hugetlb.2MB.limit_in_bytes")
        assert int(value) == 4 << 20
    finally:
        rt("delete", "--force", "h1", check=True)


def test_bundle_net_classid_refused_without_a_hierarchy(tmp_path: Path, no_leftovers) -> None:
    mounted = any(p.name.startswith("net_cls") for p in Path("/sys/fs/cgroup").iterdir())
    if mounted:
        pytest.skip("this host mounts net_cls")
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["true"])
    _with_resources(b, network={"classID": 0x100001})
    p = rt("create", "--bundle", str(b), "n1")
    assert p.returncode != 0
    assert "net_cls" in p.stderr and "mount -t cgroup -o net_cls,net_prio" in p.stderr
    assert not (rt.root / "n1").exists()


def test_bundle_net_cls_and_prio_where_mounted(tmp_path: Path) -> None:
    """A v1 net_cls,net_prio hierarchy mounted in a private mount namespace: the
    container's leaf there carries the classid and the priority map."""
    rt = Runtime(tmp_path / "state")
    b = make_bundle(tmp_path, ["sh", "-c", "cat /proc/self/cgroup"])
    _with_resources(b, network={"classID": 0x100001, "priorities": [{"name": "lo", "priority": 5}]})
    mnt = tmp_path / "netcls"
    mnt.mkdir()
    script = (
        f"mount -t cgroup -o net_cls,net_prio none {mnt} || exit 77; "
        f"{RUNTIME} --root {rt.root} create --bundle {b} n2 || exit 1; "
        f"cat {mnt}/sbx-*/net_cls.classid; grep '^lo ' {mnt}/sbx-*/net_prio.ifpriomap; "
        f"{RUNTIME} --root {rt.root} start n2; "
        f"while {RUNTIME} --root {rt.root} state n2 | grep -q running; do sleep 0.02; done; "
        f"{RUNTIME} --root {rt.root} delete n2"
    )
    p = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode == 77:
        pytest.skip(f"cannot mount a net_cls,net_prio hierarchy here: {p.stderr.strip()}")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert str(0x100001) in lines
    assert "lo 5" in lines
    assert any(line.startswith("10:net_cls,net_prio:/") or "net_cls" in line for line in lines)

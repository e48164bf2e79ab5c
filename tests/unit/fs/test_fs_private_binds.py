"""Read-only host directories become private overlays (issue 13 item 7): which ones, and with
which flags the child mounts them (traced on the recording fake, as verify does)."""

from __future__ import annotations

from sandbox.fs.ops import BindMount, MountPlan, UpperEntry, has_submounts, private_bind
from sandbox.verify.mountflags import NODEV, NOSUID, RDONLY, trace


def test_only_read_only_directories_without_submounts_are_private(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (tmp_path / "f").write_text("x")
    assert private_bind(BindMount(str(d), "/d", False, True)).private
    assert not private_bind(BindMount(str(d), "/d", True, True)).private  # shared on purpose
    assert not private_bind(BindMount(str(tmp_path / "f"), "/f", False, True)).private


def test_submounts_are_found_in_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /usr rw - ext4 /dev/sda1 rw\n"
        "23 22 0:22 / /usr/local\\040dir rw - ext4 /dev/sdb1 rw\n"
    )
    assert has_submounts("/usr", str(info))
    assert not has_submounts("/opt", str(info))
    assert not has_submounts("/usr/local dir", str(info))


def test_a_private_overlay_is_read_only_nosuid_nodev():
    plan = MountPlan(
        lowers=("/img",),
        upper_size=1 << 20,
        upper_inodes=100,
        upper_entries=(UpperEntry("box", 0o755, "payload"),),
        binds=(BindMount("/usr", "/usr", False, True, private=True),),
        tmpfs=(),
        writable=("/box",),
        proc_subset_pid=True,
    )
    usr = next(m for m in trace(plan) if m.target == "/usr")
    assert usr.source == "/usr"
    assert usr.has(RDONLY) and usr.has(NOSUID) and usr.has(NODEV)

"""Pure file-system planning: mount plan, option escaping, program resolution, image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.errors import PolicyError, ProgramNotFound
from sandbox.fs import image
from sandbox.fs.mountopts import escape, join_lowerdirs, split_lowerdirs
from sandbox.fs.ops import BindMount, plan_mounts
from sandbox.fs.resolve import resolve
from sandbox.policy.model import Filesystem


@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_characters="\0"), min_size=1),
        min_size=1,
        max_size=5,
    )
)
def test_lowerdir_escaping_round_trips(paths):
    assert split_lowerdirs(join_lowerdirs(paths)) == paths


def test_escape_specials():
    assert escape("/a,b:c\\d") == "/a\\,b\\:c\\\\d"
    with pytest.raises(ValueError):
        escape("a\0b")


def test_default_plan(tmp_path):
    plan = plan_mounts(Filesystem(), str(tmp_path), None)
    assert plan.lowers == (str(tmp_path),)
    assert next(b.target for b in plan.binds) == "/usr"
    assert all(not b.writable for b in plan.binds)
    owners = {e.path: e.owner for e in plan.upper_entries}
    assert owners["box"] == "payload" and owners["tmp"] == "root"
    assert plan.writable == ("/box", "/tmp")
    assert plan.proc_subset_pid


def test_bind_errors_name_the_path(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        plan_mounts(
            Filesystem(binds=[{"source": "/nonexistent/x", "target": "/x"}]), str(tmp_path), None
        )
    with pytest.raises(PolicyError, match="cover"):
        plan_mounts(
            Filesystem(binds=[{"source": "/tmp", "target": "/proc/x"}]), str(tmp_path), None
        )
    with pytest.raises(PolicyError, match="inside the host"):
        plan_mounts(
            Filesystem(binds=[{"source": "/tmp", "target": "/usr/nonexistent-x"}]),
            str(tmp_path),
            None,
        )
    with pytest.raises(PolicyError, match="read-only host bind"):
        plan_mounts(Filesystem(writable=["/usr/local"]), str(tmp_path), None)
    # Found by fuzz/atheris_profile_load.py: a missing host dir was a FileNotFoundError.
    with pytest.raises(PolicyError, match="host_dirs: '/nonexistent-hd' is not a directory"):
        plan_mounts(Filesystem(host_dirs=["/usr", "/nonexistent-hd"]), str(tmp_path), None)


def test_optional_missing_bind_is_dropped(tmp_path):
    plan = plan_mounts(
        Filesystem(binds=[{"source": "/nonexistent", "target": "/x", "optional": True}]),
        str(tmp_path),
        None,
    )
    assert "/x" not in [b.target for b in plan.binds]


def test_relative_and_dotdot_paths_rejected():
    with pytest.raises(ValueError):
        Filesystem(writable=["box"])
    with pytest.raises(ValueError):
        Filesystem(binds=[{"source": "/tmp/../etc", "target": "/x"}])


def _image(tmp: Path) -> Path:
    root = tmp / "img"
    (root / "usr").mkdir(parents=True)
    os.symlink("usr/bin", root / "bin")
    return root


def test_resolve_bare_name_through_merged_usr(tmp_path):
    img = _image(tmp_path)
    binds = (BindMount("/usr", "/usr", False, True),)
    prog = resolve("sh", "/bin:/usr/bin", binds, (str(img),))
    assert prog.inside_path == "/bin/sh" and prog.copy_from is None


def test_resolve_host_path_visible_runs_in_place(tmp_path):
    img = _image(tmp_path)
    binds = (BindMount("/usr", "/usr", False, True),)
    assert resolve("/bin/sh", "", binds, (str(img),)).copy_from is None


def test_resolve_host_path_elsewhere_is_copied(tmp_path):
    prog = tmp_path / "a.out"
    prog.write_text("#!/bin/sh\n")
    r = resolve("./a.out", "", (), (str(_image(tmp_path)),), cwd=str(tmp_path))
    assert r.inside_path == "/box/a.out" and r.copy_from == str(prog)


def test_resolve_missing(tmp_path):
    with pytest.raises(ProgramNotFound, match="not found on the sandbox's PATH"):
        resolve("nope-not-here", "/usr/bin", (BindMount("/usr", "/usr", False, True),), ())
    with pytest.raises(ProgramNotFound, match="no such file"):
        resolve(str(tmp_path / "missing"), "", (), ())


def test_image_build_and_key(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "ld.so.conf").write_text("x\n")
    (etc / "shadow").write_text("secret\n")
    spec = image.ImageSpec(("ld.so.conf", "missing-file"), 1000, 1000, "sandbox", "box")
    k1 = image.image_key(spec, etc)
    dest = tmp_path / "out"
    image.build(spec, dest, etc)
    assert (dest / "etc/ld.so.conf").read_text() == "x\n"
    assert not (dest / "etc/shadow").exists()
    assert "sandbox:x:1000:1000" in (dest / "etc/passwd").read_text()
    assert (dest / "etc/hostname").read_text() == "box\n"
    (etc / "ld.so.conf").write_text("changed, longer\n")
    assert image.image_key(spec, etc) != k1


def test_allowlist_rejects_escapes(tmp_path):
    f = tmp_path / "allow.txt"
    f.write_text("ok\n../shadow\n")
    with pytest.raises(PolicyError, match="relative to /etc"):
        image.read_allowlist(f)


def test_bind_source_symlink_planted_by_another_user_is_refused(tmp_path):
    from sandbox.fs.ops import checked_source

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # writable by anyone, not sticky
    (tmp_path / "real").mkdir()
    link = shared / "data"
    os.symlink(tmp_path / "real", link)
    os.lchown(link, 65534, 65534)  # as if a payload (some other uid) had planted it
    with pytest.raises(PolicyError, match="symlink"):
        checked_source(str(link))
    os.lchown(link, 0, 0)  # root's own link, but in a directory anyone may rewrite
    with pytest.raises(PolicyError, match="symlink"):
        checked_source(str(link))
    os.chmod(shared, 0o755)
    assert checked_source(str(link)) == str(tmp_path / "real")
    assert checked_source(str(tmp_path / "real" / ".." / "real")) == str(tmp_path / "real")
    with pytest.raises(PolicyError, match="gone: No such file"):
        checked_source(str(tmp_path / "real" / "gone" / "x"))


def test_a_single_file_bind_gets_a_file_to_land_on(tmp_path):
    """Issue 15 item 9: a file bind needs a file mount point, not a directory."""
    src = tmp_path / "in.txt"
    src.write_text("x")
    fs = Filesystem(binds=[{"source": str(src), "target": "/box/in.txt"}])
    plan = plan_mounts(fs, str(tmp_path), None)
    (entry,) = [e for e in plan.upper_entries if e.path == "box/in.txt"]
    assert entry.file and entry.mode == 0o644 and entry.owner == "root"
    assert not next(e for e in plan.upper_entries if e.path == "box").file



def test_writable_binds_carry_their_sources_owner_for_the_idmap(tmp_path):
    """Issue 15 item 11: the launcher idmaps a writable bind to its directory's owner."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    os.chown(rw, 1234, 4321)
    fs = Filesystem(
        binds=[
            {"source": str(rw), "target": "/out", "writable": True},
            {"source": str(ro), "target": "/in"},
        ]
    )
    plan = plan_mounts(fs, str(tmp_path), None)
    got = {b.target: b.idmap for b in plan.binds if b.target in ("/out", "/in")}
    assert got == {"/out": True, "/in": False}  # the owner is read by the launcher

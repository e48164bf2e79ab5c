"""Staged /box files: names, modes, order, and how the launcher writes them (issue 13 item 2,
issue 15 item 6). The writes themselves are checked on the real kernel: ``copy_into`` follows
no symlink on the source and creates nothing outside the /box fd it is given."""

from __future__ import annotations

import os

import pytest

from sandbox.errors import PolicyError
from sandbox.fs.staging import BoxFile, check_mode, check_name, order, parents
from sandbox.syscalls.linux import LinuxSyscalls


@pytest.mark.parametrize(
    "good", ["a", "нет.java", "sub/x.txt", "a b", "日本/語.txt", "-x", ".hidden"]
)
def test_names_in_any_script_are_accepted(good):
    assert check_name(good) == good


@pytest.mark.parametrize(
    "bad", ["", "/etc/x", "../x", "a/../b", "a/./b", ".", "a//b", "a/", "a\nb", "a\x7fb", "x" * 256]
)
def test_bad_names_are_refused(bad):
    with pytest.raises(PolicyError, match="relative path inside /box"):
        check_name(bad)


@pytest.mark.parametrize("mode", [0, 0o644, 0o755, 0o777])
def test_permission_modes_are_accepted(mode):
    assert check_mode("x", mode) == mode


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o1755, 0o10000, -1, True, 0.5])
def test_set_id_sticky_and_non_modes_are_refused(mode):
    with pytest.raises(PolicyError, match="permission mode"):
        check_mode("x", mode)


def test_files_come_before_links_and_nothing_lies_under_a_staged_name():
    got = order([BoxFile("l", link="t"), BoxFile("d/x", "/s"), BoxFile("a", "/s")])
    assert [e.name for e in got] == ["a", "d/x", "l"]
    with pytest.raises(PolicyError, match="lies under"):
        order([BoxFile("d", link="/etc"), BoxFile("d/passwd", "/s")])
    with pytest.raises(PolicyError, match="lies under"):
        order([BoxFile("f", "/s"), BoxFile("f/g/h", "/s")])
    assert parents("a/b/c") == ["a", "a/b"]


@pytest.fixture
def box(tmp_path):
    d = tmp_path / "box"
    d.mkdir()
    fd = os.open(d, os.O_PATH | os.O_DIRECTORY)
    yield d, fd
    os.close(fd)


def test_copy_into_follows_no_symlink_on_the_source(tmp_path, box):
    d, fd = box
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("data")
    os.symlink(tmp_path / "real" / "f", tmp_path / "last")
    os.symlink(tmp_path / "real", tmp_path / "dir")
    sc = LinuxSyscalls()
    for src in (
        tmp_path / "last",
        tmp_path / "dir" / "f",
        "/proc/self/root" + str(tmp_path / "real" / "f"),
    ):
        with pytest.raises(OSError) as e:
            sc.copy_into(str(src), fd, "x", 0o644)
        assert e.value.errno in (40, 18), src  # ELOOP (or EXDEV for the magic link)
        assert not (d / "x").exists()
    sc.copy_into(str(tmp_path / "real" / "f"), fd, "x", 0o640)
    assert (d / "x").read_text() == "data" and (d / "x").stat().st_mode & 0o777 == 0o640


def test_copy_into_refuses_what_is_not_a_regular_file(tmp_path, box):
    _, fd = box
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):
        LinuxSyscalls().copy_into(str(tmp_path / "fifo"), fd, "x", 0o644)  # and never blocks


def test_copy_into_writes_only_beneath_the_box_fd(tmp_path, box):
    d, fd = box
    src = tmp_path / "src"
    src.write_text("x")
    os.symlink(tmp_path, d / "up")
    sc = LinuxSyscalls()
    for dst in ("up/escaped", "../escaped", "/tmp/escaped"):
        with pytest.raises(OSError):
            sc.copy_into(str(src), fd, dst, 0o644)
    assert not (tmp_path / "escaped").exists() and not os.path.exists("/tmp/escaped")

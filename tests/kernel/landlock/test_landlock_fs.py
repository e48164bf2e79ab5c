"""Landlock on the real kernel: file access, in forked children, each denial with its control.

Every ``denied_only_by_landlock`` runs the operation twice: under the
artifact (must fail with the errno Landlock gives) and without it (must
succeed), so ordinary permissions cannot be what stops it.
"""

import errno
import os

import pytest
from ll_harness import OK, denied_only_by_landlock, outcome

EACCES, EXDEV = errno.EACCES, errno.EXDEV


def read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 10)
    finally:
        os.close(fd)


def write(path, flags=0):
    fd = os.open(path, os.O_WRONLY | flags, 0o644)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)


# --- reading ------------------------------------------------------------------------------


def test_reading_outside_the_allowed_trees_is_denied(trees, abi):
    a = trees.artifact(abi)
    denied_only_by_landlock(lambda: read(trees.outside / "secret"), a, EACCES)
    denied_only_by_landlock(lambda: os.listdir(trees.outside), a, EACCES)
    denied_only_by_landlock(lambda: os.listdir(trees.base), a, EACCES)


def test_reading_the_allowed_trees_works(trees, abi):
    a = trees.artifact(abi)
    for path in (trees.ro / "file", trees.rw / "file", trees.rwx / "file"):
        assert outcome(lambda p=path: read(p), a) == OK
    assert outcome(lambda: os.listdir(trees.ro / "sub"), a) == OK


# --- writing a read-only tree ---------------------------------------------------------------


def test_writing_a_read_only_tree_is_denied(trees, abi):
    a = trees.artifact(abi)
    denied_only_by_landlock(lambda: write(trees.ro / "file"), a, EACCES)
    denied_only_by_landlock(lambda: write(trees.ro / "file", os.O_APPEND), a, EACCES)
    # O_TRUNC needs WRITE_FILE too, so this is denied at every ABI
    denied_only_by_landlock(lambda: write(trees.ro / "file", os.O_TRUNC), a, EACCES)


@pytest.mark.parametrize("op", ["create", "mkdir", "symlink", "mkfifo", "unlink", "rmdir"])
def test_changing_a_read_only_tree_is_denied(trees, abi, op):
    ro = trees.ro
    do = {
        "create": lambda: write(ro / "new", os.O_CREAT | os.O_EXCL),
        "mkdir": lambda: os.mkdir(ro / "newdir"),
        "symlink": lambda: os.symlink("file", ro / "link"),
        "mkfifo": lambda: os.mkfifo(ro / "fifo"),
        "unlink": lambda: os.unlink(ro / "file"),
        "rmdir": lambda: os.rmdir(ro / "sub"),
    }[op]
    denied_only_by_landlock(do, trees.artifact(abi), EACCES)


def test_nothing_can_be_created_outside_either(trees, abi):
    denied_only_by_landlock(
        lambda: write(trees.outside / "new", os.O_CREAT), trees.artifact(abi), EACCES
    )


# --- the writable trees ---------------------------------------------------------------------


def test_a_tmp_like_tree_is_fully_usable(trees, abi):
    rw = trees.rw

    def session():
        write(rw / "out", os.O_CREAT | os.O_TRUNC)
        write(rw / "out", os.O_APPEND)
        os.truncate(rw / "out", 0)
        os.mkdir(rw / "d")
        os.rename(rw / "out", rw / "d" / "out") if abi >= 2 else os.rename(rw / "out", rw / "o2")
        os.symlink("x", rw / "sym")
        os.mkfifo(rw / "fifo")
        os.link(rw / "file", rw / "hard")
        os.unlink(rw / "hard")
        os.unlink(rw / "sym")
        read(rw / "file")

    assert outcome(session, trees.artifact(abi)) == OK


def test_safe_device_nodes_are_usable_with_truncate(trees, abi):
    def devnull():
        write("/dev/null", os.O_TRUNC)  # what a shell's '> /dev/null' does
        read("/dev/zero")
        read("/dev/urandom")

    assert outcome(devnull, trees.artifact(abi)) == OK


# --- truncate (ABI 3) -----------------------------------------------------------------------


def test_truncate_of_a_read_only_file(trees, abi):
    a = trees.artifact(abi)
    path = trees.ro / "file"
    if abi >= 3:
        denied_only_by_landlock(lambda: os.truncate(path, 1), a, EACCES)
    else:
        # the gap that makes ABI < 3 'partial': truncate(2) by path is not mediated
        assert "LANDLOCK_ACCESS_FS_TRUNCATE" in a.missing
        assert outcome(lambda: os.truncate(path, 1), a) == OK
        assert path.stat().st_size == 1


def test_truncate_in_a_writable_tree_works(trees, abi):
    assert outcome(lambda: os.truncate(trees.rw / "file", 0), trees.artifact(abi)) == OK


# --- rename and link across trees (REFER, ABI 2) ---------------------------------------------


def test_hard_link_from_a_read_only_tree_into_a_writable_one_is_denied(trees, abi):
    denied_only_by_landlock(
        lambda: os.link(trees.ro / "file", trees.rw / "stolen"), trees.artifact(abi), EXDEV
    )


def test_rename_out_of_a_read_only_tree_is_denied(trees, abi):
    # the source directory lacks REMOVE_FILE (EACCES takes precedence over REFER's EXDEV)
    denied_only_by_landlock(
        lambda: os.rename(trees.ro / "file", trees.rw / "moved"), trees.artifact(abi), EACCES
    )


def test_rename_into_a_read_only_tree_is_denied(trees, abi):
    denied_only_by_landlock(
        lambda: os.rename(trees.rw / "file", trees.ro / "planted"), trees.artifact(abi), EACCES
    )


def test_rename_that_would_gain_execute_is_denied(trees, abi):
    # rw (like /tmp) is not executable, rwx (like /box) is: moving a file there would
    # give it EXECUTE, which REFER forbids; 'mv' then falls back to copy + unlink.
    denied_only_by_landlock(
        lambda: os.rename(trees.rw / "file", trees.rwx / "file2"), trees.artifact(abi), EXDEV
    )


def test_rename_between_directories_of_a_writable_tree(trees, abi):
    op = lambda: os.rename(trees.rw / "a" / "f", trees.rw / "b" / "f")  # noqa: E731
    if abi >= 2:
        assert outcome(op, trees.artifact(abi)) == OK
    else:
        # ABI 1 cannot grant REFER: every reparenting is refused (why ABI 1 is 'partial')
        denied_only_by_landlock(op, trees.artifact(abi), EXDEV)


def test_rename_that_loses_execute_is_allowed(trees, abi):
    if abi < 2:
        pytest.skip("ABI 1 refuses every cross-directory rename")
    assert (
        outcome(lambda: os.rename(trees.rwx / "file", trees.rw / "from_box"), trees.artifact(abi))
        == OK
    )


# --- execute --------------------------------------------------------------------------------


def spawn(path):
    pid = os.posix_spawn(str(path), [str(path)], {})
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(errno.ECHILD, "program ran but failed")


@pytest.fixture
def true_copies(trees):
    with open("/bin/true", "rb") as f:
        data = f.read()
    for d in (trees.ro, trees.rw, trees.rwx):
        (d / "true").write_bytes(data)
        (d / "true").chmod(0o755)
    return trees


def test_execute_only_from_exec_trees(true_copies, abi):
    t = true_copies
    a = t.artifact(abi, exec_extra=("/usr",))  # the dynamic loader and libc live in /usr
    assert outcome(lambda: spawn(t.ro / "true"), a) == OK
    assert outcome(lambda: spawn(t.rwx / "true"), a) == OK
    denied_only_by_landlock(lambda: spawn(t.rw / "true"), a, EACCES)

"""apply_in_child() on RecordingSyscalls: the exact syscall sequence and the missing-path rules."""

import errno

import pytest

from sandbox.landlock.restrict import AT_FDCWD, O_PATH_ANY, O_PATH_DIR, apply_in_child
from sandbox.landlock.rules import prepare
from sandbox.policy.model import Bind, Filesystem
from sandbox.syscalls.recording import RecordingSyscalls


def small_fs(**kw):
    kw.setdefault("read_paths", ["/etc"])
    kw.setdefault("exec_paths", ["/usr"])
    kw.setdefault("writable", ["/box"])
    return Filesystem(**kw)


def test_sequence_open_create_add_close_restrict_close():
    art = prepare(small_fs(), 7)
    sc = RecordingSyscalls()
    apply_in_child(art, sc)
    n = len(art.rules)
    assert sc.names() == (
        ["openat"] * n
        + ["landlock_create_ruleset"]
        + ["landlock_add_path_rule"] * n
        + ["close"] * n
        + ["landlock_restrict_self", "close"]
    )


def test_arguments_are_the_precomputed_ones():
    art = prepare(small_fs(), 7)
    sc = RecordingSyscalls()
    apply_in_child(art, sc)
    calls = sc.calls
    n = len(art.rules)
    opens = calls[:n]
    for call, rule in zip(opens, art.rules, strict=True):
        flags = O_PATH_DIR if rule.is_dir else O_PATH_ANY
        assert call.args == (AT_FDCWD, rule.path, flags)
    fds = list(range(100, 100 + n))  # the fake hands out fds from 100
    create = calls[n]
    assert create.args == (art.handled_fs, art.handled_net, art.scoped)
    ruleset = 100 + n
    adds = calls[n + 1 : 2 * n + 1]
    expect = [
        (ruleset, fd, r.access if r.is_dir else r.file_access)
        for fd, r in zip(fds, art.rules, strict=True)
    ]
    assert [c.args for c in adds] == expect
    closes = calls[2 * n + 1 : 3 * n + 1]
    assert [c.args for c in closes] == [(fd,) for fd in fds]
    assert calls[-2].args == (ruleset,) and calls[-1].args == (ruleset,)


def test_open_flags_are_o_path_and_cloexec():
    import os

    assert O_PATH_ANY == os.O_PATH | os.O_CLOEXEC
    assert O_PATH_DIR == os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY


def test_abi_2_ruleset_has_no_net_and_no_scope():
    sc = RecordingSyscalls()
    apply_in_child(prepare(small_fs(), 2), sc)
    create = next(c for c in sc.calls if c.name == "landlock_create_ruleset")
    assert create.args == (0x3FFF, 0, 0)


def test_off_artifact_makes_no_syscall():
    sc = RecordingSyscalls()
    apply_in_child(prepare(small_fs(), 0), sc)
    assert sc.calls == []


def nth_open(art, path):
    return [r.path for r in art.rules].index(path) + 1


def test_missing_optional_path_is_skipped():
    art = prepare(small_fs(), 7)
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOENT, nth=nth_open(art, "/etc"))
    apply_in_child(art, sc)
    assert sc.names().count("landlock_add_path_rule") == len(art.rules) - 1
    assert sc.names().count("close") == len(art.rules) - 1 + 1
    assert sc.names()[-2:] == ["landlock_restrict_self", "close"]


def test_missing_required_path_fails_before_any_landlock_call():
    art = prepare(small_fs(), 7)
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOENT, nth=nth_open(art, "/box"))
    with pytest.raises(OSError) as exc:
        apply_in_child(art, sc)
    assert exc.value.errno == errno.ENOENT
    assert "'/box'" in str(exc.value) and "required Landlock rule" in str(exc.value)
    assert not any(n.startswith("landlock") for n in sc.names())


def test_missing_non_optional_bind_is_an_error_and_optional_one_is_not():
    fs = small_fs(
        binds=[
            Bind(source="/s", target="/data"),
            Bind(source="/s2", target="/maybe", optional=True),
        ]
    )
    art = prepare(fs, 7)
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOENT, nth=nth_open(art, "/maybe"))
    apply_in_child(art, sc)
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOENT, nth=nth_open(art, "/data"))
    with pytest.raises(OSError):
        apply_in_child(art, sc)


def test_a_file_where_a_directory_was_expected_gets_the_file_rights():
    art = prepare(small_fs(read_paths=["/etc/hosts"]), 7)
    k = nth_open(art, "/etc/hosts")
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOTDIR, nth=k)
    apply_in_child(art, sc)
    rule = art.rules[k - 1]
    assert sc.calls[k - 1].args[2] == O_PATH_DIR
    assert sc.calls[k].args == (AT_FDCWD, "/etc/hosts", O_PATH_ANY)  # the retry
    adds = [c.args for c in sc.calls if c.name == "landlock_add_path_rule"]
    assert adds[k - 1][2] == rule.file_access != rule.access


def test_other_open_errors_propagate():
    art = prepare(small_fs(), 7)
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.EACCES, nth=nth_open(art, "/etc"))
    with pytest.raises(OSError) as exc:
        apply_in_child(art, sc)
    assert exc.value.errno == errno.EACCES


@pytest.mark.parametrize(
    "name", ["landlock_create_ruleset", "landlock_add_path_rule", "landlock_restrict_self"]
)
def test_landlock_errors_propagate(name):
    sc = RecordingSyscalls()
    sc.fail_on(name, errno.EPERM)
    with pytest.raises(OSError) as exc:
        apply_in_child(prepare(small_fs(), 7), sc)
    assert exc.value.errno == errno.EPERM
    if name != "landlock_restrict_self":
        assert "landlock_restrict_self" not in sc.names()


def test_no_path_fd_survives_and_nothing_after_restrict_but_the_ruleset_close():
    sc = RecordingSyscalls()
    apply_in_child(prepare(Filesystem(), 7), sc)
    opened = {i for i, c in enumerate(sc.calls) if c.name in ("openat", "landlock_create_ruleset")}
    closed = [c.args[0] for c in sc.calls if c.name == "close"]
    assert len(closed) == len(opened) and len(set(closed)) == len(closed)
    i = sc.names().index("landlock_restrict_self")
    assert sc.names()[i + 1 :] == ["close"]


def test_a_list_rule_on_a_file_is_skipped_not_added_empty():
    """list_paths naming a file: no file right is left, and an empty rule is EINVAL."""
    art = prepare(small_fs(read_paths=[], exec_paths=[], list_paths=["/etc/hostname"]), 7)
    nth = [r.path for r in art.rules].index("/etc/hostname") + 1  # one openat per rule before
    sc = RecordingSyscalls()
    sc.fail_on("openat", errno.ENOTDIR, nth=nth)  # O_DIRECTORY on a file
    apply_in_child(art, sc)
    opened = [c.args[1] for c in sc.calls if c.name == "openat"]
    assert opened.count("/etc/hostname") == 1  # tried as a directory only
    adds = [c for c in sc.calls if c.name == "landlock_add_path_rule"]
    assert len(adds) == len(art.rules) - 1 and all(c.args[2] for c in adds)


def test_a_glob_rule_opens_each_match_inside_the_root():
    lib = "/usr/lib/x86_64-linux-gnu"
    art = prepare(small_fs(read_paths=[], exec_paths=[f"{lib}/libz.so.1.*"]), 7)
    (rule,) = [r for r in art.rules if r.glob]
    assert rule.path == f"{lib}/libz.so.1.*" and not rule.required
    sc = RecordingSyscalls(
        listdir_results={lib: ["libz.so.1", "libz.so.1.2.13", "libz.so.10", "libzz.so.1.2"]}
    )
    apply_in_child(art, sc)
    assert ("listdir", (lib,)) in [(c.name, c.args) for c in sc.calls]
    opened = [c.args[1] for c in sc.calls if c.name == "openat" and c.args[1].startswith(lib)]
    assert opened == [f"{lib}/libz.so.1.2.13"]


def test_a_glob_in_a_missing_directory_adds_nothing():
    art = prepare(small_fs(read_paths=["/nowhere/lib*"], exec_paths=[]), 7)
    sc = RecordingSyscalls()
    sc.fail_on("listdir", errno.ENOENT)
    apply_in_child(art, sc)
    assert not [c for c in sc.calls if c.name == "openat" and "nowhere" in c.args[1]]


@pytest.mark.parametrize(
    ("pattern", "name", "ok"),
    [
        ("libz.so.1.*", "libz.so.1.2.13", True),
        ("libz.so.1.*", "libz.so.1", False),
        ("libz.so.1.*", "libz.so.10", False),
        ("*", ".hidden", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),
        ("x[1]", "x[1]", True),  # only '*' is special
    ],
)
def test_glob_match(pattern, name, ok):
    from sandbox.landlock.rules import glob_match

    assert glob_match(pattern, name) is ok

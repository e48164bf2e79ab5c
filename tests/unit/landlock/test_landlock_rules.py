"""prepare(): which rights land on which inside path, at every ABI."""

import dataclasses

import pytest

from sandbox.errors import ArtifactError
from sandbox.landlock.abi import FILE_RIGHTS, LATEST_ABI, AccessFs, names, rights_for
from sandbox.landlock.rules import (
    DEVICE,
    EXECUTE,
    READ,
    READ_ONLY_DEVICE,
    SAFE_DEVICES,
    WRITE,
    prepare,
)
from sandbox.policy.model import Bind, Filesystem, Tmpfs

F = AccessFs


def by_path(artifact):
    return {r.path: r for r in artifact.rules}


def test_default_policy_rule_paths():
    a = prepare(Filesystem(), 7)
    assert list(by_path(a)) == sorted(
        ["/usr", "/etc", "/box", "/tmp", "/dev", "/proc", *SAFE_DEVICES]
    )
    assert a.state == "full" and a.missing == () and a.abi == 7
    assert a.net_rules == ()


def test_default_policy_rights_at_latest_abi():
    r = by_path(prepare(Filesystem(), LATEST_ABI))
    assert r["/usr"].access == READ | EXECUTE  # image, in exec_paths
    assert r["/etc"].access == READ  # image, read only
    assert r["/proc"].access == READ
    assert r["/dev"].access == READ
    assert r["/box"].access == READ | WRITE | EXECUTE  # writable and in exec_paths
    assert r["/tmp"].access == READ | WRITE  # writable, not executable
    for dev in SAFE_DEVICES:
        want = READ_ONLY_DEVICE if dev in ("/dev/random", "/dev/urandom") else DEVICE
        assert r[dev].access == want and r[dev].is_dir is False


def test_write_rights_never_include_device_creation_or_ioctl():
    for bad in (
        F.LANDLOCK_ACCESS_FS_MAKE_CHAR,
        F.LANDLOCK_ACCESS_FS_MAKE_BLOCK,
        F.LANDLOCK_ACCESS_FS_IOCTL_DEV,
    ):
        assert not WRITE & bad
    a = prepare(Filesystem(), LATEST_ABI)
    for rule in a.rules:
        if rule.path not in SAFE_DEVICES:
            assert not rule.access & F.LANDLOCK_ACCESS_FS_IOCTL_DEV, rule.path
        assert not rule.access & (F.LANDLOCK_ACCESS_FS_MAKE_CHAR | F.LANDLOCK_ACCESS_FS_MAKE_BLOCK)


def test_only_writable_trees_get_any_write_right():
    a = prepare(Filesystem(), LATEST_ABI)
    writers = {r.path for r in a.rules if r.access & WRITE and r.path not in SAFE_DEVICES}
    assert writers == {"/box", "/tmp"}


def test_handled_is_everything_the_abi_knows():
    for abi in range(1, LATEST_ABI + 1):
        a = prepare(Filesystem(), abi)
        have = rights_for(abi)
        assert (a.handled_fs, a.handled_net, a.scoped) == (have.fs, have.net, have.scope)
        for rule in a.rules:
            assert rule.access & ~a.handled_fs == 0
            assert rule.file_access == rule.access & FILE_RIGHTS


@pytest.mark.parametrize("abi", range(1, LATEST_ABI + 1))
def test_state_and_missing_at_each_abi(abi):
    a = prepare(Filesystem(), abi)
    if abi >= 6:
        assert (a.state, a.missing) == ("full", ())
    else:
        assert a.state == "partial"
        assert a.missing and all(n in a.detail for n in a.missing)
    assert ("LANDLOCK_ACCESS_FS_REFER" in a.missing) == (abi < 2)
    assert ("LANDLOCK_ACCESS_FS_TRUNCATE" in a.missing) == (abi < 3)
    assert ("LANDLOCK_ACCESS_NET_CONNECT_TCP" in a.missing) == (abi < 4)
    assert ("LANDLOCK_ACCESS_FS_IOCTL_DEV" in a.missing) == (abi < 5)
    assert ("LANDLOCK_SCOPE_SIGNAL" in a.missing) == (abi < 6)
    assert a.has_file_mediation == (abi >= 2)


def test_abi_2_is_the_guest_case():
    a = prepare(Filesystem(), 2)
    assert a.state == "partial"
    assert a.missing == (
        "LANDLOCK_ACCESS_FS_TRUNCATE",
        "LANDLOCK_ACCESS_FS_IOCTL_DEV",
        "LANDLOCK_ACCESS_NET_BIND_TCP",
        "LANDLOCK_ACCESS_NET_CONNECT_TCP",
        "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET",
        "LANDLOCK_SCOPE_SIGNAL",
    )
    assert (a.handled_net, a.scoped) == (0, 0)
    tmp = by_path(a)["/tmp"]
    assert tmp.access & F.LANDLOCK_ACCESS_FS_REFER
    assert not tmp.access & F.LANDLOCK_ACCESS_FS_TRUNCATE
    rw = F.LANDLOCK_ACCESS_FS_READ_FILE | F.LANDLOCK_ACCESS_FS_WRITE_FILE
    assert by_path(a)["/dev/null"].access == rw


def test_abi_0_is_off_with_a_reason_and_no_rules():
    a = prepare(Filesystem(), 0)
    assert a.state == "off" and a.rules == () and a.handled_fs == 0
    assert "no Landlock" in a.detail
    assert "LANDLOCK_ACCESS_FS_READ_FILE" in a.missing
    assert not a.has_file_mediation


def test_abi_above_latest_builds_the_latest_ruleset():
    assert prepare(Filesystem(), LATEST_ABI + 2) == prepare(Filesystem(), LATEST_ABI)


def test_binds_and_tmpfs():
    fs = Filesystem(
        binds=[
            Bind(source="/srv/data", target="/data"),
            Bind(source="/srv/out", target="/out", writable=True, exec=False),
            Bind(source="/opt/tool", target="/opt/tool", optional=True),
        ],
        tmpfs=[Tmpfs(target="/scratch")],
    )
    r = by_path(prepare(fs, LATEST_ABI))
    assert r["/data"].access == READ | EXECUTE and r["/data"].required
    assert r["/out"].access == READ | WRITE and r["/out"].required
    assert r["/opt/tool"].access == READ | EXECUTE and not r["/opt/tool"].required
    assert r["/scratch"].access == READ | WRITE and r["/scratch"].required


def test_required_marks_what_the_fs_layer_creates():
    r = by_path(prepare(Filesystem(), LATEST_ABI))
    assert {p for p, rule in r.items() if rule.required} == {"/box", "/tmp"}


def test_same_path_from_several_lists_is_one_merged_rule():
    fs = Filesystem(read_paths=["/usr", "/data"], exec_paths=["/usr"], writable=["/data"])
    a = prepare(fs, LATEST_ABI)
    assert [r.path for r in a.rules].count("/data") == 1
    assert by_path(a)["/data"].access == READ | WRITE and by_path(a)["/data"].required


def test_a_device_node_listed_elsewhere_stays_a_file_rule():
    a = prepare(Filesystem(read_paths=["/dev/null"]), LATEST_ABI)
    assert by_path(a)["/dev/null"].is_dir is False


def test_nothing_outside_the_listed_trees():
    fs = Filesystem(read_paths=[], exec_paths=[], writable=[])
    assert [r.path for r in prepare(fs, LATEST_ABI).rules] == sorted(SAFE_DEVICES)


def test_program_dir_gets_read_and_execute():
    fs = Filesystem(exec_paths=["/usr"])
    r = by_path(prepare(fs, LATEST_ABI, program_dir="/opt/judge//bin/"))
    assert r["/opt/judge/bin"].access == READ | EXECUTE and r["/opt/judge/bin"].required


def test_program_and_interpreter_files_get_read_and_execute_on_the_file_only():
    fs = Filesystem(exec_paths=["/usr"])
    r = by_path(prepare(fs, LATEST_ABI, program_files=("/box/prog", "/opt/py/bin/python3")))
    for path in ("/box/prog", "/opt/py/bin/python3"):
        rule = r[path]
        assert not rule.is_dir and not rule.required
        assert rule.file_access == AccessFs.LANDLOCK_ACCESS_FS_READ_FILE | EXECUTE
    assert "/box" not in r or not r["/box"].access & EXECUTE


@pytest.mark.parametrize("bad", ["relative/bin", "/a/../etc", "/a/./b", "/a\0b"])
def test_program_dir_must_be_a_clean_absolute_path(bad):
    with pytest.raises(ArtifactError):
        prepare(Filesystem(), LATEST_ABI, program_dir=bad)


def test_key_is_stable_and_changes_with_the_content():
    a, b = prepare(Filesystem(), 7), prepare(Filesystem(), 7)
    assert a.key == b.key and len(a.key) == 32
    assert prepare(Filesystem(), 2).key != a.key
    assert prepare(Filesystem(writable=["/box"]), 7).key != a.key
    # list order in the policy does not matter
    assert (
        prepare(Filesystem(read_paths=["/etc", "/usr"]), 7).key
        == prepare(Filesystem(read_paths=["/usr", "/etc"]), 7).key
    )


def test_artifact_is_frozen_plain_data():
    a = prepare(Filesystem(), 7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.abi = 1  # type: ignore[misc]
    for rule in a.rules:
        assert type(rule.access) is int and type(rule.file_access) is int
    assert type(a.handled_fs) is int and type(a.handled_net) is int and type(a.scoped) is int


def test_describe_names_the_rights():
    d = prepare(Filesystem(), 7).describe()
    assert d["/etc"] == ["LANDLOCK_ACCESS_FS_READ_FILE", "LANDLOCK_ACCESS_FS_READ_DIR"]
    handled = names(prepare(Filesystem(), 7).handled_fs, AccessFs)
    assert handled[-1] == "LANDLOCK_ACCESS_FS_IOCTL_DEV"

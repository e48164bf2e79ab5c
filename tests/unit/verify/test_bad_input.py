"""Bad input names the key, the bad name and, where the file can tell, the line (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.errors import PolicyError
from sandbox.policy.load import load_profile
from sandbox.seccomp.groups import load_groups
from sandbox.seccomp.tables import all_names, arg_count, nargs


def write(tmp: Path, text: str, name: str = "p") -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(PolicyError) as info:
        load_profile(str(path))
    return str(info.value)


def test_unknown_syscall_names_key_line_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, 'extends = "strict"\n[seccomp]\nallow = [\n  "getpid",\n  "ptrac",\n]\n')
    assert f"{p}:5: seccomp.allow: unknown syscall 'ptrac' (did you mean 'ptrace'?)" in error_of(p)


def test_unknown_capability_names_key_line_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, '[capabilities]\n# keep one\nkeep = ["CAP_CHOWN",\n  "SYS_ADMN"]\n')
    msg = error_of(p)
    assert f"{p}:4: capabilities.keep: unknown capability 'SYS_ADMN'" in msg
    assert "did you mean 'CAP_SYS_ADMIN'" in msg


def test_conflicting_rules_in_one_profile(tmp_path: Path) -> None:
    p = write(tmp_path, '[seccomp]\ndeny = ["readv"]\n[seccomp.errno]\nreadv = "EIO"\n')
    # The first line naming it (here the deny entry) points at the conflict.
    assert f"{p}:2: seccomp.errno: 'readv' is in both errno and deny" in error_of(p)


def test_a_profile_that_is_not_utf8_is_a_policy_error(tmp_path: Path) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b'name = "x"\ndescription = "\xcf\x28"\n')
    assert "not UTF-8 text (byte 26)" in error_of(p)


def test_a_bad_extends_names_the_file_and_line(tmp_path: Path) -> None:
    p = write(tmp_path, '# base\nextends = "no such!"\n')
    assert f"{p}:2: extends: bad profile name 'no such!'" in error_of(p)
    p = write(tmp_path, 'extends = ["strict", "nope"]\n', "q")
    assert f"{p}:1: extends: profile 'nope' not found" in error_of(p)


def test_duplicate_keys_are_a_toml_error_with_the_line(tmp_path: Path) -> None:
    p = write(tmp_path, '[seccomp.errno]\nreadv = "EIO"\nreadv = "EPERM"\n')
    msg = error_of(p)
    assert "malformed TOML" in msg and "line 3" in msg


RULE = (
    '[[rules]]\nsyscall = "{name}"\narg = {arg}\nmask = 0xFF\nvalues = [1]\n'
    'match = "allow"\notherwise = "EPERM"\n'
)


@pytest.mark.parametrize(
    ("name", "arg", "needle"),
    [
        ("getppid", 0, "getppid takes no argument"),
        ("close", 1, "close has no argument 1 (it takes 1: arg 0..0)"),
        ("kill", 2, "kill has no argument 2 (it takes 2: arg 0..1)"),
        ("ioctl", 3, "ioctl has no argument 3"),
    ],
)
def test_rule_on_an_argument_the_syscall_lacks(
    tmp_path: Path, name: str, arg: int, needle: str
) -> None:
    (tmp_path / "groups").mkdir()
    text = 'description = "x"\n# a comment\n' + RULE.format(name=name, arg=arg)
    (tmp_path / "groups" / "g.toml").write_text(text)
    with pytest.raises(PolicyError) as info:
        load_groups(tmp_path)
    assert f"g.toml:4: rules: {needle}" in str(info.value)


def test_duplicate_in_a_group_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "groups").mkdir()
    text = 'description = "x"\nsyscalls = [\n  "read",\n]\n[errno]\nread = "EIO"\n'
    (tmp_path / "groups" / "g.toml").write_text(text)
    with pytest.raises(PolicyError, match=r"g\.toml:3: \['read'\] named twice"):
        load_groups(tmp_path)


def test_argument_counts_cover_every_table_name() -> None:
    assert set(nargs()) == all_names()
    assert (arg_count("clone"), arg_count("ioctl"), arg_count("getppid")) == (5, 3, 0)
    assert arg_count("mmap") == 6 and arg_count("socketcall") == 2
    assert arg_count("no_such_call") == 6

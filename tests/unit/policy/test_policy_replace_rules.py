"""Profile features learned profiles need: ``replace``, ``seccomp.rules``, ``list_paths``."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from sandbox.errors import PolicyError
from sandbox.landlock.abi import AccessFs
from sandbox.landlock.rules import LIST, READ
from sandbox.landlock.rules import prepare as landlock_prepare
from sandbox.policy.load import load_profile
from sandbox.policy.model import Filesystem, Seccomp
from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, errno_ret
from sandbox.seccomp.groups import check_names, resolve
from sandbox.seccomp.reference import syscall_ret


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / f"{name}.toml"
    p.write_text(text)
    return p


def test_replace_narrows_inherited_lists(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "narrow",
        'extends = "strict"\nreplace = ["seccomp.groups", "filesystem.read_paths"]\n'
        '[seccomp]\ngroups = ["time"]\n[filesystem]\nread_paths = ["/etc/hostname"]\n',
    )
    pol = load_profile(str(p)).policy
    assert pol.seccomp.groups == ["time"]
    assert pol.filesystem.read_paths == ["/etc/hostname"]
    assert "ptrace" in pol.seccomp.deny  # deny lists still accumulate
    assert pol.seccomp.default_action == "notify"


def test_without_replace_lists_accumulate(tmp_path: Path) -> None:
    p = write(tmp_path, "wide", 'extends = "strict"\n[seccomp]\ngroups = ["time"]\n')
    assert "basic_io" in load_profile(str(p)).policy.seccomp.groups


@pytest.mark.parametrize("key", ["seccomp.deny", "capabilities.deny"])
def test_deny_lists_cannot_be_replaced(tmp_path: Path, key: str) -> None:
    p = write(tmp_path, "bad", f'extends = "strict"\nreplace = ["{key}"]\n')
    with pytest.raises(PolicyError, match="cannot be replaced"):
        load_profile(str(p))


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ('"seccomp.groups"', "list of dotted keys"),
        ('["seccomp"]', "dotted key"),
        ('["limits.memory"]', "not a list"),
    ],
)
def test_bad_replace(tmp_path: Path, value: str, needle: str) -> None:
    p = write(tmp_path, "bad", f'extends = "strict"\nreplace = {value}\n[limits]\nmemory = "1M"\n')
    with pytest.raises(PolicyError, match=needle):
        load_profile(str(p))


def _rule(**kw: object) -> dict[str, object]:
    rule: dict[str, object] = {
        "syscall": "ioctl",
        "arg": 1,
        "mask": 0xFFFFFFFF,
        "values": [0x5401],
        "match": "allow",
        "otherwise": "ENOTTY",
    }
    return rule | kw


def test_profile_rules_resolve_and_evaluate() -> None:
    sec = Seccomp(default_action="notify", allow=["read"], rules=[_rule()])
    spec = resolve(sec)
    assert spec.rule_for("ioctl") is not None
    assert syscall_ret(spec, "ioctl", (0, 0x5401)) == SECCOMP_RET_ALLOW
    assert syscall_ret(spec, "ioctl", (0, 0x5412)) == errno_ret(errno.ENOTTY)  # TIOCSTI
    assert syscall_ret(spec, "ioctl", (0, 0x5401 | 1 << 32)) == SECCOMP_RET_ALLOW  # masked


def test_deny_wins_over_a_profile_rule() -> None:
    spec = resolve(Seccomp(rules=[_rule()], deny=["ioctl"]))
    assert spec.rule_for("ioctl") is None and "ioctl" in spec.deny


@pytest.mark.parametrize(
    ("seccomp", "needle"),
    [
        (Seccomp(groups=["basic_io"], rules=[_rule()]), "already treats"),
        (Seccomp(allow=["ioctl"], rules=[_rule()]), "both rules and allow"),
        (Seccomp(errno={"ioctl": "EPERM"}, rules=[_rule()]), "both rules and errno"),
        (Seccomp(rules=[_rule(), _rule(values=[1])]), "two rules"),
        (Seccomp(rules=[_rule(syscall="nosuch")]), "unknown syscall"),
        (Seccomp(rules=[_rule(otherwise="ENOSUCH")]), "unknown errno"),
        (Seccomp(rules=[_rule(arg=4)]), "no argument 4"),
        (Seccomp(rules=[_rule(values=[1 << 40])]), "outside mask"),
        (Seccomp(rules=[_rule(otherwise="allow")]), "same outcome"),
    ],
)
def test_bad_profile_rules_are_named(seccomp: Seccomp, needle: str) -> None:
    with pytest.raises(PolicyError, match=needle):
        check_names(seccomp, "<test>")


def test_list_paths_grant_read_dir_only() -> None:
    fs = Filesystem(read_paths=["/etc/hostname"], list_paths=["/usr/bin"], exec_paths=[])
    art = landlock_prepare(fs, 7)
    rules = {r.path: r for r in art.rules}
    assert rules["/usr/bin"].access == int(LIST)
    assert rules["/usr/bin"].file_access == 0  # a file named there gets no rule at all
    assert rules["/etc/hostname"].access == int(READ)
    assert rules["/etc/hostname"].file_access == int(AccessFs.LANDLOCK_ACCESS_FS_READ_FILE)


def test_a_glob_only_in_the_last_component() -> None:
    from pydantic import ValidationError

    Filesystem(exec_paths=["/usr/lib/libz.so.1.*"])
    with pytest.raises(ValidationError, match="last component"):
        Filesystem(read_paths=["/usr/*/lib"])

"""Groups as data, resolve() precedence (deny wins) and check_names() errors."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from seccomp_fixtures import NEVER, profile_seccomp

from sandbox.errors import PolicyError
from sandbox.policy.model import Seccomp
from sandbox.seccomp.groups import check_names, load_groups, resolve
from sandbox.seccomp.reference import runnable
from sandbox.seccomp.tables import all_names, table


def test_reviewed_groups_load_and_are_documented() -> None:
    groups = load_groups()
    assert {"basic_io", "memory", "time", "process", "signals", "fs_read", "fs_write"} <= set(
        groups
    )
    for g in groups.values():
        assert g.description
        assert g.syscalls <= all_names()


def test_every_group_file_comments_its_group() -> None:
    root = Path(__file__).resolve().parents[3] / "seccomp_policies" / "groups"
    for path in root.glob("*.toml"):
        assert path.read_text().startswith(f"# {path.stem}:"), path


def test_i386_overlay_is_merged_and_multiplexers_stay_out() -> None:
    groups = load_groups()
    assert "mmap2" in groups["memory"].syscalls
    assert "fstat64" in groups["fs_read"].syscalls
    assert all("socketcall" not in g.syscalls and "ipc" not in g.syscalls for g in groups.values())


@pytest.mark.parametrize("name", ["strict", "interp", "compile"])
def test_profiles_never_allow_the_dangerous_syscalls(name: str) -> None:
    spec = resolve(profile_seccomp(name))
    for arch in ("x86_64", "x32"):
        allowed = runnable(spec, arch)
        assert not set(NEVER) & allowed, (arch, set(NEVER) & allowed)
    assert spec.rule_for("personality") is not None
    assert spec.rule_for("clone") is not None
    assert spec.errno_of("clone3") == errno.ENOSYS
    assert spec.rule_for("ioctl") is not None


def test_groups_expand_and_errno_answers_replace_allow() -> None:
    spec = resolve(Seccomp(groups=["basic_io"], allow=["getpid"], errno={"read": "EIO"}))
    assert "write" in spec.allow
    assert "getpid" in spec.allow
    assert "read" not in spec.allow
    assert spec.errno_of("read") == errno.EIO


@pytest.mark.parametrize(
    "seccomp",
    [
        Seccomp(groups=["process"], deny=["execve"]),
        Seccomp(groups=["process"], allow=["getpid"], deny=["getpid"]),
        Seccomp(groups=["process"], deny=["clone"]),  # an argument rule
        Seccomp(groups=["process"], deny=["clone3"]),  # a group's errno answer
        Seccomp(groups=["basic_io"], deny=["ioctl"], default_action="allow"),
    ],
    ids=["group", "allow", "rule", "group-errno", "allow-default"],
)
def test_deny_wins(seccomp: Seccomp) -> None:
    spec = resolve(seccomp)
    (name,) = seccomp.deny
    assert name in spec.deny
    assert name not in spec.allow
    assert spec.errno_of(name) is None
    assert spec.rule_for(name) is None
    assert name not in runnable(spec, "x86_64")


def test_deny_survives_a_child_profile_that_allows() -> None:
    # A child extending strict that re-allows ptrace still cannot have it.
    strict = profile_seccomp("strict")
    child = Seccomp.model_validate(strict.model_dump() | {"allow": ["ptrace", "getpid"]})
    assert "ptrace" not in runnable(resolve(child), "x86_64")


def test_deny_action_refuses_even_when_the_default_allows() -> None:
    from sandbox.seccomp.actions import SECCOMP_RET_USER_NOTIF

    # To the supervisor, which records it and kills the run (never a kernel kill
    # whose only record would be the kernel log).
    assert resolve(Seccomp(default_action="log", deny=["ptrace"])).deny_ret == (
        SECCOMP_RET_USER_NOTIF
    )
    assert resolve(Seccomp(default_action="notify")).deny_ret == SECCOMP_RET_USER_NOTIF


@pytest.mark.parametrize(
    ("seccomp", "needle"),
    [
        (Seccomp(allow=["ptrac"]), "unknown syscall 'ptrac' (did you mean 'ptrace'?)"),
        (Seccomp(deny=["nosuch_call"]), "seccomp.deny: unknown syscall 'nosuch_call'"),
        (Seccomp(groups=["basic_i0"]), "unknown group 'basic_i0' (did you mean 'basic_io'?)"),
        (Seccomp(errno={"read": "ENOPE"}), "unknown errno 'ENOPE'"),
        (Seccomp(default_errno="EFOO"), "default_errno: unknown errno 'EFOO'"),
        (Seccomp(errno={"read": "EIO"}, deny=["read"]), "'read' is in both errno and deny"),
        (Seccomp(errno={"read": "EIO"}, allow=["read"]), "'read' is in both errno and allow"),
        (Seccomp(groups=["process"], allow=["clone"]), "restricts 'clone'"),
        (Seccomp(groups=["process"], allow=["clone3"]), "restricts 'clone3'"),
    ],
)
def test_check_names_errors(seccomp: Seccomp, needle: str) -> None:
    with pytest.raises(PolicyError) as info:
        check_names(seccomp, "profiles/x.toml")
    assert needle in str(info.value)
    assert str(info.value).startswith("profiles/x.toml")
    with pytest.raises(PolicyError):
        resolve(seccomp)


def test_check_names_reports_the_line(tmp_path: Path) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(
        '[seccomp]\ngroups = ["basic_io"]\nallow = ["getpid",\n  "ptrac"]\n'
        '[seccomp.errno]\nreadv = "EIO"\nread = "ENOPE"\n'
    )
    seccomp = Seccomp(groups=["basic_io"], allow=["getpid", "ptrac"], errno={"read": "ENOPE"})
    with pytest.raises(PolicyError) as info:
        check_names(seccomp, str(profile))
    assert f"{profile}:4: seccomp.allow: unknown syscall 'ptrac'" in str(info.value)
    assert f"{profile}:7: seccomp.errno: unknown errno 'ENOPE'" in str(info.value)


def write_groups(root: Path, files: dict[str, str]) -> Path:
    (root / "groups").mkdir(parents=True)
    for name, text in files.items():
        (root / "groups" / f"{name}.toml").write_text(text)
    return root


def test_conflicting_groups_are_an_error(tmp_path: Path) -> None:
    root = write_groups(
        tmp_path,
        {
            "a": 'description = "a"\nsyscalls = ["read"]\n',
            "b": 'description = "b"\n[errno]\nread = "EIO"\n',
        },
    )
    groups = load_groups(root)
    with pytest.raises(PolicyError, match=r"groups \['a', 'b'\] treat 'read' differently"):
        resolve(Seccomp(groups=["a", "b"]), groups=groups)
    assert resolve(Seccomp(groups=["a"]), groups=groups).allow == {"read"}


RULE = (
    '[[rules]]\nsyscall = "ioctl"\narg = {arg}\nmask = 0xFF\nvalues = [{value}]\n'
    'match = "allow"\notherwise = "EPERM"\n'
)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('syscalls = ["read"]\n', "needs a description"),
        ('description = "x"\nsyscals = ["read"]\n', "unknown keys ['syscals']"),
        (
            'description = "x"\nsyscalls = ["reed"]\n',
            "unknown syscall 'reed' (did you mean 'read'?)",
        ),
        ('description = "x"\nsyscalls = ["read"]\n[errno]\nread = "EIO"\n', "named twice"),
        ('description = "x"\n[errno]\nread = "EWHAT"\n', "unknown errno 'EWHAT'"),
        ('description = "x"\n' + RULE.format(arg=3, value=1), "ioctl has no argument 3"),
        ('description = "x"\n' + RULE.format(arg=1, value=0x100), "outside mask"),
        ('description = "x"\n[[rules]]\nsyscall = "ioctl"\n', "exactly the keys"),
        ("description = ", "cannot load"),
    ],
)
def test_bad_group_files(tmp_path: Path, text: str, needle: str) -> None:
    root = write_groups(tmp_path, {"g": text})
    with pytest.raises(PolicyError) as info:
        load_groups(root)
    assert needle in str(info.value)
    assert "g.toml" in str(info.value)


def test_overlay_names_must_exist_on_that_arch(tmp_path: Path) -> None:
    root = write_groups(tmp_path, {"g": 'description = "x"\n'})
    (root / "arch").mkdir()
    (root / "arch" / "i386.toml").write_text('[g]\nsyscalls = ["newfstatat"]\n')
    assert "newfstatat" not in table("i386").by_name
    with pytest.raises(PolicyError, match="unknown syscall 'newfstatat'"):
        load_groups(root)
    (root / "arch" / "i386.toml").write_text('[nogroup]\nsyscalls = ["fstat64"]\n')
    with pytest.raises(PolicyError, match="overlays for unknown groups"):
        load_groups(root)

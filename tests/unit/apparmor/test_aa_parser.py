"""The parser wrapper and securityfs access, on this host (no AppArmor) and on fakes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sandbox.apparmor import parser
from sandbox.errors import SetupError

needs_parser = pytest.mark.skipif(
    shutil.which("apparmor_parser") is None, reason="apparmor_parser not installed"
)


def fake_parser(tmp_path: Path, rc: int, stderr: str = "") -> str:
    exe = tmp_path / "fake_parser"
    exe.write_text(f"#!/bin/sh\ncat >/dev/null\nprintf '%s' '{stderr}' >&2\nexit {rc}\n")
    exe.chmod(0o755)
    return str(exe)


@needs_parser
def test_probe_finds_version_abi_and_optional_rules() -> None:
    f = parser.probe_parser()
    assert f.version and f.version_text.count(".") >= 1
    assert f.abi in ("3.0", "4.0") and f.abi_file.is_file()
    if f.version < (4,):
        assert f.rules == frozenset()  # AppArmor 3 knows neither userns nor io_uring
    assert parser.probe_parser() is f  # probed once per process


@needs_parser
def test_compile_check_accepts_a_minimal_profile_quickly() -> None:
    f = parser.probe_parser()
    text = f"abi <abi/{f.abi}>,\nprofile sbx_t {{\n  /usr/** r,\n}}\n"
    result = parser.compile_check(text, features_file=f.abi_file)
    assert result.ok and result.returncode == 0 and result.message == ""
    assert result.seconds < 5


def test_compile_check_reports_the_parsers_message_without_noise(tmp_path: Path) -> None:
    exe = fake_parser(
        tmp_path,
        1,
        "Cache read/write disabled: interface file missing.\nAppArmor parser error at line 3: bad",
    )
    result = parser.compile_check("profile x {}", parser=exe)
    assert not result.ok and result.returncode == 1
    assert result.message == "AppArmor parser error at line 3: bad"


def test_a_missing_parser_is_a_setup_error_that_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="install Debian's 'apparmor' package"):
        parser.compile_check("profile x {}", parser=str(tmp_path / "nope"))


def test_load_raises_with_the_parsers_message(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"apparmor_parser -r failed \(rc=1\): denied by policy"):
        parser.load("profile x {}", parser=fake_parser(tmp_path, 1, "denied by policy"))
    assert parser.load("profile x {}", parser=fake_parser(tmp_path, 0)) >= 0


def securityfs(tmp_path: Path, listing: str) -> Path:
    fs = tmp_path / "apparmor"
    fs.mkdir()
    (fs / "profiles").write_text(listing)
    (fs / ".remove").write_text("")
    return fs


def test_loaded_profiles_parses_the_securityfs_listing(tmp_path: Path) -> None:
    fs = securityfs(
        tmp_path, "sbx_ab (enforce)\n/usr/bin/man (complain)\nname with space (enforce)\n"
    )
    assert parser.loaded_profiles(fs) == {
        "sbx_ab": "enforce",
        "/usr/bin/man": "complain",
        "name with space": "enforce",
    }
    kernel = parser.KernelProfiles(securityfs=fs)
    assert kernel.is_loaded("sbx_ab") and not kernel.is_loaded("sbx_cd")
    assert kernel.names() == {"sbx_ab", "/usr/bin/man", "name with space"}


def test_loaded_profiles_without_securityfs_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="profiles"):
        parser.loaded_profiles(tmp_path / "missing")


def test_remove_writes_the_name_to_dot_remove(tmp_path: Path) -> None:
    fs = securityfs(tmp_path, "")
    assert parser.remove("sbx_ab", securityfs=fs)
    assert (fs / ".remove").read_text() == "sbx_ab"
    with pytest.raises(SetupError, match=r"open\(.*\.remove"):
        parser.remove("sbx_ab", securityfs=tmp_path / "missing")

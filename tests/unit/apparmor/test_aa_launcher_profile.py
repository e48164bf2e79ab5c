"""The shipped AppArmor 4 profile for the launcher (profiles/apparmor/sandbox-launcher)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from sandbox.apparmor import parser

LAUNCHER_PROFILE = (
    Path(__file__).resolve().parents[3] / "profiles" / "apparmor" / "sandbox-launcher"
)
needs_parser = pytest.mark.skipif(
    shutil.which("apparmor_parser") is None, reason="apparmor_parser not installed"
)


def test_launcher_profile_attaches_to_a_dedicated_executable_never_python() -> None:
    text = LAUNCHER_PROFILE.read_text()
    m = re.search(r"^profile (\S+) (\S+) flags=\((\w+)\) \{", text, re.M)
    assert m, "the profile line is missing"
    name, attach, flags = m.groups()
    assert name == "sandbox-launcher" and flags == "unconfined"
    assert attach == "/usr/libexec/sandbox/sandbox-launcher"
    assert "python" not in attach and "*" not in attach
    assert re.search(r"^\s+userns,$", text, re.M)
    assert "abi <abi/4.0>," in text


@needs_parser
def test_launcher_profile_compiles_where_the_parser_knows_userns() -> None:
    f = parser.probe_parser()
    if "userns" not in f.rules or not (parser.ABI_DIR / "4.0").is_file():
        pytest.skip(
            f"apparmor_parser {f.version_text} does not know the AppArmor 4 'userns' rule "
            "(or ships no abi/4.0): the launcher profile is for AppArmor 4 hosts only"
        )
    result = parser.compile_check(
        LAUNCHER_PROFILE.read_text(), features_file=parser.ABI_DIR / "4.0"
    )
    assert result.ok, result.message

"""Host probe on a tmpdir laid out like /sys and /proc."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.apparmor.host import HostFiles, detect

CAPEFF_ROOT = "000001ffffffffff"
CAPEFF_NONE = "0000000000000000"


def host(
    tmp_path: Path,
    *,
    enabled: str | None = "Y",
    lsm: str | None = "lockdown,capability,landlock,yama,apparmor,bpf",
    securityfs: bool = True,
    capeff: str = CAPEFF_ROOT,
    sysctls: dict[str, str] | None = None,
    label: str | None = "unconfined",
) -> HostFiles:
    files = {
        "sys/module/apparmor/parameters/enabled": enabled,
        "sys/kernel/security/lsm": lsm,
        "sys/kernel/security/apparmor/profiles": "" if securityfs else None,
        "proc/self/status": f"Name:\tpython3\nCapInh:\t0\nCapEff:\t{capeff}\n",
        "proc/self/attr/apparmor/current": label,
    }
    files |= {f"proc/sys/kernel/{k}": v for k, v in (sysctls or {}).items()}
    for rel, text in files.items():
        if text is not None:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text + "\n")
    return HostFiles(tmp_path)


def test_apparmor_on_and_loadable(tmp_path: Path) -> None:
    h = detect(host(tmp_path))
    assert h.enabled and h.can_load
    assert h.reason.startswith("AppArmor on, apparmor_parser") or h.parser is None
    assert h.restrict_unprivileged_userns is None and h.notes == ()


def test_this_projects_build_host_kernel(tmp_path: Path) -> None:
    h = detect(
        host(tmp_path, enabled=None, lsm="lockdown,capability,landlock,bpf", securityfs=False)
    )
    assert not h.enabled
    assert "no AppArmor" in h.reason


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"lsm": "lockdown,capability,selinux"}, "not an active LSM"),
        ({"securityfs": False}, "securityfs"),
        ({"enabled": "N"}, "no AppArmor"),
    ],
)
def test_each_missing_piece_is_named(tmp_path: Path, kw: dict[str, object], why: str) -> None:
    h = detect(host(tmp_path, **kw))  # type: ignore[arg-type]
    assert not h.enabled and why in h.reason


def test_loading_needs_cap_mac_admin(tmp_path: Path) -> None:
    h = detect(host(tmp_path, capeff=CAPEFF_NONE))
    assert h.enabled and not h.can_load
    if h.parser is not None:
        assert "CAP_MAC_ADMIN" in h.reason


def test_ubuntu_userns_restriction_is_detected_and_explained(tmp_path: Path) -> None:
    h = detect(
        host(
            tmp_path,
            sysctls={
                "apparmor_restrict_unprivileged_userns": "1",
                "apparmor_restrict_unprivileged_unconfined": "1",
            },
        )
    )
    assert h.restrict_unprivileged_userns is True
    assert h.restrict_unprivileged_unconfined is True
    fix = h.notes[0]
    assert "profiles/apparmor/sandbox-launcher" in fix
    assert "apparmor_restrict_unprivileged_userns=0" in fix and "never to python3" in fix


def test_restriction_switched_off(tmp_path: Path) -> None:
    h = detect(host(tmp_path, sysctls={"apparmor_restrict_unprivileged_userns": "0"}))
    assert h.restrict_unprivileged_userns is False and h.notes == ()


def test_a_missing_parser_is_reported_not_raised(tmp_path: Path) -> None:
    h = detect(host(tmp_path), parser=str(tmp_path / "no_parser"))
    assert h.parser is None and "apparmor" in (h.parser_error or "")
    assert "apparmor_parser is missing" in h.reason


def test_a_confined_supervisor_is_reported(tmp_path: Path) -> None:
    h = detect(host(tmp_path, label="snap.judge.daemon (enforce)"))
    assert h.self_label == "snap.judge.daemon"
    assert any("no_new_privs" in n for n in h.notes)
    if h.parser is not None:
        assert "itself confined" in h.reason

"""``sandbox doctor`` on described hosts: a tmpdir laid out like /proc and /sys, fake probes.

Each test describes one kind of host (Ubuntu with its user-namespace
restriction, a Docker container with a masked /proc, a kernel without
Landlock or AppArmor, the kvm-run guest) and checks what the report says and
which fix it gives. The shipped profiles are the real ones.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from sandbox import doctor
from sandbox.apparmor.host import USERNS_FIX, HostFiles, detect
from sandbox.cgroups import CgroupLayout, Hierarchy
from sandbox.host import HostFacts
from sandbox.layers import Enforcement

CAPEFF_ROOT = "000001ffffffffff"
ACTIONS = frozenset(doctor.SECCOMP_ACTIONS)
DEBIAN_GUEST_LSM = "lockdown,capability,landlock,yama,apparmor,bpf"
HOST_MOUNTINFO = (
    "22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw\n"
    "23 22 0:22 / /proc rw,nosuid,nodev,noexec - proc proc rw\n"
    "24 23 0:23 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw\n"
)
DOCKER_MOUNTINFO = HOST_MOUNTINFO + (
    "30 23 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw\n"
    "31 23 0:40 / /proc/acpi ro - tmpfs tmpfs ro\n"
    "32 23 0:22 /sys /proc/sys ro - proc proc rw\n"
)


def tree(
    tmp_path: Path,
    *,
    apparmor: bool = False,
    sysctls: dict[str, str] | None = None,
    mountinfo: str = HOST_MOUNTINFO,
    max_userns: str = "15000",
) -> HostFiles:
    files: dict[str, str | None] = {
        "proc/self/status": f"Name:\tsandbox\nCapEff:\t{CAPEFF_ROOT}\n",
        "proc/self/mountinfo": mountinfo,
        "proc/sys/user/max_user_namespaces": max_userns,
        "sys/module/apparmor/parameters/enabled": "Y" if apparmor else None,
        "sys/kernel/security/lsm": DEBIAN_GUEST_LSM if apparmor else "lockdown,landlock",
        "sys/kernel/security/apparmor/profiles": "" if apparmor else None,
        "proc/self/attr/apparmor/current": "unconfined" if apparmor else None,
    }
    files |= {f"proc/sys/kernel/{k}": v for k, v in (sysctls or {}).items()}
    for rel, text in files.items():
        if text is not None:
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text + "\n")
    return HostFiles(tmp_path)


def v2_layout(problem: str | None = None) -> CgroupLayout:
    ctrls = frozenset({"cpu", "cpuacct", "freezer", "memory", "pids", "io", "devices"})
    parent = None if problem else "/sys/fs/cgroup"
    h = Hierarchy(2, "unified", "/sys/fs/cgroup", ctrls, "/", parent, problem)
    if problem:
        return CgroupLayout("v2", (h,), {}, dict.fromkeys(ctrls, f"unified: {problem}"))
    return CgroupLayout("v2", (h,), dict.fromkeys(ctrls, h), {})


CGROUPS_FULL = Enforcement("full", "leaf sbx-doctor")


def probes(
    files: HostFiles,
    *,
    euid: int = 0,
    landlock: int = 7,
    apparmor: bool = False,
    layout: CgroupLayout | None = None,
    cgroups: Enforcement = CGROUPS_FULL,
    overlay_in_userns: tuple[bool, str] = (True, "works"),
    in_container: str | None = None,
    kernel: tuple[int, int] = (6, 18),
) -> doctor.Probes:
    facts = HostFacts(
        kernel=kernel,
        euid=euid,
        landlock_abi=landlock,
        apparmor=apparmor,
        seccomp_actions=ACTIONS,
        userns_max=int((files.read("/proc/sys/user/max_user_namespaces") or "0").strip()),
        in_container=in_container,
    )
    return doctor.Probes(
        files=files,
        host=lambda: facts,
        apparmor=lambda f: detect(f, parser="apparmor_parser" if apparmor else "/nonexistent"),
        cgroup_layout=lambda: layout or v2_layout(),
        cgroup_state=lambda policy: cgroups,
        userns_overlay=lambda: overlay_in_userns,
        release=f"{kernel[0]}.{kernel[1]}.0-test",
    )


def checks(data: dict) -> dict[str, dict]:
    return {c["name"]: c for c in data["checks"]}


def test_ubuntu_userns_restriction_is_reported_with_the_fix(tmp_path):
    files = tree(tmp_path, sysctls={"apparmor_restrict_unprivileged_userns": "1"})
    for euid, who in ((1000, "rootless runs are affected"), (0, "root runs unaffected")):
        c = checks(doctor.collect(probes(files, euid=euid)))["userns"]
        assert c["status"] == "warn" and who in c["summary"]
        assert c["detail"]["apparmor_restrict_unprivileged_userns"] is True
        assert USERNS_FIX in c["fix"] and "sandbox-launcher" in c["fix"]


def test_debian_unprivileged_userns_clone_off(tmp_path):
    files = tree(tmp_path, sysctls={"unprivileged_userns_clone": "0"})
    c = checks(doctor.collect(probes(files, euid=1000)))["userns"]
    assert c["status"] == "warn" and c["fix"] == doctor.USERNS_CLONE_FIX


def test_user_namespaces_disabled_for_everyone(tmp_path):
    data = doctor.collect(probes(tree(tmp_path, max_userns="0"), euid=1000))
    c = checks(data)["userns"]
    assert c["status"] == "off" and c["fix"] == doctor.MAX_USERNS_FIX
    assert not data["profiles"]["strict"]["runs"]
    assert "namespaces" in data["profiles"]["strict"]["refused"]


def test_plain_host_userns_ok_and_no_sysctl_read_as_none(tmp_path):
    c = checks(doctor.collect(probes(tree(tmp_path))))["userns"]
    assert c["status"] == "ok" and c["fix"] is None
    assert c["detail"]["unprivileged_userns_clone"] is None
    assert c["detail"]["apparmor_restrict_unprivileged_userns"] is None


def test_docker_with_masked_proc(tmp_path):
    files = tree(tmp_path, mountinfo=DOCKER_MOUNTINFO)
    c = checks(doctor.collect(probes(files, in_container="docker")))["container"]
    assert c["status"] == "warn" and c["fix"] == doctor.MASKED_PROC_FIX
    assert c["detail"]["masked_proc"] == ["/proc/acpi", "/proc/kcore", "/proc/sys"]
    assert "inside docker" in c["summary"]


def test_binfmt_misc_is_not_a_masked_proc(tmp_path):
    assert doctor.masked_proc(tree(tmp_path)) == []
    c = checks(doctor.collect(probes(tree(tmp_path))))["container"]
    assert c["status"] == "ok"


def test_no_landlock_and_no_apparmor_refuses_strict_for_file_mediation(tmp_path):
    data = doctor.collect(probes(tree(tmp_path), landlock=0))
    c = checks(data)
    assert c["landlock"]["status"] == "off" and c["apparmor"]["status"] == "off"
    strict = data["profiles"]["strict"]
    assert not strict["runs"] and "file mediation" in strict["refused"]
    assert strict["layers"]["landlock"]["state"] == "off"


def test_this_build_host_runs_every_profile_with_landlock(tmp_path, capsys):
    rc = doctor.report(as_json=True, probes=probes(tree(tmp_path)))
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(data["profiles"]) >= {"strict", "interp", "compile"}
    for p in data["profiles"].values():
        assert p["runs"], p
        landlock = p["layers"]["landlock"]
        # oci (the base of OCI bundles) leaves path rules to the image's layout
        assert landlock["state"] == "full" or landlock["detail"] == "disabled by the profile"
        assert p["layers"]["apparmor"]["state"] == "off"
        off = ("kernel has no AppArmor", "disabled by the profile")
        assert p["layers"]["apparmor"]["detail"] in off
        assert p["layers"]["cgroups"]["state"] == "full"


def test_cgroups_without_a_delegated_parent_refuse_strict(tmp_path):
    problem = "no write access to /sys/fs/cgroup (read-only cgroupfs); name a delegated parent"
    data = doctor.collect(
        probes(
            tree(tmp_path),
            layout=v2_layout(problem),
            cgroups=Enforcement("off", f"cgroup: {problem}"),
        )
    )
    c = checks(data)["cgroups"]
    assert c["status"] == "warn" and c["fix"] == problem
    assert "memory" in c["summary"]
    assert "cgroups" in data["profiles"]["strict"]["refused"]


def test_v2_parent_holding_processes_gives_runs_no_controller(tmp_path):
    ctrls = frozenset({"cpu", "cpuacct", "freezer", "memory", "pids"})
    h = Hierarchy(2, "unified", "/sys/fs/cgroup", ctrls, "/judge", "/sys/fs/cgroup/judge",
                  parent_busy=True)  # fmt: skip
    lay = CgroupLayout("v2", (h,), dict.fromkeys(ctrls, h), {})
    c = checks(doctor.collect(probes(tree(tmp_path), layout=lay)))["cgroups"]
    assert c["status"] == "warn" and "no internal processes" in c["summary"]
    assert "/sys/fs/cgroup/judge/supervisor/cgroup.procs" in c["fix"]


def test_container_markers_are_named(tmp_path):
    files = tree(tmp_path)
    (tmp_path / ".dockerenv").write_text("")
    c = checks(doctor.collect(probes(files, in_container="docker")))["container"]
    assert c["status"] == "info" and "(/.dockerenv)" in c["summary"]


def test_overlay_in_userns_matters_only_rootless(tmp_path):
    fails = (False, "mount overlay (userxattr, tmpfs upper): Invalid argument")
    root = checks(doctor.collect(probes(tree(tmp_path), overlay_in_userns=fails)))["overlay"]
    assert root["status"] == "ok" and "not affected" in root["summary"]
    user = checks(doctor.collect(probes(tree(tmp_path), euid=1000, overlay_in_userns=fails)))
    assert user["overlay"]["status"] == "warn" and "6.6" in user["overlay"]["fix"]


def test_old_kernel_and_missing_seccomp_actions(tmp_path):
    p = probes(tree(tmp_path), kernel=(5, 15))
    facts = dataclasses.replace(
        p.host(),  # type: ignore[misc]
        seccomp_actions=frozenset({"kill_process", "errno"}),
    )
    p.host = lambda: facts
    c = checks(doctor.collect(p))
    assert c["kernel"]["status"] == "warn" and "6.1" in c["kernel"]["fix"]
    assert c["seccomp"]["status"] == "warn" and "user_notif" in c["seccomp"]["summary"]


@pytest.mark.skipif(not shutil.which("apparmor_parser"), reason="apparmor_parser not installed")
def test_the_kvm_guest_apparmor_on_landlock_2(tmp_path):
    data = doctor.collect(probes(tree(tmp_path, apparmor=True), landlock=2, apparmor=True))
    c = checks(data)
    assert c["apparmor"]["status"] == "ok" and c["apparmor"]["summary"].startswith("AppArmor on")
    assert c["landlock"]["status"] == "warn" and "TRUNCATE" in c["landlock"]["summary"]
    strict = data["profiles"]["strict"]
    assert strict["runs"]
    assert strict["layers"]["apparmor"]["state"] == "full"
    assert "compiles" in strict["layers"]["apparmor"]["detail"]
    assert strict["layers"]["landlock"]["state"] == "partial"


def test_text_report_shows_fixes_and_profiles(tmp_path, capsys):
    files = tree(tmp_path, sysctls={"apparmor_restrict_unprivileged_userns": "1"})
    rc = doctor.report(probes=probes(files, euid=1000, landlock=0))
    out = capsys.readouterr().out
    assert rc == 1
    assert "userns     warn" in out and "fix: " + USERNS_FIX in out
    assert "strict: REFUSED" in out
    assert "landlock      off" in out


def test_a_profile_that_does_not_load_is_reported(tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "broken.toml").write_text("[limits\n")
    p = probes(tree(tmp_path / "root"))
    p.profiles_dir = profiles
    data = doctor.collect(p)
    assert data["profiles"]["broken"]["runs"] is False
    assert "does not load" in data["profiles"]["broken"]["refused"]

"""Privilege attacks: nested user namespaces, file capabilities, ptrace, the container's init.

Every test but the last runs the attack matrix of escape_kit (see there).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from escape_kit import KILLED, E, attack, judge, matrix

pytestmark = pytest.mark.requires("root", "gcc")


@pytest.mark.parametrize(
    ("how", "seccomp_says"),
    [("unshare", KILLED), ("clone", E.EPERM), ("clone3", E.ENOSYS)],
)
@matrix("seccomp", "namespaces")
def test_new_user_namespace_regains_every_capability(probes, tmp_path, ablate, how, seccomp_says):
    """unshare(CLONE_NEWUSER), clone(CLONE_NEWUSER) or clone3: CAP_SYS_ADMIN in the new namespace.

    Stopped by seccomp alone (unshare is denied and kills; clone with a
    namespace flag gets EPERM from the argument check; clone3, whose flags
    seccomp cannot read, gets ENOSYS) and by the namespaces layer alone
    (user.max_user_namespaces = 0 inside: ENOSPC). The capability layer does
    not help: a new user namespace hands its creator a full set whatever the
    bounding set was.
    """
    r = attack(probes["escape"], ["userns", how], ablate, tmp_path)
    judge(r, ablate, {"seccomp": seccomp_says, "namespaces": E.ENOSPC})


@matrix("seccomp", "namespaces", "landlock")
def test_mount_in_a_new_user_namespace(probes, tmp_path, ablate):
    """unshare(CLONE_NEWUSER|CLONE_NEWNS), then mount a tmpfs with the regained capabilities.

    Stopped by seccomp alone (killed), the namespaces layer alone (ENOSPC)
    and Landlock alone (a Landlock domain forbids mounting, even in a
    namespace of one's own: EPERM).
    """
    r = attack(probes["escape"], ["userns-mount"], ablate, tmp_path)
    judge(r, ablate, {"seccomp": KILLED, "namespaces": E.ENOSPC, "landlock": E.EPERM})


@pytest.fixture
def capbin(tmp_path: Path, probes) -> Path:
    """A copy of the probe with file capabilities cap_sys_admin+ep (v2, root-owned: host root).

    Like setcap'ed binaries on a host. v2 file capabilities count in every
    user namespace below the initial one, so they are honoured inside.
    """
    d = tmp_path / "capbin"
    d.mkdir()
    os.chmod(d, 0o755)
    exe = d / "escape"
    exe.write_bytes(probes["escape"].read_bytes())
    os.chmod(exe, 0o755)
    # struct vfs_cap_data, revision 2 with the effective bit; permitted = CAP_SYS_ADMIN (21)
    os.setxattr(exe, "security.capability", struct.pack("<5I", 0x02000001, 1 << 21, 0, 0, 0))
    return d


@matrix("capabilities", "no_new_privs", "nosuid")
def test_file_capabilities_gain_nothing(probes, tmp_path, capbin, ablate):
    """Give up every capability, then exec a binary with file capabilities to get CAP_SYS_ADMIN.

    The classic set-id gain (a setuid binary can gain nothing here: only the
    payload's own uid and gid are mapped). Three things stop it, each alone:
    the empty bounding set (the capability layer: the kernel refuses to exec
    a binary whose capabilities it cannot grant, EPERM), no_new_privs (exec
    works but grants nothing: the probe reports EPERM) and nosuid on every
    mount (file capabilities ignored: EPERM). nosuid is not a layer of the
    record; the test-only knob ``nosuid`` lifts it so that no_new_privs can be
    shown on its own.
    """
    r = attack(
        probes["escape"],
        ["filecap", "/box/capbin/escape"],
        ablate,
        tmp_path,
        options=["--ro-bind", str(capbin), "/box/capbin"],
    )
    judge(r, ablate, {"capabilities": E.EPERM, "no_new_privs": E.EPERM, "nosuid": E.EPERM})


@matrix("seccomp")
def test_ptrace_a_sibling(probes, tmp_path, ablate):
    """PTRACE_SEIZE of a sibling process (same uid, same Landlock domain).

    Stopped by seccomp alone (ptrace is denied: the attacker is killed, and
    the probe reports its SIGSYS). Nothing else applies between two processes
    of the same run, and this kernel has no Yama.
    """
    r = attack(probes["escape"], ["ptrace-sibling"], ablate, tmp_path)
    judge(r, ablate, {"seccomp": KILLED})


@matrix("capabilities", "seccomp", "landlock")
def test_ptrace_the_containers_init(probes, tmp_path, ablate):
    """PTRACE_SEIZE of PID 1, which holds every capability of the run's user namespace.

    Control of it would undo every layer but the namespaces. Stopped by
    seccomp alone (killed), the capability layer alone (init runs as another
    uid, so CAP_SYS_PTRACE is needed: EPERM) and Landlock alone (no ptrace
    of a process outside one's domain: EPERM).
    """
    r = attack(probes["escape"], ["init", "ptrace"], ablate, tmp_path)
    judge(r, ablate, {"capabilities": E.EPERM, "seccomp": KILLED, "landlock": E.EPERM})


@matrix("capabilities", "landlock")
def test_proc_1_root(probes, tmp_path, ablate):
    """Open a directory through /proc/1/root, the init's root (a ptrace-mode access check).

    Stopped by the capability layer alone (another uid: CAP_SYS_PTRACE
    needed, EACCES) and by Landlock alone (the init is outside the domain:
    EACCES). The init has pivoted into the container, so with both off this
    reaches only the container's own root: the check is what is tested.
    """
    r = attack(probes["escape"], ["init", "root"], ablate, tmp_path)
    judge(r, ablate, {"capabilities": E.EACCES, "landlock": E.EACCES})


@pytest.mark.requires("landlock>=6")  # signal scoping
@matrix("capabilities", "landlock")
def test_signal_the_containers_init(probes, tmp_path, ablate):
    """kill(1, 0): may the payload signal its init (and end the run without a status)?

    Stopped by the capability layer alone (another uid: CAP_KILL needed,
    EPERM) and by Landlock alone (signals are scoped to the domain, ABI >= 6:
    EPERM); seccomp allows kill. Signal 0 checks the permission without
    sending anything; the init also keeps default dispositions, so a real
    signal from inside would be dropped by the kernel anyway.
    """
    r = attack(probes["escape"], ["init", "kill"], ablate, tmp_path)
    judge(r, ablate, {"capabilities": E.EPERM, "landlock": E.EPERM})


def test_the_callers_command_line_is_not_readable_from_init(tmp_path):
    """Regression: /proc/1/cmdline (world-readable) used to show the whole ``sandbox exec`` line.

    Not a layer's doing, so no ablation: the init is a fork of the caller and
    now overwrites its argv area. The marker is in a host path the payload
    must not learn.
    """
    marker = tmp_path / "judge-data-5c1e"
    marker.write_text("input\n")
    r = attack(
        "/bin/sh",
        ["-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/1/comm"],
        frozenset(),
        tmp_path,
        options=["--stdin", str(marker)],
    )
    assert r.rc == 0, r.err
    assert "5c1e" not in r.out and "sandbox-init" in r.out


@pytest.fixture
def root_dir(tmp_path: Path) -> Path:
    """A root-owned 0755 directory to bind writable (idmapped to root: its owner)."""
    d = tmp_path / "rootdir"
    d.mkdir()
    os.chown(d, 0, 0)
    os.chmod(d, 0o755)
    return d


@pytest.mark.parametrize("how", ["chmod", "create", "fchmodat"])
@matrix("seccomp")
def test_no_set_id_file_through_a_writable_bind(probes, tmp_path, root_dir, ablate, how):
    """Plant a set-uid file in a writable bind of a root-owned directory.

    The bind is idmapped to the directory's owner, so the file is root's on
    the host: set-uid, it would be root for every local user, long after the
    run (found by the second attack round). nosuid inside does not help the
    host. Stopped by seccomp alone: chmod, fchmod(at)(2), creat and
    open(at) with a set-id mode answer EPERM, openat2 ENOSYS.
    """
    target = root_dir / f"id-{how}"
    r = attack(
        probes["escape"],
        ["setid", how, f"/box/w/{target.name}"],
        ablate,
        tmp_path,
        options=["--bind", str(root_dir), "/box/w"],
    )
    worked = judge(r, ablate, {"seccomp": E.EPERM})
    st = target.lstat() if target.exists() else None
    if worked:
        assert st is not None and st.st_mode & 0o4000 and st.st_uid == 0, st
    else:
        assert st is None or not st.st_mode & 0o6000, oct(st.st_mode)

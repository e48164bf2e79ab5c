"""File-system attacks: host files through fds, the lower layer, remounts, /proc/sys, handles.

Every test runs the attack matrix of escape_kit: it fails with every layer
on, still fails with each of its stoppers standing alone, and succeeds with
all of them switched off. AppArmor, which would stop several of these too,
is absent on this kernel; the guest stage tests it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from escape_kit import KILLED, E, attack, judge, matrix

pytestmark = pytest.mark.requires("root", "gcc")


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """host/secret (0644, world-readable) beside host/dir (0755), outside any image."""
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    (host / "secret").write_text("host secret 7f3a\n")
    os.chmod(host, 0o755)
    os.chmod(host / "dir", 0o755)
    os.chmod(host / "secret", 0o644)
    return host


@pytest.mark.parametrize(
    "ablate", [frozenset(), frozenset({"landlock"})], ids=["all-on", "without-landlock"]
)
def test_host_directory_as_stdin_is_refused(probes, tmp_path, host_dir, ablate):
    """A host directory given as stdin would let ``openat(0, "../secret")`` climb out.

    Landlock alone used to stop that read (the fd's mount is the host's, file
    modes allow it, seccomp allows openat). The supervisor now refuses a
    directory as stdin before anything runs, whatever the layers.
    """
    stdin = ["--stdin", str(host_dir / "dir")]
    r = attack(probes["escape"], ["read-parent"], ablate, tmp_path, options=stdin)
    assert r.rc == 125 and "stdin is a directory" in r.err
    assert "7f3a" not in r.out


@matrix("landlock")
def test_write_through_an_inherited_read_only_fd(probes, tmp_path, host_dir, ablate):
    """A host file given read-only as stdin, reopened for writing via /proc/self/fd/0.

    Reopening a magic link is a fresh open, checked against the file's mode
    (0666 here, so file permissions allow it): stopped by Landlock alone, the
    file lying outside every tree the payload may write.
    """
    target = host_dir / "shared.log"
    target.write_text("caller's data\n")
    os.chmod(target, 0o666)
    stdin = ["--stdin", str(target)]  # the CLI opens it O_RDONLY
    r = attack(probes["escape"], ["reopen-write"], ablate, tmp_path, options=stdin)
    if judge(r, ablate, {"landlock": E.EACCES}):
        assert target.read_text() == "caller's data\nescaped\n"
    else:
        assert target.read_text() == "caller's data\n"


@pytest.fixture
def lower(tmp_path: Path, probes) -> tuple[Path, Path]:
    """A lower layer of our own (so the shared default image is never at risk) and its profile.

    /data is world-writable (0777) but not a writable tree of the profile;
    /tmp (1777) is one. The probe lies in the layer's /box and runs in place.
    """
    root = tmp_path / "rootfs"
    for d in ("usr", "etc", "box", "tmp", "proc", "dev", "data"):
        (root / d).mkdir(parents=True)
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "data", 0o777)
    for link in ("bin", "lib", "lib64", "sbin"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "box" / "escape").write_bytes(probes["escape"].read_bytes())
    os.chmod(root / "box" / "escape", 0o755)
    profile = tmp_path / "lower.toml"
    profile.write_text(
        'extends = "strict"\n'
        "[filesystem]\n"
        f'rootfs = ["{root}"]\n'
        'binds = [{ source = "/usr", target = "/usr" }]\n'
        "[env]\n"
        'path = "/box:/usr/bin"\n'
    )
    return root, profile


@matrix("overlay", "landlock")
def test_write_the_lower_layer_through_proc_self_root(tmp_path, lower, ablate):
    """Create a file in the lower layer's world-writable /data via /proc/self/root.

    Stopped by the overlay layer alone (the root is read-only outside /box and
    /tmp: EROFS) and by Landlock alone (/data is not a writable tree: EACCES).
    With both off the file lands in the host's lower-layer directory.
    """
    root, profile = lower
    r = attack(
        "escape",
        ["write", "/proc/self/root/data/planted"],
        ablate,
        tmp_path,
        options=["--profile", str(profile)],
    )
    if judge(r, ablate, {"overlay": E.EROFS, "landlock": E.EACCES}):
        assert (root / "data" / "planted").read_text() == "escaped\n"
    else:
        assert not (root / "data" / "planted").exists()


@matrix("overlay")
def test_writes_never_reach_the_lower_layer(tmp_path, lower, ablate):
    """Write /tmp/planted, which the profile allows, and look for it on the host afterwards.

    The write itself is allowed: what the overlay stops is its reaching the
    lower layer, where the next run (and the host) would see it. Only the
    overlay does that: with it the file lives in the run's tmpfs upper layer
    and vanishes; without it, it is in the host's directory. The probe exits
    0 either way, so the verdict is the host's file.
    """
    root, profile = lower
    r = attack(
        "escape", ["write", "/tmp/planted"], ablate, tmp_path, options=["--profile", str(profile)]
    )
    assert r.rc == 0, r.err
    assert (root / "tmp" / "planted").exists() == ("overlay" in ablate)
    state = r.record["enforcement"]["overlay"]["state"]
    assert state == ("off" if "overlay" in ablate else "full")


@matrix("capabilities", "seccomp", "landlock")
def test_remount_the_root_read_write(probes, tmp_path, ablate):
    """``mount(NULL, "/", NULL, MS_REMOUNT|MS_BIND)`` to drop the read-only flag.

    Three layers stop it, each alone: seccomp (mount is denied: killed), the
    empty capability sets (no CAP_SYS_ADMIN over the mount namespace: EPERM)
    and Landlock (a Landlock-restricted process may not change mounts: EPERM).
    The root's read-only flag is not locked (the launcher set it inside the
    run's user namespace), so with all three off the remount works.
    """
    r = attack(probes["escape"], ["remount-rw"], ablate, tmp_path)
    judge(r, ablate, {"capabilities": E.EPERM, "seccomp": KILLED, "landlock": E.EPERM})


def test_proc_sys_is_not_there_under_strict(probes, tmp_path):
    """strict mounts /proc with subset=pid: no /proc/sys to write at all."""
    args = ["write", "/proc/sys/user/max_user_namespaces", "99"]
    r = attack(probes["escape"], args, frozenset(), tmp_path)
    assert r.rc == E.ENOENT, r.err


@matrix("capabilities", "landlock", "proc_masks")
def test_proc_sys_write_lifts_the_nested_userns_limit(probes, tmp_path, ablate):
    """With a full /proc, raise ``user.max_user_namespaces`` of the run's own user namespace.

    That would undo the namespaces layer's limit (0 inside). Stopped by the
    capability layer alone (the user.* sysctls are writable only with
    CAP_SYS_RESOURCE over the namespace: EACCES), by Landlock alone (/proc
    is a read tree: EACCES) and by the /proc masks alone (/proc/sys is
    read-only: EROFS). Seccomp allows open and write.
    """
    profile = tmp_path / "fullproc.toml"
    profile.write_text('extends = "strict"\n[filesystem]\nproc = "full"\n')
    r = attack(
        probes["escape"],
        ["write", "/proc/sys/user/max_user_namespaces", "99"],
        ablate,
        tmp_path,
        options=["--profile", str(profile)],
    )
    judge(r, ablate, {"capabilities": E.EACCES, "landlock": E.EACCES, "proc_masks": E.EROFS})


@matrix("capabilities", "seccomp")
def test_open_by_handle_at(probes, tmp_path, ablate):
    """name_to_handle_at + open_by_handle_at (Shocker's calls) on a tmpfs of the run's.

    Stopped by seccomp alone (both calls denied: killed) and by the capability
    layer alone (decoding a handle needs CAP_DAC_READ_SEARCH and CAP_SYS_ADMIN
    over the mount: EPERM). The handle is for a directory the payload made on
    its own tmpfs: since 6.10 the kernel also refuses handles whose path up
    to the mount crosses an inode owned by an id unmapped in the namespace
    (ESTALE), which would stop any attempt on a host-owned tree with every
    layer off.
    """
    r = attack(
        probes["escape"],
        ["handle", "/scratch/d", "/scratch"],
        ablate,
        tmp_path,
        options=["--tmpfs", "/scratch"],
    )
    judge(r, ablate, {"capabilities": E.EPERM, "seccomp": KILLED})

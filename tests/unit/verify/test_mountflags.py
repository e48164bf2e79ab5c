"""verify.mountflags: the flags fs/mounts.py really gives each mount, found on a fake kernel."""

from __future__ import annotations

from verify_fixtures import mounts, policy

from sandbox.verify.mountflags import NODEV, NOEXEC, NOSUID, RDONLY, MountFlags


def test_strict_mounts_and_their_flags() -> None:
    got = {m.target: m for m in mounts(policy())}
    assert got["/"].flags == RDONLY | NOSUID | NODEV and got["/"].source == "overlay"
    assert got["/box"].options == "rw,nosuid,nodev"  # a bind of the overlay keeps its flags
    assert got["/usr"].options == "ro,nosuid,nodev" and got["/usr"].source == "/usr"
    assert got["/proc"].flags == NOSUID | NODEV | NOEXEC
    assert got["/dev"].flags == NOSUID | NOEXEC  # device nodes need dev


def test_policy_binds_and_tmpfs() -> None:
    pol = policy(
        filesystem={
            "binds": [
                {"source": "/etc", "target": "/data", "exec": False},
                {"source": "/tmp", "target": "/out", "writable": True},
            ],
            "tmpfs": [{"target": "/scratch"}],
        }
    )
    got = {m.target: m.options for m in mounts(pol)}
    assert got["/data"] == "ro,nosuid,nodev,noexec"
    assert got["/out"] == "rw,nosuid,nodev"
    assert got["/scratch"] == "rw,nosuid,nodev"


def test_options_text() -> None:
    assert MountFlags("/x", "tmpfs", 0).options == "rw"
    assert MountFlags("/x", "tmpfs", RDONLY | NOEXEC).options == "ro,noexec"


def test_the_runs_own_devpts_is_traced_and_passes_the_nodev_lint() -> None:
    """An OCI bundle's devpts: nosuid and noexec, not nodev (its ptys are devices);
    the lint lets exactly that through, and a devpts that could hold set-id files not."""
    from dataclasses import replace

    from verify_fixtures import plan_mounts

    from sandbox.fs.ops import DevptsMount
    from sandbox.verify.lint.danger_system import _mount_flags
    from sandbox.verify.mountflags import trace

    pol = policy()
    plan = replace(plan_mounts(pol.filesystem, "/", None), devpts=DevptsMount())
    got = {m.target: m for m in trace(plan)}
    assert got["/dev/pts"].source == "devpts"
    assert got["/dev/pts"].flags == NOSUID | NOEXEC

    class Ctx:
        mounts = tuple(got.values())

    assert list(_mount_flags(Ctx())) == []  # type: ignore[arg-type]
    Ctx.mounts = (MountFlags("/dev/pts", "devpts", NOEXEC),)
    assert [h.subject for h in _mount_flags(Ctx())] == ["/dev/pts"]  # type: ignore[arg-type]

"""collect= never reads through the payload's symlinks, nor with more rights than it had.

Issue 13 item 1: the container's init read collected names with O_NOFOLLOW
on the last component only, as a process with full capabilities in its
namespaces and host uid 0 as its file-system uid, without Landlock. A
payload that made ``/box/p -> /proc/1`` got init's own ``environ`` and
``status`` back; one that made ``/box/d -> /srv/data`` got a root-owned
0600 file of a bind that it could not read itself. Both launchers now read
through a collector with the payload's rights and openat2 beneath /box.
Each test runs against both launchers; each failed on b79e3bf.
"""

from __future__ import annotations

import logging
import os

import pytest

from sandbox import Sandbox, Verdict

pytestmark = pytest.mark.requires("root")
LAUNCHERS = ("native", "python")


@pytest.fixture(params=LAUNCHERS)
def launcher(request):
    logging.disable(logging.WARNING)
    yield request.param
    logging.disable(logging.NOTSET)


def test_symlink_to_proc_1_is_not_followed(launcher):
    with Sandbox("strict", launcher=launcher) as sb:
        r = sb.run(
            ["/bin/sh", "-c", "ln -s /proc/1 p && ln -s /proc/self q && echo ok > plain"],
            collect=["p/environ", "p/status", "q/environ", "plain"],
        )
    assert r.verdict is Verdict.OK, r.message
    assert r.files == {"plain": b"ok\n"}
    for name in ("p/environ", "p/status", "q/environ"):
        assert "refused" in r.collect_errors[name], r.collect_errors


def test_symlinked_directory_to_a_bind_the_payload_cannot_read(launcher, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    secret = data / "secret"
    secret.write_text("host secret\n")
    os.chmod(secret, 0o600)  # root's: the payload (a run slot's uid) may not read it
    overrides = {"filesystem": {"binds": [{"source": str(data), "target": "/srv/data"}]}}
    with Sandbox("strict", overrides=overrides, launcher=launcher) as sb:
        r = sb.run(
            [
                "/bin/sh",
                "-c",
                "ln -s /srv/data d && cat /srv/data/secret 2>/dev/null; "
                "mkdir e && ln -s ../d/secret e/s; echo $? > status",
            ],
            collect=["d/secret", "e/s", "status"],
        )
    assert b"host secret" not in (r.stdout or b""), "the payload itself read the secret"
    assert "d/secret" not in r.files and "e/s" not in r.files
    assert "refused" in r.collect_errors["d/secret"]
    assert "refused" in r.collect_errors["e/s"]
    assert "status" in r.files


def test_every_missing_file_is_reported(launcher):
    with Sandbox("strict", launcher=launcher) as sb:
        r = sb.run(
            ["/bin/sh", "-c", "mkdir dir; head -c 100 /dev/zero > big"],
            collect=["nothing", "dir", "big"],
        )
    assert r.files == {"big": b"\0" * 100}
    assert r.collect_errors == {"nothing": "no such file", "dir": "not a regular file"}
    assert r.record()["collect_errors"] == r.collect_errors


def test_the_collector_has_the_payloads_rights_only(launcher):
    """A file in /box the payload made unreadable to itself stays unread: the
    collector has its uid and no CAP_DAC_OVERRIDE (init had both kinds of rights)."""
    with Sandbox("strict", launcher=launcher) as sb:
        r = sb.run(["/bin/sh", "-c", "echo x > locked; chmod 000 locked"], collect=["locked"])
    assert "locked" not in r.files
    assert "permission denied" in r.collect_errors["locked"]

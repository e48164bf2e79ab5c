"""Locks on the shared lower layer never leave the run (issue 13 item 7).

/usr comes from the host. Bound as it is, its files are the host's inodes,
and a lock lives on the inode: a payload holding flock(LOCK_EX) on
/usr/bin/env blocked every other run and the host itself (a denial of
service, and a covert channel between runs). Read-only host directories are
mounted as read-only overlays of the run's own instead; the knob
``shared_binds`` turns that off to show it is what stops the attack.
Where the kernel has AppArmor, its profile grants no lock (``k``) on
read-only trees either: it is switched off here so the overlay is what is
tested (the guest stage).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess

import pytest
from sbxtest import FEATURES, sandbox_cmd

from sandbox import Sandbox, Verdict

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]
TARGET = "/usr/bin/env"
TRY_LOCK = f"import fcntl; fcntl.flock(open({TARGET!r}), fcntl.LOCK_EX | fcntl.LOCK_NB)"


def _host_can_lock(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "ablate", [frozenset(), frozenset({"shared_binds"})], ids=["all-on", "all-off"]
)
def test_a_lock_on_the_lower_layer_reaches_no_one_else(probes, tmp_path, ablate):
    meta = tmp_path / "meta.json"
    argv = [*sandbox_cmd(), "exec", "--meta", str(meta), "--profile", "strict"]
    for k in sorted(ablate | {"apparmor"}):
        argv += ["--test-ablate", k]
    argv += ["--", str(probes["escape"]), "flock", TARGET, "3"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        assert p.stdout is not None
        first = p.stdout.readline()  # the payload holds the lock from here on
        assert first == b"locked\n", (first, p.stderr.read() if p.stderr else b"")
        host_ok = _host_can_lock(TARGET)
        with Sandbox("strict") as sb:  # another run, at the same time
            other = sb.run(["/usr/bin/python3", "-c", TRY_LOCK])
    finally:
        p.communicate(timeout=60)
    assert p.returncode == 0
    record = json.loads(meta.read_text())
    # The other run locks the inode of its own overlay either way (where AppArmor
    # is on, its profile refuses the lock first: no "k" on read-only trees).
    if FEATURES["apparmor"]:
        assert b"PermissionError" in other.stderr, other.stderr
    else:
        assert other.verdict is Verdict.OK, other.stderr
    if ablate:  # the attack works without the private overlay: the host is blocked
        assert any("--test-ablate shared_binds" in n for n in record["notes"])
        assert not host_ok
    else:
        assert host_ok


def test_programs_still_lock_their_own_files(tmp_path):
    """Within one run a lock still excludes: on /usr, in /box and in /tmp.

    (AppArmor, where the kernel has it, grants locks only in writable trees.)
    """
    paths = ("/box/f", "/tmp/f") if FEATURES["apparmor"] else ("/usr/bin/env", "/box/f", "/tmp/f")
    script = (
        "import fcntl\n"
        f"for path in {paths!r}:\n"
        "    open(path, 'a').close() if not path.startswith('/usr') else None\n"
        "    a, b = open(path), open(path)\n"
        "    fcntl.flock(a, fcntl.LOCK_EX)\n"
        "    try:\n"
        "        fcntl.flock(b, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        raise SystemExit(path + ': a second lock was granted')\n"
        "    except BlockingIOError:\n"
        "        pass\n"
        "    fcntl.lockf(open(path, 'r+' if not path.startswith('/usr') else 'r'),\n"
        "                fcntl.LOCK_SH if path.startswith('/usr') else fcntl.LOCK_EX)\n"
        "print('ok')\n"
    )
    with Sandbox("strict") as sb:
        r = sb.run(["/usr/bin/python3", "-c", script])
    assert r.verdict is Verdict.OK, r.stderr
    assert r.stdout == b"ok\n"

"""Landlock on Debian 12's own 6.1 kernel (ABI 2), inside kvm-run: partial, and still mediating.

Run with ``kvm-run --env PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 -- .venv/bin/python -m pytest
tests/guest tests/kernel/landlock``; skipped elsewhere. The host's kernel tests
emulate ABI 2 by preparing an older ruleset; this file checks the real thing,
including that our 24-byte ruleset attribute is accepted by a kernel whose
struct is 8 bytes (the trailing fields are zero) and that an artifact built
for a newer ABI fails closed instead of silently dropping rights.
"""

import errno
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("KVM_RUN") != "1", reason="needs the kvm-run guest (KVM_RUN=1)"
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel" / "landlock"))
from ll_harness import OK, Trees, denied_only_by_landlock, outcome  # noqa: E402

from sandbox.landlock.abi import probe  # noqa: E402
from sandbox.landlock.restrict import apply_in_child  # noqa: E402
from sandbox.landlock.rules import prepare  # noqa: E402
from sandbox.policy.model import Filesystem  # noqa: E402
from sandbox.syscalls.linux import LinuxSyscalls  # noqa: E402

MISSING_AT_2 = (
    "LANDLOCK_ACCESS_FS_TRUNCATE",
    "LANDLOCK_ACCESS_FS_IOCTL_DEV",
    "LANDLOCK_ACCESS_NET_BIND_TCP",
    "LANDLOCK_ACCESS_NET_CONNECT_TCP",
    "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET",
    "LANDLOCK_SCOPE_SIGNAL",
)


@pytest.fixture
def trees(tmp_path):
    return Trees(tmp_path)


def test_the_guest_kernel_has_abi_2():
    assert probe() == 2, f"expected Debian 12's 6.1 kernel (ABI 2), got ABI {probe()}"


def test_default_policy_is_partial_with_the_missing_rights_named():
    a = prepare(Filesystem(), probe())
    assert a.state == "partial"
    assert a.missing == MISSING_AT_2
    assert a.has_file_mediation  # enough for strict's "Landlock ABI >= 2"
    assert "TRUNCATE" in a.detail


def test_file_read_and_write_mediation_works(trees):
    a = trees.artifact(probe())
    denied_only_by_landlock(lambda: open(trees.outside / "secret", "rb").close(), a, errno.EACCES)
    denied_only_by_landlock(lambda: open(trees.ro / "file", "ab").close(), a, errno.EACCES)
    denied_only_by_landlock(lambda: os.mkdir(trees.ro / "new"), a, errno.EACCES)
    denied_only_by_landlock(lambda: os.link(trees.ro / "file", trees.rw / "l"), a, errno.EXDEV)

    def use_tmp():
        (trees.rw / "out").write_bytes(b"ok")
        os.rename(trees.rw / "out", trees.rw / "a" / "out")  # REFER granted on ABI 2
        os.unlink(trees.rw / "a" / "out")

    assert outcome(use_tmp, a) == OK


def test_truncate_is_the_gap_that_makes_it_partial(trees):
    a = trees.artifact(probe())
    assert outcome(lambda: os.truncate(trees.ro / "file", 0), a) == OK
    assert (trees.ro / "file").stat().st_size == 0


def test_an_artifact_for_a_newer_abi_fails_closed(trees):
    a = trees.artifact(7)
    got = outcome(lambda: apply_in_child(a, LinuxSyscalls()), None)
    assert got in (errno.E2BIG, errno.EINVAL), os.strerror(got) if got else "applied"

"""The Python reference's new steps on the recording fake: time offsets, the collector.

The collector (issue 13 item 1) must hold no more rights than the payload
before it opens any name: no_new_privs, bounding set, the payload's ids,
empty capability sets and Landlock come before the first openat2, and every
name is opened beneath the /box fd with all four RESOLVE_ flags.
"""

from __future__ import annotations

import errno
import os

import pytest
from test_launcher_order import FLAGS, make_plan, run

from sandbox.launcher.protocol import (
    COLLECTOR_FAILED,
    DENIED,
    MISSING,
    REFUSED,
    TOO_BIG,
    PayloadStatus,
    collect_code,
    decode_files,
    encode_file,
)
from sandbox.launcher.steps import Ctx, LaunchFds, collect_main
from sandbox.syscalls.consts import (
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    CloneFlag,
    Prctl,
)
from sandbox.syscalls.recording import ExitCalled, RecordingSyscalls

BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
FDS = LaunchFds(stdin=10, stdout=11, stderr=12, errpipe=13, status=14, sync=15)


def collect(sc: RecordingSyscalls, **kw) -> int:
    ctx = Ctx(plan=make_plan(collect=("a.txt", "d/b"), **kw), fds=FDS, sc=sc, parent_pid=1)
    with pytest.raises(ExitCalled) as e:
        collect_main(ctx)
    return e.value.code


def test_the_collector_drops_to_the_payloads_rights_before_opening_anything():
    sc = RecordingSyscalls(read_results=[b"hello", b"", b""])
    assert collect(sc) == 0
    names = sc.names()
    opened = names.index("openat2")
    nnp = next(
        i
        for i, c in enumerate(sc.calls)
        if c.name == "prctl" and c.args[0] == Prctl.PR_SET_NO_NEW_PRIVS
    )
    for step in (
        nnp,
        names.index("setresuid"),
        names.index("capset"),
        names.index("landlock_restrict_self"),
    ):
        assert step < opened
    assert sc.calls[names.index("capset")].args == (0, 0, 0)
    assert sc.calls[names.index("setresuid")].args == (1000, 1000, 1000)
    drops = [c for c in sc.calls if c.name == "prctl" and c.args[0] == Prctl.PR_CAPBSET_DROP]
    assert len(drops) == 41  # every capability, whatever the payload kept


def test_each_name_is_opened_beneath_box_without_following_anything():
    sc = RecordingSyscalls(read_results=[b"", b""])
    collect(sc)
    box, *names = [c for c in sc.calls if c.name == "openat2"]
    assert box.args[1] == "/box" and box.args[3] == RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
    assert [c.args[1] for c in names] == ["a.txt", "d/b"]
    assert box.args[0] == -100 and {c.args[0] for c in names} == {names[0].args[0]}
    for c in names:
        assert c.args[0] >= 0  # the /box fd, never AT_FDCWD
        assert c.args[3] == BENEATH
        assert c.args[2] & os.O_NONBLOCK and not c.args[2] & (os.O_WRONLY | os.O_RDWR)


def test_a_refused_name_gets_its_reason_and_the_others_are_still_collected():
    sc = RecordingSyscalls(read_results=[b"x", b""])
    sc.fail_on("openat2", errno.ELOOP, nth=2)  # "a.txt" is a symlink
    collect(sc)
    records = b"".join(c.args[1] for c in sc.calls if c.name == "write" and c.args[0] == 14)
    got = decode_files(records)
    assert got["a.txt"] == REFUSED
    assert got["d/b"] == b"x"


def test_a_collector_that_cannot_drop_its_rights_reports_every_name():
    sc = RecordingSyscalls()
    sc.fail_on("setresuid", errno.EPERM)
    assert collect(sc) == 125
    records = b"".join(c.args[1] for c in sc.calls if c.name == "write" and c.args[0] == 14)
    assert decode_files(records) == {"a.txt": COLLECTOR_FAILED, "d/b": COLLECTOR_FAILED}
    assert "openat2" not in sc.names()


def test_codes():
    assert collect_code(errno.ENOENT) == MISSING
    assert collect_code(errno.EXDEV) == REFUSED
    assert collect_code(errno.EACCES) == DENIED
    assert collect_code(errno.EIO) == -(1000 + errno.EIO)
    assert decode_files(encode_file("x", TOO_BIG) + encode_file("y", 2, b"ab")) == {
        "x": TOO_BIG,
        "y": b"ab",
    }
    assert PayloadStatus.SIZE == 60  # init.c writes the same 60 bytes


def test_time_offsets_written_after_the_maps_and_before_init_exists():
    calls = run(make_plan(unshare_flags=FLAGS | CloneFlag.CLONE_NEWTIME)).calls
    (w,) = [c for c in calls if c.name == "write_file" and c.args[0] == "/proc/self/timens_offsets"]
    i = calls.index(w)
    names = [c.name for c in calls]
    assert names.index("unshare") < i < names.index("fork")
    assert i > next(j for j, c in enumerate(calls) if c.name == "read")  # MAPS_WRITTEN read
    mono, boot = w.args[1].decode().splitlines()
    assert mono.startswith("monotonic -") and mono.endswith(" 0")
    assert boot.startswith("boottime -") and boot.endswith(" 0")


def test_no_time_namespace_no_offsets():
    calls = run(make_plan()).calls
    assert not [c for c in calls if c.name == "write_file" and "timens" in c.args[0]]

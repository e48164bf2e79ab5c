"""Learning's notification handler and decoder on fakes: the base mirrored, TOCTOU, decoding."""

from __future__ import annotations

import errno
import struct

import pytest
from learnfakes import FakeAnswer, FakeTask, notif

from sandbox.learn.decode import Decoder, FileEvent, elf_interpreter, parse_sockaddr, shebang
from sandbox.learn.observe import Observer, base_verdict
from sandbox.learn.record import Record
from sandbox.policy.load import load_profile
from sandbox.seccomp.groups import resolve

STRICT = resolve(load_profile("strict").policy.seccomp)
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_PATH = 0, 1, 2, 0o100, 0o1000, 0o10000000
AT_FDCWD = 0xFFFFFF9C  # -100 as the register holds it


@pytest.mark.parametrize(
    ("name", "args", "verdict", "err"),
    [
        ("openat", (), "allowed", 0),
        ("splice", (), "beyond", 0),  # strict never mentions it: learnable
        ("clone3", (), "errno", errno.ENOSYS),
        ("socket", (2,), "errno", errno.EAFNOSUPPORT),  # AF_INET under sockets_local
        ("socket", (1,), "allowed", 0),
        ("clone", (0x10000000,), "errno", errno.EPERM),  # CLONE_NEWUSER
        ("ioctl", (0, 0x5412), "errno", errno.EPERM),  # TIOCSTI
        ("ptrace", (), "forbidden", 0),  # strict denies: notify default -> violation
        ("personality", (8,), "forbidden", 0),  # the rule sends it to the default
    ],
)
def test_base_verdict_mirrors_strict(name: str, args: tuple[int, ...], verdict: str, err: int):
    full = args + (0,) * (6 - len(args))
    bv = base_verdict(STRICT, name, full)
    assert (bv.verdict, bv.errno) == (verdict, err)


def test_errno_default_refuses_denied_calls_with_its_errno():
    from sandbox.policy.model import Seccomp

    spec = resolve(Seccomp(default_action="errno", default_errno="EACCES", deny=["ptrace"]))
    assert base_verdict(spec, "ptrace", (0,) * 6).errno == errno.EACCES
    assert base_verdict(spec, "openat", (0,) * 6).verdict == "beyond"


def observer(task: FakeTask | None = None, answer: FakeAnswer | None = None):
    rec = Record()
    ans = answer or FakeAnswer()
    return Observer(STRICT, rec, 1, task or FakeTask(), ans), rec, ans


def test_allowed_calls_continue_and_are_recorded():
    obs, rec, ans = observer()
    n = notif("getpid")
    assert obs(n, 3) is None
    assert ans.answers == [("continue", n.id, 0)]
    assert rec.syscalls["getpid"].treatment == "allowed"


def test_forbidden_call_stops_the_run_and_is_listed():
    obs, rec, ans = observer()
    v = obs(notif("ptrace", 16), 3)
    assert v is not None and v.syscall == "ptrace" and v.args[0] == 16
    assert ans.answers == []  # left to the kill
    assert "ptrace" not in rec.syscalls
    assert [r.syscall for r in rec.refused.values()] == ["ptrace"]


def test_errno_answers_are_kept_and_refused_values_listed():
    obs, rec, ans = observer()
    obs(notif("clone3"), 3)
    obs(notif("socket", 2, 1), 3)
    obs(notif("socket", 1, 1), 3)
    assert ans.answers[0][2] == errno.ENOSYS and ans.answers[1][2] == errno.EAFNOSUPPORT
    assert ans.answers[2][0] == "continue"
    assert rec.syscalls["clone3"].treatment == "errno"
    assert rec.syscalls["socket"].values == {1: {1}}
    assert rec.syscalls["socket"].refused_values == {2: errno.EAFNOSUPPORT}


def test_toctou_invalid_id_records_nothing():
    task = FakeTask(files={"/etc/hostname": "file"})
    ans = FakeAnswer()
    obs, rec, _ = observer(task, ans)
    n = notif("openat", AT_FDCWD, task.string("/etc/hostname"), O_RDONLY)
    ans.invalid.add(n.id)
    assert obs(n, 3) is None
    assert rec.files == {} and "openat" not in rec.syscalls and rec.dropped == 1


def test_tracked_values_are_masked():
    obs, rec, _ = observer()
    obs(notif("ioctl", 1, 0x5401 | 1 << 40), 3)
    obs(notif("clone", 0x01200011), 3)
    assert set(rec.syscalls["ioctl"].values) == {0x5401}
    assert set(rec.syscalls["clone"].values) == {0x01200011}


def events(task: FakeTask, name: str, *args: int) -> list[object]:
    return Decoder(task).decode(4242, name, tuple(args) + (0,) * (6 - len(args)))


def test_open_modes_and_relative_paths():
    task = FakeTask(files={"/etc/hostname": "file", "/usr/lib/py": "dir", "/box/x": "file"})
    assert events(task, "openat", AT_FDCWD, task.string("/etc/hostname"), O_RDONLY) == [
        FileEvent("/etc/hostname", "read", "/etc/hostname", "openat")
    ]
    got = events(task, "openat", AT_FDCWD, task.string("x"), O_RDWR | O_TRUNC)
    assert [e.access for e in got] == ["read", "write"] and got[0].path == "/box/x"
    task.fds[5] = "/usr/lib"
    got = events(task, "openat", 5, task.string("py"), O_RDONLY)
    assert got == [FileEvent("/usr/lib/py", "list", "/usr/lib/py", "openat")]
    assert events(task, "openat", AT_FDCWD, task.string("/etc/hostname"), O_PATH) == []
    got = events(task, "open", task.string("/box/new"), O_WRONLY | O_CREAT)
    assert got[0].access == "create"
    got = events(task, "openat", AT_FDCWD, task.string("/nope"), O_RDONLY)
    assert got[0].access == "missing"


def test_unreadable_or_undecodable_paths_are_skipped():
    task = FakeTask()
    assert events(task, "openat", AT_FDCWD, 0xDEAD0000, O_RDONLY) == []
    assert events(task, "openat", AT_FDCWD, task.put(b"/etc/\xff\0"), O_RDONLY) == []


def elf_with_interp(interp: bytes) -> bytes:
    head = bytearray(512)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x20, 64)  # e_phoff
    struct.pack_into("<HH", head, 0x36, 56, 1)  # e_phentsize, e_phnum
    struct.pack_into("<IIQQQQQQ", head, 64, 3, 4, 200, 0, 0, len(interp) + 1, 0, 1)
    head[200 : 200 + len(interp)] = interp
    return bytes(head)


def test_exec_follows_the_elf_and_script_interpreters():
    ld = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    task = FakeTask(
        files={"/box/s.sh": "file", "/usr/bin/dash": "file", ld: "file"},
        links={"/bin/sh": "/usr/bin/dash", "/lib64/ld-linux-x86-64.so.2": ld},
        heads={
            "/box/s.sh": b"#!/bin/sh -e\necho hi\n",
            "/usr/bin/dash": elf_with_interp(b"/lib64/ld-linux-x86-64.so.2"),
        },
    )
    got = events(task, "execve", task.string("/box/s.sh"))
    assert [(e.path, e.access) for e in got] == [
        ("/box/s.sh", "exec"),
        ("/usr/bin/dash", "exec"),
        (ld, "exec"),
    ]
    assert got[2].via == "interpreter of /usr/bin/dash"


def test_mmap_exec_of_a_file_is_code():
    task = FakeTask(files={"/usr/lib/libc.so.6": "file"}, fds={3: "/usr/lib/libc.so.6"})
    got = events(task, "mmap", 0, 4096, 5, 2, 3, 0)  # PROT_READ|PROT_EXEC, MAP_PRIVATE
    assert got == [FileEvent("/usr/lib/libc.so.6", "map_exec", "/usr/lib/libc.so.6", "mmap")]
    assert events(task, "mmap", 0, 4096, 1, 2, 3, 0) == []  # not executable
    assert events(task, "mmap", 0, 4096, 5, 0x22, 0xFFFFFFFF, 0) == []  # anonymous


def test_sockaddr_and_elf_parsers():
    sin = struct.pack("=H", 2) + struct.pack(">H", 8080) + bytes([127, 0, 0, 1]) + bytes(8)
    use = parse_sockaddr("connect", sin)
    assert use is not None and (use.family, use.address, use.port) == (2, "127.0.0.1", 8080)
    un = struct.pack("=H", 1) + b"\0abstract\0"
    assert parse_sockaddr("connect", un).address == "@abstract"  # type: ignore[union-attr]
    assert elf_interpreter(b"\x7fELF") is None and shebang(b"#!python\n") is None
    assert shebang(b"#! /usr/bin/env  python3\n") == "/usr/bin/env"


@pytest.mark.parametrize(
    ("name", "args", "cap"),
    [
        ("chown", (0, 0, 0), "CAP_CHOWN"),
        ("fchownat", (0, 0, 1000, 5), "CAP_CHOWN"),
        ("setuid", (0,), "CAP_SETUID"),
        ("setresgid", (0xFFFFFFFF, 0, 0xFFFFFFFF), "CAP_SETGID"),
        ("mknod", (0, 0o020644, 0), "CAP_MKNOD"),
        ("socket", (17, 3, 0), "CAP_NET_RAW"),
        ("sethostname", (0, 0), "CAP_SYS_ADMIN"),
        ("setpriority", (0, 0, 0xFFFFFFFB), "CAP_SYS_NICE"),  # nice -5
    ],
)
def test_capabilities_inferred_from_gated_calls(name: str, args: tuple[int, ...], cap: str):
    got = [e for e in events(FakeTask(), name, *args) if not isinstance(e, FileEvent)]
    assert [getattr(e, "cap", None) for e in got if hasattr(e, "cap")] == [cap]


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("chown", (0, 1000, 1000)),
        ("chown", (0, 0xFFFFFFFF, 0xFFFFFFFF)),
        ("setuid", (1000,)),
        ("mknod", (0, 0o010644, 0)),  # a FIFO
        ("setpriority", (0, 0, 5)),
    ],
)
def test_no_capability_for_what_the_task_may_do(name: str, args: tuple[int, ...]):
    assert not [e for e in events(FakeTask(), name, *args) if hasattr(e, "cap")]


def test_a_held_capability_is_not_inferred():
    from sandbox.syscalls.taskmem import Creds

    task = FakeTask(ids=Creds((1000,) * 4, (1000,) * 4, (), 1 << 0))  # CAP_CHOWN held
    assert not [e for e in events(task, "chown", 0, 0, 0) if hasattr(e, "cap")]

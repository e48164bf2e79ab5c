"""Attacks on the verdict: forging, misattributing and hiding violations (issue 13 item 4).

A SECURITY_VIOLATION comes only from the run's own seccomp listener: the
payload cannot write to it, and no other run can flood it. An exit status
(SIGSYS is one kill(2), or one filter of the payload's own, away) and the
kernel log (rate-limited host-wide, writable by any task's audit records)
never decide it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import struct
from pathlib import Path

import pytest
from escape_kit import attack

from sandbox import Sandbox, Verdict

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]
I386_GETPID = 20


@pytest.mark.parametrize("ablate", [frozenset(), frozenset({"seccomp"})], ids=["all-on", "off"])
def test_a_filter_of_the_payloads_own_cannot_forge_a_violation(probes, tmp_path, ablate):
    """prctl(PR_SET_SECCOMP) with a filter that kills getppid, then getppid.

    With the filter on, prctl refuses that option (a violation naming prctl,
    not getppid). Without it, the payload's own filter kills it with SIGSYS:
    a runtime error, whatever the kernel logged for it.
    """
    r = attack(probes["escape"], ["self-filter"], ablate, tmp_path)
    assert r.record is not None, r.err
    if not ablate:
        assert r.record["verdict"] == "SECURITY_VIOLATION", r.record
        assert r.record["violation"]["syscall"] == "prctl"
        assert r.record["violation"]["args"][0] == 22  # PR_SET_SECCOMP
    else:
        assert r.record["signal"] == signal.SIGSYS, r.record  # the forgery worked
        assert r.record["verdict"] == "RUNTIME_ERROR", r.record
        assert r.record["violation"] is None


def test_sigsys_sent_to_itself_is_a_runtime_error(probes, tmp_path):
    r = attack(probes["sigself"], ["sys"], frozenset(), tmp_path)
    assert r.record is not None and r.record["signal"] == signal.SIGSYS, r.err
    assert r.record["verdict"] == "RUNTIME_ERROR" and r.record["violation"] is None


def _flood_kernel_log(n: int) -> None:
    """n seccomp kill records from the host, as another run with a filter of its own
    could make them: the kernel's log rate limit is then spent for a while."""
    ld, jeq, ret = 0x20, 0x15, 0x06
    prog = b"".join(
        struct.pack("=HBBI", *i)
        for i in (
            (ld, 0, 0, 0),
            (jeq, 0, 1, 110),  # getppid
            (ret, 0, 0, 0x80000000),  # KILL_PROCESS: logged, rate-limited
            (ret, 0, 0, 0x7FFF0000),
        )
    )
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(prog, len(prog))

    class Fprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Fprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            libc.syscall(317, 1, 0, ctypes.byref(fprog))  # seccomp(SET_MODE_FILTER)
            libc.syscall(110)  # getppid: killed here
            os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


@pytest.mark.parametrize("how", ["int80", "thread-int80"])
def test_a_flooded_kernel_log_hides_no_violation(probes, how):
    """A foreign-ABI call right after the kernel's log rate limit was spent (by
    records that are none of this run's) is still this run's violation, with its
    own ABI and syscall: the listener, not the log, records it."""
    _flood_kernel_log(40)
    with Sandbox("strict") as sb:
        r = sb.run([str(probes["try_syscall"]), how, str(I386_GETPID)])
    assert r.verdict is Verdict.SECURITY_VIOLATION, (r.verdict, r.message, r.signal)
    assert r.violation is not None
    assert (r.violation.syscall, r.violation.arch) == ("getpid", "i386")


def test_prctl_options_programs_use_still_run(tmp_path: Path):
    """Thread names, the parent-death signal, dumpable: what glibc, the JVM and
    Python ask for runs under strict."""
    script = (
        "import ctypes, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.prctl(15, b'worker', 0, 0, 0) == 0\n"  # PR_SET_NAME
        "assert libc.prctl(1, 9, 0, 0, 0) == 0\n"  # PR_SET_PDEATHSIG
        "assert libc.prctl(3, 0, 0, 0, 0) in (0, 1)\n"  # PR_GET_DUMPABLE
        "assert libc.prctl(38, 1, 0, 0, 0) == 0\n"  # PR_SET_NO_NEW_PRIVS
        "t = threading.Thread(target=lambda: None, name='x'); t.start(); t.join()\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    with Sandbox("strict") as sb:
        r = sb.run(["/usr/bin/python3", "-c", script])
    assert r.verdict is Verdict.OK, (r.message, r.stderr)
    assert r.stdout == b"worker\n"

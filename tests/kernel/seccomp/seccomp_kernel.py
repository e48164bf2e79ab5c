"""Helpers for the seccomp kernel tests: real filters loaded in forked children.

Each test forks; the child sets no_new_privs, loads the BPF bytes with
seccomp(SECCOMP_SET_MODE_FILTER) and execs a probe whose exit status is the
errno of the call under test (bwrap's try-syscall). The parent only waits.
Probes are compiled with gcc into tests/probes/build/ (gitignored).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.policy.load import merge
from sandbox.policy.model import Seccomp

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"

SYS_seccomp = 317  # x86_64
SECCOMP_SET_MODE_FILTER = 1
PR_SET_NO_NEW_PRIVS = 38
PR_GET_SECCOMP = 21
SIGSYS = signal.SIGSYS


def seccomp_unavailable() -> str | None:
    """Why the kernel tests cannot run here, or None."""
    if os.uname().machine != "x86_64":
        return "the probes and syscall numbers are x86_64"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return "kernel without CONFIG_SECCOMP"
    try:
        actions = Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    except OSError:
        return "no /proc/sys/kernel/seccomp/actions_avail (CONFIG_SECCOMP_FILTER?)"
    missing = {"kill_process", "errno", "allow", "user_notif"} - set(actions)
    if missing:
        return f"kernel lacks seccomp actions {sorted(missing)}"
    if shutil.which("gcc") is None:
        return "gcc is needed to build the probes"
    return None


UNAVAILABLE = seccomp_unavailable()
# Every kernel test module sets ``pytestmark = requires_seccomp``.
requires_seccomp = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class FilterLoader:
    """Everything the child needs, built before fork: the child only makes two calls."""

    def __init__(self, bpf: bytes, flags: int = 0) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.buf = ctypes.create_string_buffer(bpf, len(bpf))
        self.prog = _SockFprog(len(bpf) // 8, ctypes.addressof(self.buf))
        self.flags = flags

    def load(self) -> int:
        """In the child: NNP, then the filter; returns the listener fd (or 0)."""
        # NNP before seccomp: without it SECCOMP_SET_MODE_FILTER needs CAP_SYS_ADMIN.
        if self.libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
        fd = self.libc.syscall(
            SYS_seccomp, SECCOMP_SET_MODE_FILTER, self.flags, ctypes.byref(self.prog)
        )
        if fd < 0:
            raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER)")
        return int(fd)


def try_load(bpf: bytes) -> int:
    """0 when the kernel accepts ``bpf`` (in a forked child), else the errno it gives."""
    loader = FilterLoader(bpf)
    pid = os.fork()
    if pid == 0:
        try:
            loader.load()
        except OSError as e:
            os._exit(e.errno or 255)
        os._exit(0)  # the filter may kill us here: that still means "loaded"
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0


def run_errno_probe(probe: Path, bpf: bytes, cases: Sequence[Sequence[int]]) -> list[int]:
    """Load ``bpf`` in errno_probe and make each (nr, *args) call; return the errnos."""
    records = b"".join(
        struct.pack("<7Q", *(v & 0xFFFFFFFFFFFFFFFF for v in (*c, 0, 0, 0, 0, 0, 0)[:7]))
        for c in cases
    )
    with tempfile.TemporaryDirectory() as tmp:
        fpath, cpath = Path(tmp, "filter"), Path(tmp, "cases")
        fpath.write_bytes(bpf)
        cpath.write_bytes(records)
        done = subprocess.run(
            [str(probe), str(fpath), str(cpath)], capture_output=True, check=False
        )
    assert done.returncode == 0, f"errno_probe exited {done.returncode}: {done.stderr!r}"
    return list(struct.unpack(f"<{len(cases)}I", done.stdout))


@dataclass(frozen=True)
class Outcome:
    """How the child ended, and what it printed."""

    status: int  # raw wait status
    output: bytes

    @property
    def code(self) -> int | None:
        """Exit code (the probe's errno), None when killed by a signal."""
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None


def run_filtered(
    bpf: bytes | None, argv: Sequence[str], flags: int = 0, stdin: bytes = b""
) -> Outcome:
    """Fork, load ``bpf`` in the child (None: no filter), exec ``argv``; return how it ended."""
    loader = FilterLoader(bpf, flags) if bpf is not None else None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/tmp"}
    rd, wr = os.pipe()
    in_rd, in_wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no Python-level work after load() but the execve
        try:
            os.dup2(in_rd, 0)
            os.dup2(wr, 1)
            os.dup2(wr, 2)
            if loader is not None:
                loader.load()
            os.execve(argv[0], list(argv), env)
        finally:
            os._exit(127)
    os.close(wr)
    os.close(in_rd)
    os.write(in_wr, stdin)
    os.close(in_wr)
    chunks = []
    while chunk := os.read(rd, 65536):
        chunks.append(chunk)
    os.close(rd)
    _, status = os.waitpid(pid, 0)
    return Outcome(status, b"".join(chunks))


def _raw_profile(name: str) -> dict[str, Any]:
    raw = tomllib.loads((FIXTURES / f"{name}.toml").read_text())
    parent = raw.pop("extends", None)
    return merge(_raw_profile(parent), raw) if parent else raw


def profile_seccomp(name: str) -> Seccomp:
    """The seccomp section of an example profile in tests/fixtures/profiles."""
    return Seccomp.model_validate(_raw_profile(name).get("seccomp", {}))

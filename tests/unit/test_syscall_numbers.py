"""Syscall numbers without a glibc wrapper: the host's table, never another arch's guess."""

from __future__ import annotations

import errno
import platform

import pytest

from sandbox.syscalls import consts


def test_this_host_has_its_own_numbers():
    assert platform.machine() == consts.ARCH
    assert consts.NR["seccomp"] == consts._NR[consts.ARCH]["seccomp"]


def test_an_unknown_architecture_refuses_instead_of_guessing():
    nr = consts._NoNumbers("riscv64")
    with pytest.raises(OSError) as info:
        nr["pivot_root"]
    assert info.value.errno == errno.ENOSYS
    assert "riscv64" in str(info.value) and "pivot_root" in str(info.value)
    with pytest.raises(OSError):
        nr.get("seccomp", 317)  # no default either: another arch's number is never used
    assert len(nr) == 0 and list(nr) == []

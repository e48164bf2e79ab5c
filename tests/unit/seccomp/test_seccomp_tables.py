"""The committed syscall tables agree with libseccomp's resolver, both ways."""

from __future__ import annotations

import gen_seccomp_tables as gen_tables
import pytest

from sandbox.seccomp import _libseccomp
from sandbox.seccomp.tables import ARCHES, I386_MULTIPLEXED, X32_SYSCALL_BIT, parse_table, table


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_every_entry_resolves_to_itself(arch: str) -> None:
    info = ARCHES[arch]
    tab = table(arch)
    assert len(tab.by_name) > 300
    for name, nr in tab.by_name.items():
        assert _libseccomp.resolve_num(info.scmp_token, nr) == name, nr
        resolved = _libseccomp.resolve_name(info.scmp_token, name)
        if arch == "i386" and name in I386_MULTIPLEXED:
            # libseccomp names the multiplexed form: -100 - SYS_* / -200 - IPC call.
            mux, call = I386_MULTIPLEXED[name]
            assert resolved == -(100 if mux == "socketcall" else 200) - call, name
        else:
            assert resolved == nr, name


def test_multiplexed_calls_match_libseccomp() -> None:
    token = ARCHES["i386"].scmp_token
    for name, (mux, call) in I386_MULTIPLEXED.items():
        base = 100 if mux == "socketcall" else 200
        assert _libseccomp.resolve_name(token, name) == -base - call, name


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_no_number_libseccomp_knows_is_missing(arch: str) -> None:
    info = ARCHES[arch]
    tab = table(arch)
    for offset in range(gen_tables.SCAN):
        name = _libseccomp.resolve_num(info.scmp_token, info.nr_bit | offset)
        assert tab.name(info.nr_bit | offset) == name, offset


def test_tables_are_not_stale() -> None:
    assert gen_tables.main(["--check"]) == 0


def test_known_numbers() -> None:
    # Spot checks from the kernel's syscall_64.tbl / syscall_32.tbl.
    assert table("x86_64").nr("read") == 0
    assert table("x86_64").nr("ptrace") == 101
    assert table("x86_64").nr("clone3") == 435
    assert table("i386").nr("getpid") == 20
    assert table("i386").nr("socketcall") == 102
    assert table("x86_64").nr("socketcall") is None
    assert table("x32").nr("read") == X32_SYSCALL_BIT
    assert table("x32").nr("ioctl") == X32_SYSCALL_BIT | 514  # x32's own compat ioctl


def test_parse_rejects_bad_lines() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        parse_table("x86_64", "read 0\nread 1\n")
    with pytest.raises(ValueError, match="expected"):
        parse_table("x86_64", "read zero\n")
    assert parse_table("x86_64", "# c\nread\t0  # trailing\n").nr("read") == 0

"""Per-arch syscall tables (name <-> number), read from ``seccomp_policies/tables/``.

Pure data access for both sides of verification: the reference model and the
simulator must map names to numbers *without* asking libseccomp, so the tables
are kept in the repository (generated once by tools/gen_seccomp_tables.py, cross-checked
against libseccomp's resolver by a unit test). Runs in the supervisor; needs
no privilege.

Three x86 ABIs reach a 64-bit kernel, and seccomp sees each differently
(``struct seccomp_data``): native x86_64 (``AUDIT_ARCH_X86_64``), i386 through
``int 0x80`` (``AUDIT_ARCH_I386``) and x32 (``AUDIT_ARCH_X86_64`` with the
``__X32_SYSCALL_BIT`` 0x40000000 set in the number). Tables store numbers as
seccomp sees them, so x32 numbers carry that bit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

# Package data, like the shipped profiles (see sandbox.policy.profile.PROFILES_DIR).
POLICIES_DIR = (Path(__file__).resolve().parents[1] / "_data" / "seccomp_policies").resolve()
TABLES_DIR = POLICIES_DIR / "tables"

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000


@dataclass(frozen=True, slots=True)
class ArchInfo:
    """How one ABI looks to a seccomp filter."""

    name: str
    audit_arch: int  # seccomp_data.arch
    scmp_token: int  # libseccomp's SCMP_ARCH_* value
    nr_bit: int  # bit set in every syscall number of this ABI (x32), else 0
    word_bits: int  # libseccomp compares this many low bits of each argument


ARCHES: Mapping[str, ArchInfo] = MappingProxyType(
    {
        # libseccomp's SCMP_ARCH_X86_64 and SCMP_ARCH_X86 are the audit arches.
        "x86_64": ArchInfo("x86_64", AUDIT_ARCH_X86_64, AUDIT_ARCH_X86_64, 0, 64),
        "i386": ArchInfo("i386", AUDIT_ARCH_I386, AUDIT_ARCH_I386, 0, 32),
        # libseccomp's x32 token differs from the audit arch, which x32 shares
        # with x86_64; libseccomp treats x32 arguments as 32-bit words.
        "x32": ArchInfo("x32", AUDIT_ARCH_X86_64, 0x4000003E, X32_SYSCALL_BIT, 32),
    }
)


# i386 multiplexers: socketcall(call, args*) and ipc(call, ...) reach the
# socket and SysV IPC families with the real arguments in memory (SYS_* in
# linux/net.h, SEMOP... in linux/ipc.h). libseccomp adds the multiplexed form
# of every such rule on i386 (arch "rule_add" = abi_rule_add).
I386_MULTIPLEXED: Mapping[str, tuple[str, int]] = MappingProxyType(
    {
        name: ("socketcall", n)
        for n, name in enumerate(
            [
                "socket",
                "bind",
                "connect",
                "listen",
                "accept",
                "getsockname",
                "getpeername",
                "socketpair",
                "send",
                "recv",
                "sendto",
                "recvfrom",
                "shutdown",
                "setsockopt",
                "getsockopt",
                "sendmsg",
                "recvmsg",
                "accept4",
                "recvmmsg",
                "sendmmsg",
            ],
            1,
        )
    }
    | {
        name: ("ipc", n)
        for name, n in [
            ("semop", 1),
            ("semget", 2),
            ("semctl", 3),
            ("semtimedop", 4),
            ("msgsnd", 11),
            ("msgrcv", 12),
            ("msgget", 13),
            ("msgctl", 14),
            ("shmat", 21),
            ("shmdt", 22),
            ("shmget", 23),
            ("shmctl", 24),
        ]
    }
)


@dataclass(frozen=True, slots=True)
class SyscallTable:
    """One ABI's syscalls as seccomp numbers them."""

    arch: str
    by_name: Mapping[str, int]
    by_nr: Mapping[int, str]

    def nr(self, name: str) -> int | None:
        """The number of ``name`` on this arch, or None when the ABI lacks it."""
        return self.by_name.get(name)

    def name(self, nr: int) -> str | None:
        """The name for seccomp number ``nr``, or None when unknown."""
        return self.by_nr.get(nr)

    @property
    def max_nr(self) -> int:
        """Highest known number (with the x32 bit, where the ABI has one)."""
        return max(self.by_nr)


def arch_info(arch: str) -> ArchInfo:
    """Look up an arch by name.

    Raises:
        KeyError: for an arch we keep no table for.
    """
    return ARCHES[arch]


def parse_table(arch: str, text: str) -> SyscallTable:
    """Parse ``name<TAB>number`` lines; ``#`` starts a comment.

    Raises:
        ValueError: on a malformed line or a duplicate name or number.
    """
    by_name: dict[str, int] = {}
    by_nr: dict[int, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ValueError(f"{arch} table line {lineno}: expected 'name number', got {raw!r}")
        name, nr = parts[0], int(parts[1])
        if name in by_name or nr in by_nr:
            raise ValueError(f"{arch} table line {lineno}: duplicate {name!r} or {nr}")
        by_name[name] = nr
        by_nr[nr] = name
    return SyscallTable(arch, MappingProxyType(by_name), MappingProxyType(by_nr))


@functools.cache
def table(arch: str) -> SyscallTable:
    """The table for ``arch`` from ``seccomp_policies/tables/<arch>.tsv`` (cached).

    Raises:
        KeyError: for an unknown arch.
        OSError: when the data file is missing.
    """
    arch_info(arch)
    return parse_table(arch, (TABLES_DIR / f"{arch}.tsv").read_text())


@functools.cache
def all_names() -> frozenset[str]:
    """Every syscall name known on any of our arches."""
    return frozenset(n for a in ARCHES for n in table(a).by_name)


MAX_ARGS = 6  # seccomp_data.args


@functools.cache
def nargs() -> Mapping[str, int]:
    """Arguments each syscall takes (``tables/nargs.tsv``: tools/gen_seccomp_nargs.py, strace).

    Raises:
        ValueError: on a malformed line.
        OSError: when the data file is missing.
    """
    out: dict[str, int] = {}
    for lineno, raw in enumerate((TABLES_DIR / "nargs.tsv").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) > MAX_ARGS:
            raise ValueError(f"nargs table line {lineno}: expected 'name count', got {raw!r}")
        out[parts[0]] = int(parts[1])
    return MappingProxyType(out)


def arg_count(name: str) -> int:
    """How many arguments ``name`` takes; all six registers when the table lacks it."""
    return nargs().get(name, MAX_ARGS)

"""The per-ABI rights tables and the probe, checked against the kernel's uapi values."""

import pytest

from sandbox.landlock.abi import (
    FILE_RIGHTS,
    FS_V1,
    LATEST_ABI,
    AccessFs,
    AccessNet,
    Scope,
    missing_names,
    names,
    probe,
    rights_for,
)

# include/uapi/linux/landlock.h, written out by hand so a typo in the enum shows up.
UAPI_FS = {
    "EXECUTE": 1 << 0,
    "WRITE_FILE": 1 << 1,
    "READ_FILE": 1 << 2,
    "READ_DIR": 1 << 3,
    "REMOVE_DIR": 1 << 4,
    "REMOVE_FILE": 1 << 5,
    "MAKE_CHAR": 1 << 6,
    "MAKE_DIR": 1 << 7,
    "MAKE_REG": 1 << 8,
    "MAKE_SOCK": 1 << 9,
    "MAKE_FIFO": 1 << 10,
    "MAKE_BLOCK": 1 << 11,
    "MAKE_SYM": 1 << 12,
    "REFER": 1 << 13,
    "TRUNCATE": 1 << 14,
    "IOCTL_DEV": 1 << 15,
}

# (abi, handled fs mask, net mask, scope mask)
TABLE = [
    (0, 0, 0, 0),
    (1, 0x1FFF, 0, 0),
    (2, 0x3FFF, 0, 0),
    (3, 0x7FFF, 0, 0),
    (4, 0x7FFF, 0x3, 0),
    (5, 0xFFFF, 0x3, 0),
    (6, 0xFFFF, 0x3, 0x3),
    (7, 0xFFFF, 0x3, 0x3),
]


def test_fs_values_match_uapi():
    got = {m.name.removeprefix("LANDLOCK_ACCESS_FS_"): m.value for m in AccessFs}
    assert got == UAPI_FS


def test_net_and_scope_values_match_uapi():
    assert AccessNet.LANDLOCK_ACCESS_NET_BIND_TCP == 1
    assert AccessNet.LANDLOCK_ACCESS_NET_CONNECT_TCP == 2
    assert Scope.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET == 1
    assert Scope.LANDLOCK_SCOPE_SIGNAL == 2


@pytest.mark.parametrize(("abi", "fs", "net", "scope"), TABLE)
def test_rights_per_abi(abi, fs, net, scope):
    r = rights_for(abi)
    assert (r.abi, int(r.fs), int(r.net), int(r.scope)) == (abi, fs, net, scope)


def test_v1_is_the_first_thirteen_rights():
    assert FS_V1 == (1 << 13) - 1


def test_abi_above_latest_is_clamped_and_below_zero_is_off():
    assert rights_for(LATEST_ABI + 5) == rights_for(LATEST_ABI)
    assert rights_for(-1) == rights_for(0)


def test_rights_only_grow_with_the_abi():
    for abi in range(1, LATEST_ABI + 1):
        old, new = rights_for(abi - 1), rights_for(abi)
        assert old.fs & ~new.fs == 0 and old.net & ~new.net == 0 and old.scope & ~new.scope == 0


@pytest.mark.parametrize(
    ("abi", "expected"),
    [
        (6, ()),
        (7, ()),
        (5, ("LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET", "LANDLOCK_SCOPE_SIGNAL")),
        (
            2,
            (
                "LANDLOCK_ACCESS_FS_TRUNCATE",
                "LANDLOCK_ACCESS_FS_IOCTL_DEV",
                "LANDLOCK_ACCESS_NET_BIND_TCP",
                "LANDLOCK_ACCESS_NET_CONNECT_TCP",
                "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET",
                "LANDLOCK_SCOPE_SIGNAL",
            ),
        ),
        (
            1,
            (
                "LANDLOCK_ACCESS_FS_REFER",
                "LANDLOCK_ACCESS_FS_TRUNCATE",
                "LANDLOCK_ACCESS_FS_IOCTL_DEV",
                "LANDLOCK_ACCESS_NET_BIND_TCP",
                "LANDLOCK_ACCESS_NET_CONNECT_TCP",
                "LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET",
                "LANDLOCK_SCOPE_SIGNAL",
            ),
        ),
    ],
)
def test_missing_names(abi, expected):
    assert missing_names(abi) == expected


def test_missing_at_abi_0_names_every_right():
    assert len(missing_names(0)) == 16 + 2 + 2


def test_names_lowest_bit_first():
    mask = AccessFs.LANDLOCK_ACCESS_FS_TRUNCATE | AccessFs.LANDLOCK_ACCESS_FS_EXECUTE
    assert names(mask, AccessFs) == ("LANDLOCK_ACCESS_FS_EXECUTE", "LANDLOCK_ACCESS_FS_TRUNCATE")
    assert names(0, Scope) == ()


def test_file_rights_are_the_kernels_non_directory_set():
    # security/landlock/fs.c: ACCESS_FILE
    assert names(FILE_RIGHTS, AccessFs) == (
        "LANDLOCK_ACCESS_FS_EXECUTE",
        "LANDLOCK_ACCESS_FS_WRITE_FILE",
        "LANDLOCK_ACCESS_FS_READ_FILE",
        "LANDLOCK_ACCESS_FS_TRUNCATE",
        "LANDLOCK_ACCESS_FS_IOCTL_DEV",
    )


def test_probe_uses_the_query_and_floors_errors_at_zero():
    assert probe(lambda: 2) == 2
    assert probe(lambda: 9) == 9  # the raw number; rights_for clamps
    assert probe(lambda: -1) == 0


def test_probe_default_reads_the_running_kernel():
    assert probe() >= 0

"""The syscalls that can make a set-uid or set-gid file, and where their mode is (pure).

In a writable bind the payload writes as the directory's owner (idmapped), so
a set-id file there would be that owner's rights for every local user of the
host, after the run. The reviewed groups (fs_read, fs_write) refuse these
modes with EPERM; the OCI runtime adds the same rules under a bundle's own
filter, and ``learn`` tracks the same bits. ``openat2`` carries its mode in a
struct a filter cannot read: it answers ENOSYS wherever these rules apply.
"""

from __future__ import annotations

from types import MappingProxyType

SETID_BITS = 0o6000  # S_ISUID | S_ISGID; umode_t: the kernel reads the low 16 bits only

# syscall -> index of its mode argument (x86_64)
MODE_ARG = MappingProxyType(
    {
        "open": 2,
        "openat": 3,
        "creat": 1,
        "chmod": 1,
        "fchmod": 1,
        "fchmodat": 2,
        "fchmodat2": 2,
    }
)


def setid_rule(name: str) -> dict[str, object]:
    """A profile's ``[[seccomp.rules]]`` entry: ``name`` runs unless its mode is set-id."""
    return {
        "syscall": name,
        "arg": MODE_ARG[name],
        "mask": SETID_BITS,
        "values": [0],
        "match": "allow",
        "otherwise": "EPERM",
    }


__all__ = ["MODE_ARG", "SETID_BITS", "setid_rule"]

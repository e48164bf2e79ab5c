"""Helpers for the seccomp tests: the example profiles in tests/fixtures/profiles."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from sandbox.policy.load import merge
from sandbox.policy.model import Seccomp

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"

# What the brief says strict never allows (personality is allowed for 0 and
# 0xffffffff only, checked separately).
NEVER = [
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    "userfaultfd",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "clock_adjtime",
    "quotactl",
    "lookup_dcookie",
    "vm86",
    "vm86old",
    "iopl",
    "ioperm",
    "syslog",
    "chroot",
]


def load_raw(name: str) -> dict[str, Any]:
    raw = tomllib.loads((FIXTURES / f"{name}.toml").read_text())
    parent = raw.pop("extends", None)
    return merge(load_raw(parent), raw) if parent else raw


def profile_seccomp(name: str) -> Seccomp:
    """The seccomp section of an example profile, with ``extends`` merged like the loader."""
    return Seccomp.model_validate(load_raw(name).get("seccomp", {}))

"""``SeccompArtifact``: the compiled filter that crosses from the supervisor to the child.

Pure data (a frozen dataclass, no pydantic): it goes into the LaunchPlan, and
the launcher only reads ``bpf`` and ``flags`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.seccomp.actions import SECCOMP_FILTER_FLAG_NEW_LISTENER
from sandbox.seccomp.bpf import Program


@dataclass(frozen=True, slots=True)
class SeccompArtifact:
    """A compiled filter: the bytes to load plus what reviewers and verify need."""

    bpf: bytes  # struct sock_filter[], host byte order, exactly as the kernel takes it
    pfc: str  # libseccomp's pseudo filter code, for `sandbox explain`
    arch: str  # target ABI: x86_64, i386 or x32
    default_action: str  # the policy's default action name
    key: str  # sha256 over the spec, libseccomp version, arch and builder format
    notify: bool  # some path returns SECCOMP_RET_USER_NOTIF
    allowed: frozenset[str]  # syscalls that can run (ALLOW/LOG) for some arguments

    @property
    def flags(self) -> int:
        """Flags for ``seccomp(SECCOMP_SET_MODE_FILTER, flags, ...)``."""
        return SECCOMP_FILTER_FLAG_NEW_LISTENER if self.notify else 0

    @property
    def instructions(self) -> int:
        """Number of BPF instructions."""
        return len(self.bpf) // 8

    def program(self) -> Program:
        """The decoded, kernel-checked program (for the simulator and explain)."""
        return Program.from_bytes(self.bpf)

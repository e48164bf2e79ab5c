"""What one syscall seen while learning used: files, addresses, capabilities (pure data).

Below both ``decode`` (which turns a syscall into these) and ``capinfer``
(which makes the ``CapEvent``s), so neither imports the other's module for
the type (the cycle issue 16 names).
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.learn.record import Access, NetUse


@dataclass(frozen=True, slots=True)
class FileEvent:
    """The program used ``path`` (canonical inside path) with ``access``."""

    path: str
    access: Access
    asked: str = ""
    via: str = ""


@dataclass(frozen=True, slots=True)
class NetEvent:
    """A socket family, or an address the program connected, bound or sent to."""

    use: NetUse


@dataclass(frozen=True, slots=True)
class CapEvent:
    """The syscall needs ``cap``, which the task lacks: the kernel answers EPERM."""

    cap: str
    evidence: str


Event = FileEvent | NetEvent | CapEvent

__all__ = ["CapEvent", "Event", "FileEvent", "NetEvent"]

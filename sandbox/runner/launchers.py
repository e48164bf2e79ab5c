"""Which launcher runs the child side: the native one (default) or the Python reference.

``Sandbox(..., launcher=...)`` and ``sandbox exec --launcher`` pass the name
here; without one, ``$SANDBOX_LAUNCHER`` (how the test suites run everything
against both) or ``native``. The native launcher, when chosen, must be there
and match its sources; otherwise the run is refused with the fix
(:mod:`sandbox.launcher.native`), never handed to the other launcher behind
the caller's back.
"""

from __future__ import annotations

import os
from typing import Literal

from sandbox.errors import PolicyError
from sandbox.runner.launch import LauncherClient

LAUNCHERS = ("native", "python")
DEFAULT_LAUNCHER = "native"


def launcher_name(name: str | None = None) -> str:
    """The launcher to use: ``name``, else ``$SANDBOX_LAUNCHER``, else native.

    Raises:
        PolicyError: an unknown name.
    """
    chosen = name or os.environ.get("SANDBOX_LAUNCHER") or DEFAULT_LAUNCHER
    if chosen not in LAUNCHERS:
        raise PolicyError(f"unknown launcher {chosen!r}: choose one of {', '.join(LAUNCHERS)}")
    return chosen


def make_client(name: str | None = None, mode: Literal["fork", "exec"] = "exec") -> LauncherClient:
    """A client for the chosen launcher (``mode`` matters to the Python one only:
    ``fork`` for the single-threaded CLI, ``exec`` for the library).

    Raises:
        PolicyError: an unknown launcher name.
    """
    if launcher_name(name) == "native":
        from sandbox.launcher.native import NativeLauncherClient

        return NativeLauncherClient(mode)
    from sandbox.runner.client import ForkServerClient

    return ForkServerClient(mode)

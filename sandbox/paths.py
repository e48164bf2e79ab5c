"""Where the sandbox keeps its files on the host (bottom floor: no sandbox imports).

- runtime directory (per boot): run locks, id slots, staged files, the
  staging mount point. Root: ``/run/sandbox`` (``SANDBOX_RUNTIME_DIR``);
  otherwise ``$XDG_RUNTIME_DIR/sandbox`` or ``/tmp/sandbox-<uid>``.
- state directory (persistent caches): images, verified reports, compiled
  filters, profiles. Root: ``/var/lib/sandbox`` (``SANDBOX_STATE_DIR``);
  otherwise ``~/.cache/sandbox``.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing's: the CLI's thin entry imports this module, and typing
if TYPE_CHECKING:  # and pathlib (urllib, ipaddress) cost it several ms: Path is lazy
    from pathlib import Path

STAGING = "/run/sandbox/stage"  # root's staging mount point (rootless: its runtime dir's)


def runtime_path() -> str:
    """:func:`runtime_dir` as a string, without importing pathlib."""
    if os.geteuid() == 0:
        return os.environ.get("SANDBOX_RUNTIME_DIR", "/run/sandbox")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(xdg, "sandbox") if xdg else f"/tmp/sandbox-{os.geteuid()}"


def runtime_dir() -> Path:
    """Root: /run/sandbox; otherwise $XDG_RUNTIME_DIR/sandbox or /tmp/sandbox-<uid>."""
    from pathlib import Path

    return Path(runtime_path())


def state_dir() -> Path:
    """Root: /var/lib/sandbox; otherwise ~/.cache/sandbox (images, verified cache)."""
    from pathlib import Path

    if os.geteuid() == 0:
        return Path(os.environ.get("SANDBOX_STATE_DIR", "/var/lib/sandbox"))
    return Path.home() / ".cache" / "sandbox"


def staging_dir() -> Path:
    """Where the launcher assembles a run's root: root's /run/sandbox/stage, else the
    runtime directory's ``stage`` (an empty directory, only ever mounted on inside the
    run's own mount namespaces)."""
    from pathlib import Path

    return Path(STAGING) if os.geteuid() == 0 else runtime_dir() / "stage"

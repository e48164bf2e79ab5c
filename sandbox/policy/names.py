"""Name checks that need tables beyond the model: capabilities and syscalls.

Kept out of the pydantic models so the tables load only when a profile is
loaded, and so the error names the file and the bad name.
"""

from __future__ import annotations

from sandbox.caps.names import normalize
from sandbox.errors import PolicyError
from sandbox.policy.model import Policy


def check_names(policy: Policy, source: str) -> None:
    """Raise PolicyError for an unknown capability or syscall name.

    Raises:
        PolicyError: naming the key and the unknown name.
    """
    for key in ("keep", "deny"):
        for name in getattr(policy.capabilities, key):
            try:
                normalize(name)
            except KeyError:
                raise PolicyError(
                    f"{source}: capabilities.{key}: unknown capability {name!r}"
                ) from None
    try:
        from sandbox.seccomp.groups import check_names as check_seccomp
    except ImportError:  # pragma: no cover - the seccomp package is part of the tree
        return
    check_seccomp(policy.seccomp, source)

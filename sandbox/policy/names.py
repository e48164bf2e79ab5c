"""Name checks that need tables beyond the model: capabilities and syscalls.

Kept out of the pydantic models so the tables load only when a profile is
loaded, and so the error names the file and the bad name.
"""

from __future__ import annotations

import difflib

from sandbox.caps.names import CAPS, normalize
from sandbox.errors import PolicyError
from sandbox.policy.frozen import Policy
from sandbox.policy.source import locate


def _cap_hint(name: str) -> str:
    wanted = name.strip().upper()
    wanted = wanted if wanted.startswith("CAP_") else "CAP_" + wanted
    close = difflib.get_close_matches(wanted, sorted(CAPS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
                    f"{locate(source, name)}: capabilities.{key}: unknown capability {name!r}"
                    f"{_cap_hint(name)}"
                ) from None
    try:
        from sandbox.seccomp.groups import check_names as check_seccomp
    except ImportError:  # pragma: no cover - the seccomp package is part of the tree
        return
    check_seccomp(policy.seccomp, source)

"""Verify before enforce (STYLE B9): compile checks, BPF simulation, lint.

Public API (imported lazily, so ``import sandbox.verify`` costs nothing):

- ``check(policy, host) -> Report``: the full, uncached verification;
- ``cached_check(policy, host, *, seccomp=, landlock=) -> Report``: the run
  path's form, which raises ``VerificationError`` on a blocking finding and
  costs a lookup for an already verified run;
- ``Report``, ``LayerResult``, ``Finding``.

Modules: ``core`` (check), ``cache`` (cached_check), ``compile``,
``simulate``, ``lint``, ``mountflags``, ``report``, ``findings``, and for the
CLI ``explain``, ``diff``, ``oci``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Finding", "LayerResult", "Report", "cached_check", "check"]

_WHERE = {
    "check": "sandbox.verify.core",
    "cached_check": "sandbox.verify.cache",
    "Report": "sandbox.verify.report",
    "LayerResult": "sandbox.verify.report",
    "Finding": "sandbox.verify.findings",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'sandbox.verify' has no attribute {name!r}")

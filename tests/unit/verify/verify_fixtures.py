"""Helpers for the verify tests: strict's policy with changes, lint contexts, rendered text."""

from __future__ import annotations

import copy
import functools
from typing import Any

from sandbox.apparmor.parser import ParserFeatures
from sandbox.apparmor.render import prepare as render
from sandbox.fs.ops import plan_mounts
from sandbox.policy.load import load_profile
from sandbox.policy.model import Policy
from sandbox.seccomp.groups import resolve
from sandbox.verify import lint
from sandbox.verify.mountflags import MountFlags, trace

AA3 = ParserFeatures(version=(3, 0, 8), abi="3.0", rules=frozenset())


@functools.cache
def strict_raw() -> dict[str, Any]:
    return load_profile("strict").policy.model_dump(mode="json")


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)  # lists replace, unlike profile merging
    return out


def policy(**changes: Any) -> Policy:
    """strict's resolved policy with ``changes`` (tables merge, lists replace)."""
    return Policy.model_validate(_merge(strict_raw(), changes))


def apparmor_text(pol: Policy) -> str:
    return render(pol, program="/box/prog", interpreter=None, parser_features=AA3).text


def mounts(pol: Policy) -> tuple[MountFlags, ...]:
    return trace(plan_mounts(pol.filesystem, "/", None))


def ctx(
    pol: Policy,
    *,
    strict: bool = True,
    text: str | None = None,
    mounts_: tuple[MountFlags, ...] | None = None,
) -> lint.LintContext:
    """A lint context with the real rendered text and mounts unless given."""
    if text is None and not pol.apparmor.extra_rules:
        text = apparmor_text(pol)
    return lint.context(
        pol,
        resolve(pol.seccomp),
        strict=strict,
        apparmor_text=text,
        mounts=mounts(pol) if mounts_ is None else mounts_,
    )

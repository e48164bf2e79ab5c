"""Generate sandbox/policy/frozen.py from the policy models (a developer tool, not shipped).

    .venv/bin/python tools/gen_frozen.py --write   # rewrite sandbox/policy/frozen.py

frozen.py holds the pydantic-free snapshot types: the one policy type below
``sandbox.policy``. A test fails when the committed file differs from what
this renders.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sandbox.policy.model import Policy

ROOT = Path(__file__).resolve().parents[1]

FROZEN_HEADER = '''# ruff: noqa: E501 - generated lines
"""Pydantic-free snapshots of the policy models: GENERATED, do not edit.

Made by ``tools/gen_frozen.py --write`` from ``sandbox/policy/model.py``.
Pydantic validates at load (``sandbox.policy.load``); below that, every
policy is one of these frozen dataclasses: the run path, the concerns,
verification. The CLI's profile cache rebuilds them from JSON
(``sandbox.codec.from_data``) without importing pydantic. They carry the
same fields, and ``sandbox.policy.snapshot.Snapshot`` gives them the pydantic
methods they need, with the same results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sandbox.policy.snapshot import Snapshot, env_resolved
'''

# Methods of the models that the snapshots need too (shared implementations).
_METHODS = {
    "Env": [
        "    def resolved(self) -> dict[str, str]:",
        '        """The environment the payload gets."""',
        "        return env_resolved(self)",
    ]
}


def _py_type(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _py_type(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return "Literal[" + ", ".join(json.dumps(a) for a in typing.get_args(tp)) + "]"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_py_type(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{_py_type(typing.get_args(tp)[0])}]"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"dict[{_py_type(k)}, {_py_type(v)}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp))


def render_frozen() -> str:
    """The text of sandbox/policy/frozen.py."""
    order: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        for f in model.model_fields.values():
            for t in (f.annotation, *typing.get_args(f.annotation)):
                if isinstance(t, type) and issubclass(t, BaseModel) and t not in order:
                    visit(t)
        if model not in order:
            order.append(model)

    visit(Policy)
    out = [FROZEN_HEADER.rstrip("\n") + "\n"]
    for model in order:
        out.append(f"\n@dataclass(frozen=True)\nclass {model.__name__}(Snapshot):")
        out.append(f'    """Snapshot of ``sandbox.policy.model.{model.__name__}``."""\n')
        for name, f in model.model_fields.items():
            out.append(f"    {name}: {_py_type(f.annotation)}")
        if model.__name__ in _METHODS:
            out.append("")
            out.extend(_METHODS[model.__name__])
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print frozen.py, or rewrite it with ``--write``."""
    args = sys.argv[1:] if argv is None else argv
    text = render_frozen()
    if "--write" in args:
        (ROOT / "sandbox" / "policy" / "frozen.py").write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate profiles/SCHEMA.md from the policy models (``python -m sandbox.policy.schema``).

The models are the single source of truth; a test fails when the committed
SCHEMA.md differs from what this prints.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sandbox.policy.model import Policy

HEADER = """# Profile schema

Generated from `sandbox/policy/model.py` by `python -m sandbox.policy.schema`;
do not edit. Unknown keys are errors. Sizes are byte counts or strings with
`K`, `M`, `G`, `T`; every limit must be positive (leave a key out for no
limit). `extends = "name"` (or a list) merges other profiles first: tables
merge, scalars override, lists are sets that accumulate, and `deny` lists
always win. `replace = ["seccomp.groups", ...]` names lists of the profile
that replace the inherited ones instead (never a `deny` list), so a profile
such as a learned one can state exactly what it allows.
"""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return " \\| ".join(f'`"{a}"`' for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"table {_type_name(k)} -> {_type_name(v)}"
    if tp is type(None):
        return "none"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return f"table ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _default(f: FieldInfo) -> str:
    if f.default_factory is not None:
        value = f.default_factory()  # type: ignore[call-arg]
    elif f.is_required():
        return "required"
    else:
        value = f.default
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{value!r}`".replace("|", "\\|")


def _size_hint(name: str, f: FieldInfo) -> str:
    meta = " ".join(repr(m) for m in f.metadata)
    return " (size)" if "parse_size" in meta else ""


def render() -> str:
    """The whole SCHEMA.md text."""
    out = [HEADER]
    seen: list[type[BaseModel]] = []

    def section(model: type[BaseModel], key: str) -> None:
        if model in seen:
            return
        seen.append(model)
        out.append(f"\n## `{key}`\n\n{(model.__doc__ or '').strip()}\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        nested: list[tuple[type[BaseModel], str]] = []
        for name, f in model.model_fields.items():
            tp = f.annotation
            out.append(
                f"| `{name}` | {_type_name(tp)}{_size_hint(name, f)} | {_default(f)} | "
                f"{(f.description or '').replace('|', '/')} |"
            )
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                nested.append((tp, name if key == "(top level)" else f"{key}.{name}"))
        for sub, subkey in nested:
            section(sub, f"[{subkey}]" if not subkey.startswith("[") else subkey)

    section(Policy, "(top level)")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- frozen ----
FROZEN_HEADER = '''# ruff: noqa: E501 - generated lines
"""Pydantic-free snapshots of the policy models: GENERATED, do not edit.

Made by ``python -m sandbox.policy.schema --write`` from
``sandbox/policy/model.py``. The CLI's profile cache rebuilds a validated
policy from its JSON as these frozen dataclasses (``sandbox.codec.from_data``),
so a cached ``sandbox exec`` never imports pydantic. They carry the same
fields, and ``sandbox.policy.snapshot.Snapshot`` gives them the pydantic
methods the run path uses, with the same results.
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


def main() -> None:
    """Print SCHEMA.md, or write it and sandbox/policy/frozen.py with ``--write``."""
    text = render()
    if "--write" in sys.argv:
        path = Path(__file__).resolve().parents[2] / "profiles" / "SCHEMA.md"
        path.write_text(text)
        Path(__file__).with_name("frozen.py").write_text(render_frozen())
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

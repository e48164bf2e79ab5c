"""Generate profiles/SCHEMA.md from the policy models (a developer tool, not shipped).

    .venv/bin/python tools/gen_schema_md.py           # print it
    .venv/bin/python tools/gen_schema_md.py --write   # rewrite profiles/SCHEMA.md

The models are the single source of truth; a test fails when the committed
SCHEMA.md differs from what this prints.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sandbox.policy.model import Policy

HEADER = """# Profile schema

Generated from `sandbox/policy/model.py` by `tools/gen_schema_md.py`;
do not edit. Unknown keys are errors. Sizes are byte counts or strings with
`K`, `M`, `G`, `T`; every limit must be positive (leave a key out for no
limit). `extends = "name"` (or a list) merges other profiles first: tables
merge, scalars override, lists are sets that accumulate, and `deny` lists
always win. A profile without `extends` starts from the defaults below, so a
list it sets extends the default list (`read_paths = ["/data"]` keeps `/usr`,
`/etc`, ...). `replace = ["seccomp.groups", ...]` names lists of the profile
(or of the library's `overrides`) that replace the inherited ones instead
(never a `deny` list), so a profile such as a learned one can state exactly
what it allows. Arrays of tables (`[[filesystem.binds]]`,
`[[filesystem.tmpfs]]`, `[[seccomp.rules]]`) have their keys listed after
their table.
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
            where = name if key == "(top level)" else f"{key.strip('[]')}.{name}"
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                nested.append((tp, f"[{where}]"))
            elif typing.get_origin(tp) is list:
                (item,) = typing.get_args(tp)
                if isinstance(item, type) and issubclass(item, BaseModel):
                    nested.append((item, f"[[{where}]]"))  # an array of tables
        for sub, subkey in nested:
            section(sub, subkey)

    section(Policy, "(top level)")
    return "\n".join(out) + "\n"


ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Print SCHEMA.md, or rewrite it with ``--write``."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--write" in args:
        (ROOT / "profiles" / "SCHEMA.md").write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

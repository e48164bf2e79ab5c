"""Write a policy (or any plain table) as profile TOML: ``sandbox explain`` and ``seccomp import``.

Pure. The stdlib reads TOML (``tomllib``) but does not write it; profiles
need only tables, arrays of tables, strings, integers, floats, booleans and
arrays of those, so this small writer is enough. ``tomllib.loads(to_toml(x))
== x`` for such data, ``None`` values left out (TOML has no null; every
optional policy key defaults to None). A property test holds it to that.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sandbox.policy.frozen import Policy

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _string(s: str) -> str:
    out = ['"']
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")  # TOML forbids raw control characters
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def comment_text(text: str) -> str:
    """``text`` made safe for one ``#`` comment line: every control character escaped.

    A newline would end the comment and make the rest TOML (issue 13: a
    syscall name from an imported JSON bound the host's /etc); other
    control characters are not allowed in a TOML comment at all. Callers
    should still quote untrusted text; this is the writer's own guarantee.
    """
    return "".join(c if c == "\t" or c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(c: str) -> str:
    """``\\xNN`` / ``\\uNNNN`` for one character no comment should hold raw (controls, NEL,
    line and paragraph separators: a reader other than TOML may break the line there)."""
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else _string(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        text = repr(v)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        pairs = (f"{_key(k)} = {_value(x)}" for k, x in v.items() if x is not None)
        return "{" + ", ".join(pairs) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _emit(table: Mapping[str, Any], path: tuple[str, ...], out: list[str]) -> None:
    scalars = [
        (k, v)
        for k, v in table.items()
        if v is not None and not isinstance(v, Mapping) and not _is_table_array(v)
    ]
    for k, v in scalars:
        out.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        here = (*path, _key(k))
        if isinstance(v, Mapping):
            out.append("")
            out.append(f"[{'.'.join(here)}]")
            _emit(v, here, out)
        elif _is_table_array(v):
            for item in v:
                out.append("")
                out.append(f"[[{'.'.join(here)}]]")
                _emit(item, here, out)


def to_toml(table: Mapping[str, Any], header: Sequence[str] = ()) -> str:
    """TOML text for a plain table; ``header`` lines become leading comments (escaped).

    Raises:
        TypeError: for a value TOML cannot hold.
    """
    out = [f"# {comment_text(line)}".rstrip() for line in header]
    if out:
        out.append("")
    _emit(table, (), out)
    text = "\n".join(out).strip("\n") + "\n"
    return re.sub(r"\n{3,}", "\n\n", text)


def policy_toml(policy: Policy, header: Sequence[str] = ()) -> str:
    """The resolved policy as a profile a loader reads back to the same policy."""
    return to_toml(policy.model_dump(mode="json"), header)

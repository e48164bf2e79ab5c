"""JSON codec for frozen dataclasses (plans, artifacts, results).

Plans cross a process boundary (supervisor -> fork server) as JSON so the
receiver can check they are well formed, and so a non-Python launcher could
read them later. Decoding is driven by the dataclasses' type hints: tuples,
bytes (base64), nested dataclasses, ``X | None``, dicts and Literal values.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any, TypeVar, get_args, get_origin

T = TypeVar("T")


def to_data(obj: Any) -> Any:
    """Plain JSON-able data for a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, bytes):
        return {"$b64": base64.b64encode(obj).decode()}
    if isinstance(obj, tuple | list | frozenset | set):
        items = sorted(obj) if isinstance(obj, frozenset | set) else obj
        return [to_data(x) for x in items]
    if isinstance(obj, dict):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def dumps(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces) of a dataclass tree."""
    return json.dumps(to_data(obj), sort_keys=True, separators=(",", ":"))


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`to_data` output.

    Raises:
        ValueError: when the data does not fit the type.
    """
    origin = get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return from_data(a, data)
            except (ValueError, TypeError, KeyError) as e:
                errors.append(str(e))
        raise ValueError(f"no member of {tp} fits {data!r}: {errors}")
    if origin is typing.Literal:
        if data not in get_args(tp):
            raise ValueError(f"{data!r} is not one of {get_args(tp)}")
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ValueError(f"{tp.__name__}: expected an object, got {type(data).__name__}")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        extra = set(data) - names
        if extra:
            raise ValueError(f"{tp.__name__}: unknown fields {sorted(extra)}")
        kwargs = {k: from_data(hints[k], v) for k, v in data.items()}
        return tp(**kwargs)
    if tp is bytes:
        if not (isinstance(data, dict) and "$b64" in data):
            raise ValueError("expected base64 bytes")
        return base64.b64decode(data["$b64"])
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(data, list):
            raise ValueError(f"expected a list for {tp}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], x) for x in data)
        if len(args) != len(data):
            raise ValueError(f"expected {len(args)} items for {tp}")
        return tuple(from_data(a, x) for a, x in zip(args, data, strict=True))
    if origin in (frozenset, set):
        (arg,) = get_args(tp)
        return frozenset(from_data(arg, x) for x in data)
    if origin is list:
        (arg,) = get_args(tp)
        return [from_data(arg, x) for x in data]
    if origin is dict:
        kt, vt = get_args(tp)
        return {from_data(kt, k): from_data(vt, v) for k, v in data.items()}
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if isinstance(tp, type) and isinstance(data, tp) and not (tp is int and isinstance(data, bool)):
        return data
    raise ValueError(f"expected {getattr(tp, '__name__', tp)}, got {data!r}")


def loads(tp: type[T], text: str | bytes) -> T:
    """Parse JSON text into a dataclass of type ``tp``."""
    return typing.cast(T, from_data(tp, json.loads(text)))

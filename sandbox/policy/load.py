"""Load profile files (TOML) into a resolved :class:`Policy`.

Resolution rules, applied on the raw tables before validation:

- ``extends = "base"`` (or a list) merges the named profiles first, in order;
  a name is a shipped profile, a path is relative to the extending file
  (never to the working directory);
- tables merge key by key, scalars in the child override the parent;
- lists are sets: the child's items are added to the parent's (``rootfs`` is the
  one ordered list and is replaced instead);
- ``seccomp.deny`` and ``capabilities.deny`` accumulate like every list and are
  subtracted when artifacts are built, so no child can re-allow what an
  ancestor denied;
- a profile without ``extends`` starts from the models' defaults, so a list it
  sets (``filesystem.read_paths = ["/opt/x"]``) *extends* the default list
  (``/usr``, ``/etc``, ...) like any child layer: adding one path never
  removes the defaults (issue 15 item 4). Replacing is explicit:
- ``replace = ["seccomp.groups", ...]`` names lists of this profile that
  replace the inherited ones instead of adding to them (a learned profile
  states exactly what it allows). A child could always add items, so
  replacing can only narrow a list, except a deny list, which cannot be named;
- command-line overrides are one more child layer, so they are part of the
  policy digest;
- ``network.tcp_ports`` implies the ``sockets_tcp`` syscall group in place of
  ``sockets_local`` (inet sockets; Landlock keeps other ports closed).
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from sandbox import codec
from sandbox.errors import PolicyError
from sandbox.policy import frozen
from sandbox.policy.model import Policy
from sandbox.policy.profile import (  # noqa: F401 - the loader's public names
    PROFILES_DIR,
    LoadedProfile,
    find_profile,
    policy_digest,
)
from sandbox.policy.source import line_of_key, locate

_REPLACE_LISTS = {("filesystem", "rootfs")}
# Lists a profile may not replace: dropping an inherited deny would widen it.
_NEVER_REPLACED = {"seccomp.deny", "capabilities.deny"}
_MAX_DEPTH = 16
# How deep a profile's tables and arrays may nest. The deepest real key is
# filesystem.tmpfs[n].size (4); tomllib, merge and pydantic all recurse, and a
# few thousand levels raised RecursionError (a traceback, exit 1) from each.
MAX_NESTING = 32


def merge(
    parent: Mapping[str, Any],
    child: Mapping[str, Any],
    where: tuple[str, ...] = (),
    replace: frozenset[tuple[str, ...]] = frozenset(),
) -> dict[str, Any]:
    """Merge two raw profile tables with the rules in the module docstring.

    ``replace``: key paths whose lists in ``child`` replace the parent's.
    """
    out = copy.deepcopy(dict(parent))
    for key, value in child.items():
        here = (*where, key)
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = merge(old, value, here, replace)
        elif (
            isinstance(old, list)
            and isinstance(value, list)
            and here not in _REPLACE_LISTS
            and here not in replace
        ):
            merged = list(old)
            for item in value:
                if item not in merged:
                    merged.append(item)
            out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    return out


def nesting(value: object) -> int:
    """How deep tables and arrays nest in ``value`` (iterative: any depth is measured)."""
    deepest = 0
    todo: list[tuple[object, int]] = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break  # enough to refuse; no need to walk the rest
        if isinstance(node, Mapping):
            todo += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list | tuple):
            todo += [(v, depth + 1) for v in node]
    return deepest


def check_nesting(value: object, where: str) -> None:
    """Refuse tables nested deeper than any profile needs, before anything recurses.

    Raises:
        PolicyError: naming ``where``.
    """
    if nesting(value) > MAX_NESTING:
        raise PolicyError(f"{where}: tables or arrays nest deeper than {MAX_NESTING} levels")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise PolicyError(
            f"{path}: tables or arrays nest deeper than {MAX_NESTING} levels"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{path}: malformed TOML: {e}") from e
    except UnicodeDecodeError as e:  # found by fuzz/atheris_profile_load.py
        raise PolicyError(f"{path}: not UTF-8 text (byte {e.start}): TOML must be UTF-8") from e
    except OSError as e:
        raise PolicyError(f"{path}: cannot read profile: {e.strerror}") from e
    check_nesting(raw, str(path))
    return raw


def _resolve(
    path: Path, depth: int, seen: tuple[Path, ...]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    if depth > _MAX_DEPTH or path.resolve() in seen:
        raise PolicyError(f"{path}: 'extends' loops or nests deeper than {_MAX_DEPTH}")
    raw = _read_toml(path)
    replace = _replace_keys(path, raw.pop("replace", []))
    parents = raw.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise PolicyError(f"{path}: 'extends' must be a profile name or a list of names")
    merged: dict[str, Any] = {}
    chain: tuple[str, ...] = ()
    for parent in parents:
        try:
            ppath = find_profile(parent_ref(parent, path))
        except PolicyError as e:
            raise PolicyError(f"{locate(str(path), parent)}: extends: {e}") from None
        praw, pchain = _resolve(ppath, depth + 1, (*seen, path.resolve()))
        praw.pop("name", None)
        praw.pop("description", None)
        merged = merge(merged, praw)
        chain += pchain
    for key in sorted(replace):
        node: Any = raw
        for part in key:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, list):
            raise PolicyError(f"{path}: replace: {'.'.join(key)} is not a list")
    raw.setdefault("name", path.stem)
    if not parents:
        merged = _default_lists()
    return merge(merged, raw, replace=replace), (*chain, str(path))


def parent_ref(parent: str, child: Path) -> str:
    """What ``extends = parent`` in ``child`` names: a shipped profile, or a file.

    A path (with ``/`` or ending in ``.toml``) is relative to the directory of
    the profile that says it, never to the working directory: whoever can
    write files where a judge happens to run must not choose its base
    profile (issue 13). ``sandbox learn`` writes such paths.
    """
    if "/" not in parent and not parent.endswith(".toml"):
        return parent
    ref = Path(parent)
    return str(ref if ref.is_absolute() else child.parent / ref)


def _default_lists() -> dict[str, Any]:
    """The models' non-empty default lists, as the base layer of a profile without
    ``extends`` (see the module docstring: lists extend, ``replace`` replaces)."""
    out: dict[str, Any] = {}
    for section, field in Policy.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, sub in model.model_fields.items():
            value = sub.get_default(call_default_factory=True)
            if isinstance(value, list) and value and (section, key) not in _REPLACE_LISTS:
                out.setdefault(section, {})[key] = value
    return out


def _replace_keys(path: Path, value: object) -> frozenset[tuple[str, ...]]:
    """Validate ``replace``: a list of dotted keys naming lists, never a deny list."""
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise PolicyError(f"{path}: 'replace' must be a list of dotted keys like 'seccomp.groups'")
    for key in value:
        if key in _NEVER_REPLACED:
            raise PolicyError(f"{path}: replace: {key} cannot be replaced (deny lists accumulate)")
        if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", key):
            raise PolicyError(f"{path}: replace: {key!r} is not a dotted key like 'seccomp.groups'")
    return frozenset(tuple(k.split(".")) for k in value)


def _in(tree: Mapping[str, Any] | None, loc: Sequence[str | int]) -> bool:
    node: Any = tree
    for k in loc:
        if (isinstance(node, Mapping) and k in node) or (
            isinstance(node, list) and isinstance(k, int) and k < len(node)
        ):
            node = node[k]  # type: ignore[index]
        else:
            return False
    return tree is not None


def format_validation_error(
    err: ValidationError, path: Path | None, overrides: Mapping[str, Any] | None = None
) -> str:
    """One line per problem: ``file:line: key.path: message`` (or ``command line: ...``)."""
    out = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        prefix = ""
        if _in(overrides, e["loc"]):
            prefix = "command line: "
        elif path is not None:
            line = line_of_key(path, e["loc"])
            prefix = f"{path}:{line}: " if line else f"{path}: "
        out.append(f"{prefix}{loc}: {msg}")
    return "; ".join(out)


def validate(
    raw: Mapping[str, Any], path: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Policy:
    """Validate a raw (merged) table into a Policy.

    Raises:
        PolicyError: naming each bad key, with file and line when known.
    """
    check_nesting(raw, str(path) if path is not None else "policy")
    try:
        return Policy.model_validate(dict(raw))
    except ValidationError as e:
        raise PolicyError(format_validation_error(e, path, overrides), errors=e.errors()) from e


def load_profile(name_or_path: str, overrides: Mapping[str, Any] | None = None) -> LoadedProfile:
    """Load, resolve ``extends``, apply overrides and validate a profile.

    Raises:
        PolicyError: for a missing or malformed profile, or an invalid key.
    """
    path = find_profile(name_or_path)
    raw, chain = _resolve(path, 0, ())
    if overrides:
        check_nesting(overrides, "command line")
        raw = _apply(raw, overrides, path)
    policy = snapshot(validate(implied(raw), path, overrides))
    from sandbox.policy.names import check_names  # late: keeps the error path light

    check_names(policy, str(path))
    return LoadedProfile(policy=policy, source=str(path), chain=chain)


def implied(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What a resolved profile implies: ``network.tcp_ports`` needs inet sockets, so the
    ``sockets_tcp`` group takes the place of ``sockets_local`` (Landlock keeps every
    port but the listed ones closed)."""
    out = dict(raw)
    net, sec = out.get("network"), out.get("seccomp")
    if isinstance(net, Mapping) and net.get("tcp_ports") and isinstance(sec, Mapping):
        groups = sec.get("groups")
        if isinstance(groups, list) and "sockets_local" in groups:
            swapped = [g for g in groups if g != "sockets_local"]
            if "sockets_tcp" not in swapped:
                swapped.append("sockets_tcp")
            out["seccomp"] = {**sec, "groups": swapped}
    return out


def _apply(raw: Mapping[str, Any], overrides: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """Overrides as one more child layer; their own ``replace`` list replaces lists."""
    over = dict(overrides)
    replace = _replace_keys(path, over.pop("replace", []))
    return merge(raw, over, replace=replace)


def with_overrides(profile: LoadedProfile, overrides: Mapping[str, Any]) -> LoadedProfile:
    """An already loaded profile with ``overrides`` applied as one more layer.

    For callers that hold a :class:`LoadedProfile` and still pass limits or
    an environment (``Sandbox(loaded).run(limits=...)``): nothing a caller
    passes is dropped (issue 15 item 3). The digest covers the overrides.

    Raises:
        PolicyError: an override that does not validate.
    """
    if not overrides:
        return profile
    source = Path(profile.source)
    raw = _apply(dump_policy(profile), overrides, source)
    policy = snapshot(validate(implied(raw), source, overrides))
    from sandbox.policy.names import check_names

    check_names(policy, profile.source)
    return LoadedProfile(policy=policy, source=profile.source, chain=profile.chain)


def dump_policy(profile: LoadedProfile) -> dict[str, Any]:
    """The resolved policy of a loaded profile as raw profile tables."""
    from sandbox.policy.profile import dump

    return dict(dump(profile.policy))


def snapshot(policy: Policy) -> frozen.Policy:
    """The validated policy as frozen data: the one policy type below ``sandbox.policy``."""
    return codec.from_data(frozen.Policy, policy.model_dump(mode="json"))  # type: ignore[no-any-return]

"""Write a learned profile: TOML that extends the base, every rule commented (pure).

The profile ``extends`` the base and ``replace``s the lists it learns (syscall
groups and allow-list, argument rules, read/list/exec paths, kept
capabilities), so it states exactly what the program may do, while the base
still decides everything learning does not touch and its ``deny`` lists keep
accumulating. Each rule says why it is there and which runs needed it; the
header says how the profile was made, what was refused, and whether the
final enforced runs behaved identically. What ``--minimize`` removed is
listed in a machine-readable comment block (``# removed: <unit>``), which
``units_of`` reads back for the re-learning comparison.

Strings from the payload (paths, addresses) are escaped for TOML and for
comments: a path holding a newline cannot add a line to the profile.
"""

from __future__ import annotations

import errno as _errno
import re
import tomllib
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from sandbox.learn.record import TRACKED
from sandbox.learn.rules import Derived, Unit, describe_value, rule_for

REPLACED = (
    "seccomp.groups",
    "seccomp.allow",
    "seccomp.rules",
    "filesystem.read_paths",
    "filesystem.list_paths",
    "filesystem.exec_paths",
    "capabilities.keep",
    "network.tcp_ports",
)
REMOVED_PREFIX = "# removed: "


@dataclass
class Meta:
    """What the header says about how the profile was made."""

    name: str
    extends: str
    base_name: str
    command: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    program: list[str] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    description: str = ""
    removed: tuple[Unit, ...] = ()
    minimize_runs: int | None = None
    refused: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    # TCP ports the program bound or connected to (network.tcp_ports, with why)
    tcp_ports: dict[int, str] = field(default_factory=dict)
    caps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def toml_string(text: str) -> str:
    """A TOML basic string; quotes, backslashes and control characters escaped."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def comment(text: str, limit: int = 160) -> str:
    """Text safe inside a ``#`` comment: one line, control characters replaced."""
    clean = "".join("?" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _errname(err: int) -> str:
    return _errno.errorcode.get(err, f"E{err}")


def _list(key: str, items: list[tuple[str, str]], indent: str = "") -> list[str]:
    if not items:
        return [f"{key} = []"]
    out = [f"{key} = ["]
    width = max(len(toml_string(v)) for v, _ in items) + 1
    for value, why in items:
        text = f"{indent}    {toml_string(value) + ',':<{width}}"
        out.append(f"{text}  # {comment(why)}" if why else text.rstrip())
    out.append("]")
    return out


def _header(meta: Meta) -> list[str]:
    out = [
        f"# {comment(meta.name)}: learned by `sandbox learn` -- do not widen by hand;"
        " re-learn instead.",
        f"# Command: {comment(' '.join(meta.command), 300)}",
        f"# Base: {comment(meta.base_name)} (extended; what it denies stays denied).",
    ]
    if meta.files:
        out.append(f"# Files: {comment(', '.join(meta.files), 300)}")
    if meta.inputs:
        runs = ", ".join(f"run {i} <- {comment(x, 60)}" for i, x in enumerate(meta.inputs, 1))
        out.append(f"# Inputs: {runs}")
    out += [f"# {comment(line, 300)}" for line in meta.program]
    out += [f"# {comment(line, 300)}" for line in meta.status]
    out.append(
        "# Capabilities cannot be seen by seccomp: they are inferred from syscalls the kernel "
        "refuses with EPERM without one."
    )
    out += [f"#   {comment(line, 300)}" for line in meta.caps] or ["#   none inferred."]
    if meta.refused:
        out.append("# Refused while learning, as the base refuses them (never learned):")
        out += [f"#   {comment(line, 300)}" for line in meta.refused]
    if meta.network:
        out.append(
            "# Network seen (the base's network mode decides; TCP ports bound or connected "
            "to become network.tcp_ports):"
        )
        out += [f"#   {comment(line, 300)}" for line in meta.network]
    out += [f"# Note: {comment(line, 300)}" for line in meta.notes]
    return out


def render(d: Derived, kept: Collection[Unit], meta: Meta) -> str:
    """The profile text for the units in ``kept`` (a subset of ``d.units``)."""
    keep = set(kept)
    lines = _header(meta)
    lines += [
        "",
        f"extends = {toml_string(meta.extends)}",
        "# The lists below replace the base's: this profile states all it allows.",
        "replace = [" + ", ".join(toml_string(k) for k in REPLACED) + "]",
        f"name = {toml_string(meta.name)}",
        f"description = {toml_string(meta.description)}",
        "",
        "[seccomp]",
        "groups = []",
    ]
    allow = [
        (n, "the launcher's last steps: it reports its listener, then execs") for n in d.launcher
    ]
    allow += [(u.key, d.why.get(u, "")) for u in d.units if u.kind == "syscall" and u in keep]
    lines += _list("allow", allow)
    errno = dict(d.errno)
    rules: list[list[str]] = []
    for name, otherwise in sorted(d.otherwise.items()):
        values = [u for u in d.units if u.kind == "value" and u.key == name and u in keep]
        pair = rule_for(name, [u.value for u in values], otherwise)
        if pair is None:
            if otherwise != "default":
                errno[name] = (otherwise, f"no {name} argument value was needed: all answered")
            continue
        arg, mask = TRACKED[name]
        body = [
            "",
            "[[seccomp.rules]]",
            f"# {name}: only the argument values the program used; others get {pair[1]}.",
            f"syscall = {toml_string(name)}",
            f"arg = {arg}",
            f"mask = {mask:#x}",
        ]
        body.append("values = [")
        width = max(len(f"{u.value:#x}") for u in values) + 1
        for u in values:
            why = comment(d.why.get(u, describe_value(name, u.value)))
            body.append(f"    {f'{u.value:#x},':<{width}}  # {why}")
        body.append("]")
        body += [f'match = "{pair[0]}"', f"otherwise = {toml_string(pair[1])}"]
        rules.append(body)
    if errno:
        lines += ["", "[seccomp.errno]"]
        width = max(len(f"{n} = {toml_string(e)}") for n, (e, _) in errno.items())
        lines += [
            f"{f'{name} = {toml_string(err)}':<{width}}  # {comment(why)}"
            for name, (err, why) in sorted(errno.items())
        ]
    for body in rules:
        lines += body
    lines += ["", "[filesystem]"]
    for key, kind in (("read_paths", "read"), ("list_paths", "list"), ("exec_paths", "exec")):
        items = [(u.key, d.why.get(u, "")) for u in d.units if u.kind == kind and u in keep]
        lines += _list(key, items)
    lines += ["", "[network]"]
    if meta.tcp_ports:
        lines.append("tcp_ports = [")
        lines += [f"    {p},  # {comment(why)}" for p, why in sorted(meta.tcp_ports.items())]
        lines.append("]")
    else:
        lines.append("tcp_ports = []")
    lines += ["", "[capabilities]"]
    lines += _list(
        "keep", [(u.key, d.why.get(u, "")) for u in d.units if u.kind == "cap" and u in keep]
    )
    if meta.minimize_runs is not None:
        lines += [
            "",
            f"# --minimize removed {len(meta.removed)} of {len(d.units)} rules in "
            f"{meta.minimize_runs} runs: no input's exit status or output changed without them.",
        ]
        lines += [f"{REMOVED_PREFIX}{comment(u.label(), 400)}" for u in meta.removed]
    return "\n".join(lines) + "\n"


def units_of(text: str) -> tuple[set[Unit], set[Unit]]:
    """(granted, removed) units of a learned profile's text, for comparisons.

    Raises:
        tomllib.TOMLDecodeError: for text that is not TOML.
    """
    raw = tomllib.loads(text)
    sec = raw.get("seccomp", {})
    fs = raw.get("filesystem", {})
    granted = {Unit("syscall", n) for n in sec.get("allow", [])}
    for rule in sec.get("rules", []):
        granted |= {Unit("value", rule["syscall"], v) for v in rule["values"]}
    for key, kind in (("read_paths", "read"), ("list_paths", "list"), ("exec_paths", "exec")):
        granted |= {Unit(kind, p) for p in fs.get(key, [])}  # type: ignore[arg-type]
    granted |= {Unit("cap", c) for c in raw.get("capabilities", {}).get("keep", [])}
    removed = {
        Unit.parse(line[len(REMOVED_PREFIX) :].strip())
        for line in text.splitlines()
        if line.startswith(REMOVED_PREFIX)
    }
    return granted, removed


def refusal_lines(refused: Iterable[tuple[str, str, str]]) -> list[str]:
    """``syscall: reason (runs)`` lines for the header."""
    return [f"{name}: {reason} ({runs})" for name, reason, runs in refused]


_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]")


def profile_name(stem: str) -> str:
    """A valid profile name from a file name."""
    return (_NAME_OK.sub("-", stem) or "learned")[:64]


__all__ = [
    "REMOVED_PREFIX",
    "REPLACED",
    "Meta",
    "comment",
    "profile_name",
    "render",
    "toml_string",
    "units_of",
]

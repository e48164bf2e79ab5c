"""Render the per-program AppArmor profile for a policy.

Pure: runs in the supervisor before fork, reads nothing from the host (the
parser's abilities come in as :class:`ParserFeatures`), needs no capability.

The profile confines the payload *inside* its container: every path is the one
the payload sees after ``pivot_root`` in its own mount namespace (verified in
the kvm-run guest: AppArmor resolves paths against the namespace's root, so a
rule for ``/etc/ok`` matches the container's ``/etc/ok``, not the host's).

What the profile grants, and nothing else (AppArmor denies what no rule allows):

- the program and its interpreter: ``mrix`` (run under this same profile);
- ``filesystem.exec_paths``: ``mix`` (mmap and exec under this profile; never
  ``ux``/``px``/``cx``, so no exec escapes the profile);
- ``filesystem.map_paths``: ``mr`` (shared libraries: mapped as code, never
  executed);
- ``filesystem.read_paths``: ``r``; ``filesystem.list_paths``: ``r`` on the
  directory itself; ``filesystem.writable``: ``rwlk``;
- the minimal ``/dev`` nodes; kept capabilities only; unix/inet sockets only
  for ``network.mode = "loopback"``; signals inside the profile and from the
  unconfined launcher/supervisor;
- explicit ``deny`` rules (they win over any allow, ``extra_rules`` included)
  for ptrace, mount, umount, pivot_root, change_profile, raw sockets and, when
  none is kept, every capability.

Also what Landlock grants from the same keys (``landlock.rules._wanted``), so
both file layers decide alike (docs/apparmor-vs-landlock.md): ``r`` on
``exec_paths`` (Landlock's are read+execute), ``filesystem.binds`` ``r``
(``rwlk`` when writable) and ``mix`` when ``exec``, ``filesystem.tmpfs``
``rwlk``.

Profile flags: none (measured in the guest, tests/guest/test_apparmor.py).
``chroot_relative`` is for chroot, not pivot_root. ``mediate_deleted`` is not
needed: a file unlinked while open stays usable. ``attach_disconnected`` is
left out: files opened outside the new root (by the host) are disconnected,
and with the flag their host path would be matched against container rules
(a host file under /tmp/... matched the container's ``/tmp/**``). Without it
they are denied, except that files opened by an unconfined task are
delegated: reads and writes through an inherited fd still work, but
``fstat`` on it fails with EACCES. So the supervisor should hand the payload
pipes (or files opened inside the root) as stdio, and close every other fd.

The profile name is ``sbx_`` + the first 128 bits of the sha256 of the profile
text without the header comments and without the name, so a change in what the
profile says always gives a new name, while policies that differ only in layers
AppArmor does not see (limits, seccomp...) share one loaded profile.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.apparmor.parser import ParserFeatures
from sandbox.caps import names as capnames
from sandbox.errors import ArtifactError
from sandbox.policy.profile import policy_digest

if TYPE_CHECKING:
    from sandbox.policy.frozen import Policy

NAME_PREFIX = "sbx_"
NAME_RE = re.compile(r"^sbx_[0-9a-f]{32}$")
_NAME_HOLE = "@@PROFILE_NAME@@"

# Rules only AppArmor 4 parsers know. Emitted when the parser knows them,
# otherwise left out with the reason (never emitted to fail the load).
_AA4_RULES = {
    "userns": "user namespace creation is mediated from AppArmor 4 on",
    "io_uring": "io_uring is mediated from AppArmor 4 on",
}

# The container's /dev is made of these nodes only (fs plan, B5 step 10).
_DEVICES = (
    ("/dev/null", "rw"),
    ("/dev/zero", "rw"),
    ("/dev/full", "rw"),
    ("/dev/random", "r"),
    ("/dev/urandom", "r"),
)

# Characters with a meaning in AppArmor globs (AARE) or in the rule syntax.
# Each is written with a backslash so a policy path is matched literally.
_AARE_SPECIAL = frozenset('\\*?[]{}^",#@=')


@dataclass(frozen=True, slots=True)
class AppArmorArtifact:
    """A rendered profile: its kernel name, the text to load and its cache key.

    ``skipped_rules`` holds one ``"rule, (reason)"`` string per rule the
    installed parser cannot compile and that was therefore left out.
    """

    name: str
    text: str
    key: str
    skipped_rules: tuple[str, ...]


def quote_path(path: str, what: str = "path") -> str:
    """Quote a path for a rule so that AppArmor matches it literally.

    Raises:
        ArtifactError: for a relative path or one with control characters
            (AppArmor rules are line-oriented and cannot express them safely).
    """
    if not path.startswith("/"):
        raise ArtifactError("apparmor", f"{what} {path!r} must be an absolute path")
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ArtifactError("apparmor", f"{what} {path!r} contains control characters")
    escaped = "".join("\\" + c if c in _AARE_SPECIAL else c for c in path)
    if escaped.endswith("\\\\"):
        # apparmor_parser 3.0's lexer reads '\\"' as an escaped quote and runs
        # on to the next line; a class holding the backslash ends the string.
        escaped = escaped[:-2] + "[\\\\]"
    return f'"{escaped}"'


def _tree(path: str, *, dir_itself: bool = True) -> str:
    """One rule subject for a path, as a file or as a directory with all below it.

    Policy paths name files or trees alike (``/etc/passwd``, ``/usr``), so the
    subject is ``"P{,/,/**}"``: the file P, the directory P/ and everything in
    it (``dir_itself=False`` leaves out ``P/``, for exec rules).
    """
    base = quote_path(path)[1:-1].rstrip("/")
    if not base:
        return '"/{,**}"' if dir_itself else '"/**"'
    return f'"{base}{{,/,/**}}"' if dir_itself else f'"{base}{{,/**}}"'


def _subject(path: str, *, dir_itself: bool = True) -> str:
    """``_glob`` for a path with ``*`` in its last component, else ``_tree``."""
    if "*" in path.rsplit("/", 1)[-1]:
        return _glob(path)
    return _tree(path, dir_itself=dir_itself)


def _glob(path: str) -> str:
    """Rule subject for a ``*`` glob in the last component: the ``*`` stays a glob (it
    matches within the directory, never across ``/``), everything else is literal."""
    quote_path(path.replace("*", "_"), "glob")  # the same checks as any path
    parent, _, pattern = path.rpartition("/")
    escaped = [
        "".join("\\" + c if c in _AARE_SPECIAL else c for c in part)
        for part in (parent + "/", *pattern.split("*"))
    ]
    return f'"{escaped[0]}{"*".join(escaped[1:])}"'


def _dir(path: str) -> str:
    """Rule subject for listing a directory: ``"P/"`` only (``"/"`` for the root)."""
    base = quote_path(path)[1:-1].rstrip("/")
    return f'"{base}/"'


# --- extra_rules: accepted shapes ------------------------------------------
_PERMS = r"[a-zA-Z]+"
_PATH = r'(?:"(?:[^"\\]|\\.)+"|/\S*)'
_FILE_RULE = re.compile(
    rf"^(?:audit\s+)?(?:owner\s+)?(?:file\s+)?(?:(?P<p1>{_PATH})\s+(?P<m1>{_PERMS})"
    rf"|(?P<m2>{_PERMS})\s+(?P<p2>{_PATH}))\s*,$"
)
_DENY_RULE = re.compile(r"^(?:audit\s+)?deny\s+\S.*,$")
_FORBIDDEN_WORDS = re.compile(r"(?:^|[\s(])(?:profile|hat|include|abi|change_profile)\b|->|\^")


def _balanced(rule: str) -> bool:
    """Brackets balance and every comma but the last sits inside () or {}."""
    depth = 0
    for i, c in enumerate(rule):
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
            if depth < 0:
                return False
        elif c == "," and depth == 0 and i != len(rule) - 1:
            return False
    return depth == 0


def check_extra_rule(rule: str) -> str:
    """Accept an ``apparmor.extra_rules`` entry or say why not.

    Allowed: file rules with permissions from ``rwalkm`` plus ``ix``, and any
    ``deny`` rule (a denial can only take permissions away). Everything else
    (capabilities, network, other exec modes, profile syntax) has its own
    policy key or would let the payload out of the profile.

    Raises:
        ArtifactError: naming the rule and the reason.
    """
    r = rule.strip()
    if not r.endswith(","):
        r += ","

    def bad(why: str) -> ArtifactError:
        return ArtifactError("apparmor", f"extra rule {rule!r} refused: {why}")

    if any(ord(c) < 0x20 or c == "\x7f" for c in r) or "#" in r:
        raise bad("control characters and '#' are not allowed")
    if not _balanced(r):
        raise bad("one rule per entry, with balanced brackets")
    if _FORBIDDEN_WORDS.search(r):
        raise bad("profile, hat, include, abi, change_profile and '->' are not allowed")
    if _DENY_RULE.match(r):
        return r
    m = _FILE_RULE.match(r)
    if not m:
        raise bad(
            "only file rules (perms from 'rwalkm' and 'ix') and deny rules may be added; "
            "capabilities and network come from their own policy keys"
        )
    perms = m.group("m1") or m.group("m2")
    if set(perms) & set("uUpPcC") or perms.count("x") != perms.count("ix"):
        raise bad("the only exec mode allowed is 'ix' (no ux/px/cx: no exec leaves the profile)")
    if set(perms) - set("rwalkmix"):
        raise bad("file permissions must come from 'rwalkm' plus 'ix'")
    return r


# --- rendering --------------------------------------------------------------
def _caps(policy: Policy) -> list[str]:
    try:
        denied = {capnames.normalize(c) for c in policy.capabilities.deny}
        kept = sorted({capnames.normalize(c) for c in policy.capabilities.keep} - denied)
    except KeyError as e:
        raise ArtifactError("apparmor", f"unknown capability {e.args[0]!r}") from None
    if not kept:
        return [
            "  # No capability is kept: deny them all (wins over any allow).",
            "  deny capability,",
        ]
    names = " ".join(c.removeprefix("CAP_").lower() for c in kept)
    return [
        "  # Capabilities the policy keeps (capabilities.keep minus deny).",
        f"  capability {names},",
    ]


def _network(policy: Policy) -> list[str]:
    if policy.network.mode == "none":
        return [
            "  # network.mode = none: no socket of any family, unix included.",
            "  deny network,",
        ]
    ports = policy.network.tcp_ports
    tcp = (
        [
            f"  # network.tcp_ports {', '.join(str(p) for p in sorted(set(ports)))}: TCP on lo "
            "(AppArmor names no port: Landlock closes every other one).",
        ]
        if ports
        else []
    )
    return [
        "  # network.mode = loopback: the payload's network namespace has only lo.",
        *tcp,
        "  network unix,",
        "  network inet stream,",
        "  network inet dgram,",
        "  network inet6 stream,",
        "  network inet6 dgram,",
        "  deny network raw,",
        "  deny network packet,",
    ]


def _files(policy: Policy, program: str, interpreter: str | None) -> list[str]:
    fs = policy.filesystem
    out = ["  # The program and its interpreter: ix keeps them in this profile."]
    out.append(f"  {quote_path(program, 'program')} mrix,")
    if interpreter is not None:
        out.append(f"  {quote_path(interpreter, 'interpreter')} mrix,")
    out.append("  # filesystem.exec_paths: mmap PROT_EXEC and exec (ix only).")
    out += [f"  {_subject(p, dir_itself=False)} mix," for p in sorted(set(fs.exec_paths))]
    if fs.map_paths:
        out.append("  # filesystem.map_paths: mmap PROT_EXEC (shared libraries), never exec.")
        out += [f"  {_subject(p, dir_itself=False)} mr," for p in sorted(set(fs.map_paths))]
    out.append("  # filesystem.read_paths: read only.")
    out += [f"  {_subject(p)} r," for p in sorted(set(fs.read_paths))]
    if fs.list_paths:
        out.append("  # filesystem.list_paths: the directory's entries, not its files.")
        out += [f"  {_dir(p)} r," for p in sorted(set(fs.list_paths))]
    out.append("  # filesystem.writable: the only trees the payload may change.")
    out += [f"  {_tree(p)} rwlk," for p in sorted(set(fs.writable))]
    out += _as_landlock(policy)
    out.append("  # The container's minimal /dev.")
    out += [f"  {quote_path(dev)} {perms}," for dev, perms in _DEVICES]
    return out


def _as_landlock(policy: Policy) -> list[str]:
    """Grants Landlock makes from the same keys (landlock.rules._wanted): same decisions."""
    fs = policy.filesystem
    out = ["  # filesystem.exec_paths are readable too (Landlock: read+execute)."]
    out += [f"  {_subject(p)} r," for p in sorted(set(fs.exec_paths))]
    out.append("  # filesystem.binds: r, rwlk when writable; mix when exec.")
    for b in sorted(fs.binds, key=lambda b: (b.target, b.source)):
        out.append(f"  {_tree(b.target)} {'rwlk' if b.writable else 'r'},")
        if b.exec:
            out.append(f"  {_tree(b.target, dir_itself=False)} mix,")
    out.append("  # filesystem.tmpfs: empty trees the payload may change.")
    out += [f"  {_tree(t)} rwlk," for t in sorted({t.target for t in fs.tmpfs})]
    return out


def _optional(
    rules: Iterable[tuple[str, str]], features: ParserFeatures
) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    skipped: list[str] = []
    for kind, rule in rules:
        if kind in features.rules:
            lines.append(f"  {rule}")
        else:
            why = (
                f"{_AA4_RULES[kind]}; apparmor_parser {features.version_text}"
                f" does not know '{kind}'"
            )
            skipped.append(f"{rule} ({why})")
            lines.append(f"  # left out: {rule} ({why})")
    return lines, skipped


def _body(
    policy: Policy, program: str, interpreter: str | None, features: ParserFeatures
) -> tuple[str, tuple[str, ...]]:
    nested = policy.namespaces.nested_userns
    aa4, skipped = _optional(
        [("userns", "userns," if nested else "deny userns,"), ("io_uring", "deny io_uring,")],
        features,
    )
    extra = [check_extra_rule(r) for r in policy.apparmor.extra_rules]
    lines = [
        f"abi <abi/{features.abi}>,",
        "",
        "# No flags. Paths resolve against the payload's root after pivot_root, so",
        "# chroot_relative is not needed. attach_disconnected is left out on purpose:",
        "# objects outside that root (files the host opened) are denied instead of",
        "# being matched against container paths. Deleted files stay usable through",
        "# open fds without mediate_deleted.",
        f"profile {_NAME_HOLE} {{",
        *_files(policy, program, interpreter),
        *(
            ["  # apparmor.extra_rules from the policy."] + [f"  {r}" for r in extra]
            if extra
            else []
        ),
        *_caps(policy),
        *_network(policy),
        "  # Signals: among the payload's own tasks, and from the unconfined launcher",
        "  # and supervisor (without this rule even their SIGKILL fails with EACCES).",
        f"  signal (send, receive) peer={_NAME_HOLE},",
        "  signal (receive) peer=unconfined,",
        "  # Never: debugging other tasks, changing the mount table or the profile.",
        "  deny ptrace,",
        "  deny mount,",
        "  deny umount,",
        "  deny pivot_root,",
        "  deny change_profile,",
        *aa4,
        "}",
        "",
    ]
    return "\n".join(lines), tuple(skipped)


def prepare(
    policy: Policy, *, program: str, interpreter: str | None, parser_features: ParserFeatures
) -> AppArmorArtifact:
    """Render the profile that confines ``program`` under ``policy``.

    Args:
        policy: the resolved policy.
        program: the program's path inside the container (e.g. ``/box/prog``).
        interpreter: the script interpreter's path inside the container, or None.
        parser_features: what the installed ``apparmor_parser`` can compile.

    Raises:
        ArtifactError: for a relative or unprintable path, an unknown
            capability or a refused ``extra_rules`` entry.
    """
    body, skipped = _body(policy, program, interpreter, parser_features)
    key = hashlib.sha256(body.encode()).hexdigest()
    name = NAME_PREFIX + key[:32]
    header = (
        "# Generated by sandbox.apparmor.render: do not edit.\n"
        f"# Policy {policy.name!r}, digest sha256:{policy_digest(policy)}\n"
        f"# Program {program!r}, interpreter {interpreter!r}\n"
        "# Name = sbx_ + sha256 of the text below this header, name left out.\n"
    )
    return AppArmorArtifact(
        name=name, text=header + body.replace(_NAME_HOLE, name), key=key, skipped_rules=skipped
    )

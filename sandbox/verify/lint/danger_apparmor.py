"""Danger rules over the AppArmor text: rules that let the payload out (SBX140-SBX143).

Both the rendered profile and ``apparmor.extra_rules`` are read (the extra
rules even when rendering refused them), comments and deny rules left out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from sandbox.verify.lint.base import Hit, LintContext, rule

_QUALIFIERS = frozenset({"audit", "allow", "owner", "quiet", "priority"})


def strip_comment(line: str) -> str:
    """The line without its ``#`` comment (a ``#`` inside quotes or escaped stays)."""
    quoted = escaped = False
    for i, c in enumerate(line):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == "#" and not quoted:
            return line[:i]
    return line


def apparmor_statements(ctx: LintContext) -> list[str]:
    """Allow-rule statements of the rendered profile and of ``apparmor.extra_rules``.

    Deny rules, comments, the profile header and braces are left out; each
    statement is stripped and ends with ``,``. Extra rules are linted even
    when rendering refused them, so a finding never depends on whether the
    renderer got that far.
    """
    raw = [] if ctx.apparmor_text is None else ctx.apparmor_text.splitlines()
    raw += [r if r.strip().endswith(",") else r + "," for r in ctx.policy.apparmor.extra_rules]
    out = []
    for line in raw:
        s = strip_comment(line).strip()
        if not s or s in ("}", "{") or s.startswith(("abi ", "include ", "profile ")):
            continue
        words = s.split()
        while words and words[0] in _QUALIFIERS:
            words.pop(0)
        if not words or words[0] == "deny":
            continue
        out.append(" ".join(words))
    return sorted(set(out))


def _profile_flags(ctx: LintContext) -> list[str]:
    text = ctx.apparmor_text or ""
    return re.findall(r"^\s*profile\s+\S+\s+flags=\(([^)]*)\)", text, re.M)


_EXEC_UNCONFINED = re.compile(r"[pPcC]?[uU]x")


@rule(
    "SBX140",
    "error",
    "apparmor",
    "danger",
    "an AppArmor rule lets an exec leave confinement",
    "use 'ix' (inherit this profile); never ux/Ux/pux/cux",
)
def _aa_unconfined(ctx: LintContext) -> Iterator[Hit]:
    for flags in _profile_flags(ctx):
        if "unconfined" in re.split(r"[\s,]+", flags):
            yield Hit("flags=(unconfined)", "the profile is flagged unconfined")
    for stmt in apparmor_statements(ctx):
        perms = [t for t in stmt.rstrip(",").split() if not t.startswith(('"', "/", "@", "{"))]
        if any(
            re.fullmatch(r"[rwaklmixuUpPcCD]+", t) and _EXEC_UNCONFINED.search(t) for t in perms
        ):
            yield Hit(stmt, f"AppArmor rule {stmt!r} runs programs unconfined")


def _aa_rule(word: str, bare_only: bool = False) -> Callable[[LintContext], Iterator[Hit]]:
    def check(ctx: LintContext) -> Iterator[Hit]:
        for stmt in apparmor_statements(ctx):
            head = stmt.rstrip(",").split()
            names = _MOUNTISH if word == "mount" else {word}
            if not head or head[0] not in names or (bare_only and len(head) > 1):
                continue
            yield Hit(stmt, f"AppArmor allow rule {stmt!r}")

    return check


_MOUNTISH = frozenset({"mount", "remount", "umount", "pivot_root"})
rule(
    "SBX141",
    "error",
    "apparmor",
    "danger",
    "AppArmor grants every capability (bare 'capability,')",
    "list the capabilities (capabilities.keep renders them), or 'deny capability,'",
)(_aa_rule("capability", bare_only=True))
rule(
    "SBX142",
    "error",
    "apparmor",
    "danger",
    "AppArmor allows mount, remount, umount or pivot_root",
    "drop the rule; the generated profile denies mount, umount and pivot_root",
)(_aa_rule("mount"))
rule(
    "SBX143",
    "error",
    "apparmor",
    "danger",
    "AppArmor allows ptrace",
    "drop the rule; the generated profile denies ptrace",
)(_aa_rule("ptrace"))

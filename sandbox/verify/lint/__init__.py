"""Lint: a registry of small rules over a policy and its generated artifacts.

Pure; runs in the supervisor (``verify.check``, on a cache miss) and in
``sandbox verify``. After runc's ``validate`` checks and youki's
``validate_spec_for_*``: each rule has a stable id (SBX1xx), a severity
(``error`` blocks the run, ``warning`` is reported), the layer it is about,
a class and the fix. A rule is a function ``(LintContext) -> Iterable[Hit]``;
the registry turns hits into :class:`~sandbox.verify.findings.Finding`.

Two classes:

- **danger**: the policy grants a way out or over other tenants (a
  capability, a syscall, a writable host tree, a mount without nosuid/nodev,
  a shared namespace, an AppArmor rule that unconfines). Monotone by
  construction: adding a grant never removes a danger finding (a property
  test holds every rule to it).
- **consistency**: the policy says something the other layers make
  pointless or contradict (a path granted that nothing mounts, a syscall
  allowed whose capability is dropped, ``degradable`` on a layer ``strict``
  requires, an allow that a deny removes).

Seccomp rules ask the reference model (``seccomp.reference``), not the text
of the profile, so a syscall reached through a group, an i386 multiplexer or
an argument rule is judged by what the filter will actually return. The
simulation (``verify.simulate``) separately proves the BPF agrees with that
model.
"""

from __future__ import annotations

from sandbox.verify.lint import (
    consistency,
    danger_apparmor,
    danger_host,
    danger_seccomp,
    danger_system,
)
from sandbox.verify.lint.base import (
    PLACEMENT,
    RULES,
    Hit,
    Kind,
    LintContext,
    Rule,
    context,
    ids,
    kept_caps,
    rule,
    run,
)
from sandbox.verify.lint.consistency import SYSCALL_CAPS, provided
from sandbox.verify.lint.danger_apparmor import apparmor_statements, strip_comment
from sandbox.verify.lint.danger_seccomp import DANGEROUS_SYSCALLS, FLAGGED_CAPS, flagged_syscalls

# The rule modules register their rules when imported (above).
__all__ = [
    "DANGEROUS_SYSCALLS",
    "FLAGGED_CAPS",
    "PLACEMENT",
    "RULES",
    "SYSCALL_CAPS",
    "Hit",
    "Kind",
    "LintContext",
    "Rule",
    "apparmor_statements",
    "consistency",
    "context",
    "danger_apparmor",
    "danger_host",
    "danger_seccomp",
    "danger_system",
    "flagged_syscalls",
    "ids",
    "kept_caps",
    "provided",
    "rule",
    "run",
    "strip_comment",
]

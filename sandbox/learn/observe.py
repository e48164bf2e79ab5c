"""The learning run's notification handler: answer as the base would, record what was used.

Supervisor side; called by the run's watch loop (``RunRequest.on_notification``)
for every syscall the learning filter hands over, which is every syscall but
the launcher's ``read``/``write`` (see ``policy.learning_policy``). For each
one the base profile's own verdict is computed with the reference model
(``seccomp.reference.syscall_ret``, no libseccomp) and followed:

- the base **denies** it outright (its ``deny`` list), or an argument rule of
  the base sends these arguments to the default action: refused exactly as the
  base would (an errno when the base answers one, else the run is stopped as a
  security violation) and listed, never learned;
- the base answers an **errno** (clone3's ENOSYS, an AF_INET socket under
  sockets_local): the same errno, recorded so the profile keeps the answer;
- the base's default would refuse a syscall it never mentions, and verify
  flags allowing it as dangerous (``withhold``: ``sandbox.verify.lint``'s
  table, empty with ``--allow-dangerous``): answered EPERM and recorded, so
  the profile answers it the same and never grants it;
- the base **allows** it, or its default would refuse a syscall it never
  mentions: let through (SECCOMP_USER_NOTIF_FLAG_CONTINUE) and recorded. This
  is the permissive part: the profile then allows what the program used.

Before a syscall is let through, its path or address arguments are read from
the task's memory (``decode``), then the notification id is checked with
``notify.id_valid``: only when it is still valid does the record take what was
read (the task is still blocked in that syscall, so the memory was its own).
"""

from __future__ import annotations

import errno as _errno
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sandbox.learn.decode import Decoder, TaskView
from sandbox.learn.events import CapEvent, Event, FileEvent, NetEvent
from sandbox.learn.record import TRACKED, Record, Treatment
from sandbox.runner.result import Violation
from sandbox.runner.watch import arch_name, syscall_name
from sandbox.seccomp.actions import (
    REFUSING,
    SECCOMP_RET_ACTION_FULL,
    SECCOMP_RET_DATA,
    SECCOMP_RET_ERRNO,
)
from sandbox.seccomp.reference import syscall_ret
from sandbox.seccomp.spec import SeccompSpec
from sandbox.syscalls.notify import Notification

log = logging.getLogger(__name__)

Verdict = Literal["forbidden", "errno", "allowed", "beyond"]


class Answer(Protocol):
    """How notifications are answered (``LiveAnswer`` on the kernel; a fake in tests)."""

    def cont(self, listener: int, nid: int) -> None: ...
    def errno(self, listener: int, nid: int, err: int) -> None: ...
    def valid(self, listener: int, nid: int) -> bool: ...


class LiveAnswer:
    """``Answer`` through ``sandbox.syscalls.notify``."""

    def cont(self, listener: int, nid: int) -> None:
        from sandbox.syscalls import notify

        notify.answer_continue(listener, nid)

    def errno(self, listener: int, nid: int, err: int) -> None:
        from sandbox.syscalls import notify

        notify.answer_errno(listener, nid, err)

    def valid(self, listener: int, nid: int) -> bool:
        from sandbox.syscalls import notify

        return notify.id_valid(listener, nid)


@dataclass(frozen=True, slots=True)
class BaseVerdict:
    """What the base does with one call: ``verdict`` and the errno it answers (or 0)."""

    verdict: Verdict
    errno: int = 0
    reason: str = ""


def base_verdict(base: SeccompSpec, name: str, args: tuple[int, ...]) -> BaseVerdict:
    """The base profile's treatment of ``name(args)`` (module docstring)."""
    ret = syscall_ret(base, name, args)
    action, data = ret & SECCOMP_RET_ACTION_FULL, ret & SECCOMP_RET_DATA
    refusing_default = base.default_action in REFUSING
    if name in base.deny:
        return _refused(action, data, "denied by the base")
    rule = base.rule_for(name)
    if rule is not None and base.errno_of(name) is None:
        outcome = rule.outcome(args)
        if outcome == "default" and refusing_default:
            return _refused(action, data, "the base's argument rule refuses these arguments")
        if isinstance(outcome, int):
            why = f"the base's argument rule answers {_name(outcome)}"
            return BaseVerdict("errno", outcome, why)
        return BaseVerdict("allowed")
    if action == SECCOMP_RET_ERRNO:
        if ret == base.default_ret and name not in base.allow and base.errno_of(name) is None:
            return BaseVerdict("beyond")  # the base's default is an errno: learnable
        return BaseVerdict("errno", data, f"the base answers {_name(data)}")
    if ret == base.default_ret and refusing_default:
        return BaseVerdict("beyond")
    return BaseVerdict("allowed")


def _refused(action: int, data: int, reason: str) -> BaseVerdict:
    if action == SECCOMP_RET_ERRNO:
        return BaseVerdict("forbidden", data, reason)
    return BaseVerdict("forbidden", 0, reason)


def _name(err: int) -> str:
    return _errno.errorcode.get(err, str(err))


class Observer:
    """Handles every notification of one learning run (``run`` is its 1-based input number)."""

    def __init__(
        self,
        base: SeccompSpec,
        record: Record,
        run: int,
        task: TaskView,
        answer: Answer | None = None,
        withhold: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        self.record = record
        self.run = run
        self.decoder = Decoder(task)
        self.answer = answer or LiveAnswer()
        self.withhold = withhold or {}  # syscall -> the lint rule that flags allowing it
        self.seen = 0

    def __call__(self, n: Notification, listener: int) -> Violation | None:
        self.seen += 1
        name = syscall_name(n.nr, n.arch)
        if name.startswith("syscall_"):  # a number our tables do not know: no name to learn
            bv = _refused(
                self.base.default_ret & SECCOMP_RET_ACTION_FULL,
                self.base.default_ret & SECCOMP_RET_DATA,
                "unknown syscall number (the base's default)",
            )
        else:
            bv = base_verdict(self.base, name, n.args)
        if bv.verdict == "forbidden":
            self.record.refusal(name, bv.reason, self.run, n.args)
            if bv.errno:
                self.answer.errno(listener, n.id, bv.errno)
                return None
            return Violation(name, n.nr, arch_name(n.arch, n.nr), n.args)
        if bv.verdict == "errno":
            self._note_errno(name, n.args, bv)
            self.answer.errno(listener, n.id, bv.errno)
            return None
        if bv.verdict == "beyond" and name in self.withhold:
            note = f"verify flags it ({self.withhold[name]}); --allow-dangerous learns it"
            self.record.syscall(name, self.run, "withheld", _errno.EPERM, note)
            self.record.refusal(name, f"{note}: answered EPERM", self.run, n.args)
            self.answer.errno(listener, n.id, _errno.EPERM)
            return None
        try:
            events = self.decoder.decode(n.pid, name, n.args)
        except (OSError, ValueError, IndexError, struct.error) as e:  # a task gone mid-read
            log.debug("decoding %s of pid %d: %s", name, n.pid, e)
            events = []
        # TOCTOU: what was read is the task's only while it is still blocked in this call.
        if not self.answer.valid(listener, n.id):
            self.record.dropped += 1
            return None
        self._note(name, n.args, bv, events)
        self.answer.cont(listener, n.id)
        return None

    def _note_errno(self, name: str, args: tuple[int, ...], bv: BaseVerdict) -> None:
        tracked = TRACKED.get(name)
        if tracked is not None and self.base.rule_for(name) is not None:
            use = self.record.syscall(name, self.run, "allowed")
            arg, mask = tracked
            self.record.value(use.name, self.run, args[arg] & mask, refused_errno=bv.errno)
            self.record.refusal(name, bv.reason, self.run, args)
        else:
            self.record.syscall(name, self.run, "errno", bv.errno)

    def _note(
        self, name: str, args: tuple[int, ...], bv: BaseVerdict, events: Sequence[Event]
    ) -> None:
        verdict: Treatment = "beyond" if bv.verdict == "beyond" else "allowed"
        use = self.record.syscall(name, self.run, verdict)
        tracked = TRACKED.get(name)
        if tracked is not None:
            arg, mask = tracked
            self.record.value(use.name, self.run, args[arg] & mask)
        for e in events:
            if isinstance(e, FileEvent):
                self.record.file(e.path, e.access, self.run, asked=e.asked, via=e.via)
            elif isinstance(e, NetEvent):
                self.record.network(e.use, self.run)
            elif isinstance(e, CapEvent):
                self.record.cap(e.cap, f"{e.evidence} (run {self.run})")


__all__ = ["Answer", "BaseVerdict", "LiveAnswer", "Observer", "base_verdict"]

"""The supervise stage: watch a launched run to its end, account for it, classify it.

Supervisor side. Drives the run's :class:`~sandbox.runner.watch.Watch` (limits,
streams, seccomp notifications, pause/resume/cancel through a RunControl),
then takes the figures (``runner.accounting``) and the verdict
(``runner.verdict.classify``, a pure function of what was observed), and
builds the :class:`RunResult`. A launcher step that failed before execve
raises :class:`SpawnError` here.
"""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING, Any

from sandbox import ablation
from sandbox.compile import CompiledRun, stack_limit
from sandbox.errors import SpawnError
from sandbox.launcher.protocol import collect_reason, decode_failure
from sandbox.runner import accounting
from sandbox.runner.acquire import Resources
from sandbox.runner.control import RunControl
from sandbox.runner.launch import Launched
from sandbox.runner.result import RunResult, Verdict, Violation
from sandbox.runner.verdict import Observation, classify, exit_and_signal
from sandbox.runner.watch import Watch

if TYPE_CHECKING:
    from sandbox.policy.frozen import Policy


def supervise(
    launched: Launched,
    compiled: CompiledRun,
    res: Resources,
    control: RunControl | None = None,
    verification: str = "",
) -> RunResult:
    """Run the watch loop, then account and classify (see module docstring);
    ``verification``: the hash of the report the run was admitted on, for the record.

    Raises:
        SpawnError: a launcher step failed before the payload's execve.
    """
    watch = launched.watch
    if control is not None:
        leaf = res.leaf
        control.attach(leaf.freeze if leaf else None, leaf.thaw if leaf else None)
    try:
        watch.run()
    finally:
        if control is not None:
            control.finished.set()
    if watch.failure:
        f = decode_failure(watch.failure)
        raise SpawnError(f.step, f.errno, f.message)
    return _result(compiled, res, watch, verification)


def _result(compiled: CompiledRun, res: Resources, watch: Watch, verification: str) -> RunResult:
    plan = res.plan
    st = watch.status
    wall = watch.wall_elapsed(watch.ended_at)  # paused time is not charged
    usage = accounting.usage(res.leaf, st, wall)
    # Only the supervisor's own record (the run's seccomp listener) makes a
    # violation: never an exit status (SIGSYS is one kill(2) away) nor the
    # kernel log (any task on the host can flood it; issue 13 item 4).
    violation = watch.violation
    code, sig = exit_and_signal(st.status if st else None)
    obs = Observation(
        status=st.status if st else None,
        killed_for=watch.killed_for,
        violation=violation is not None,
        oom_killed=usage.oom_killed,
        cpu_time=usage.cpu_time,
        cpu_limit=compiled.supervision.cpu_time,
        file_size_limit=compiled.policy.limits.file_size,
    )
    verdict = classify(obs)
    files = {k: v for k, v in watch.files.items() if isinstance(v, bytes)}
    return RunResult(
        verdict=verdict,
        exit_code=code,
        signal=sig,
        policy_digest=compiled.profile.digest,
        profile=compiled.policy.name,
        run_id=plan.run_id,
        host_uid=plan.host_uid,
        id_mode=plan.id_mode,
        enforcement=dict(res.states),
        usage=usage,
        violation=violation,
        denied=tuple(watch.denied),
        message=_message(verdict, watch, violation),
        stdout=watch.captured(1),
        stderr=watch.captured(2),
        files=files,
        collect_errors=_collect_errors(plan.collect, watch.files),
        notes=ablation.notes(compiled.ablate),
        limits=_limits_record(compiled),
        verification=verification,
    )


def _collect_errors(names: tuple[str, ...], got: dict[str, bytes | int]) -> dict[str, str]:
    """Why each requested file that did not come back is missing (issue 13 item 8)."""
    out = {}
    for name in names:
        v = got.get(name)
        if isinstance(v, int):
            out[name] = collect_reason(v)
        elif v is None:
            out[name] = "not reported: the container's init ended without it"
    return out


def _limits_record(compiled: CompiledRun) -> dict[str, Any]:
    """:func:`limits_record` of the run's policy, made once per compiled run (a
    pydantic dump per run otherwise); each result gets its own copy."""
    rec: dict[str, Any] | None = compiled._memo.get("limits_record")
    if rec is None:
        rec = compiled._memo["limits_record"] = limits_record(compiled.policy)
    return {k: dict(v) if isinstance(v, dict) else v for k, v in rec.items()}


def limits_record(policy: Policy) -> dict[str, Any]:
    """The policy's limits as the record shows them: set ones only, the stack in bytes."""
    out = {k: v for k, v in policy.limits.model_dump().items() if v not in (None, {})}
    if "stack" in out:
        stack = stack_limit(policy)
        out["stack"] = None if stack == resource.RLIM_INFINITY else stack
    return out


def _message(verdict: Verdict, watch: Watch, violation: Violation | None) -> str:
    if violation is not None:
        return f"denied syscall {violation.syscall} ({violation.arch})"
    if verdict == Verdict.INTERNAL_ERROR and watch.status is None:
        return "the container's init ended without reporting the payload's status"
    return ""

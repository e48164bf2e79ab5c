"""``learn()``: learn a per-program profile, minimise it, verify it (supervisor side, root).

The flat sequence (each step a function below):

1. **Learn**: run the program once per input in the full container under the
   learning profile (``learning_profile``): the base's namespaces, overlay,
   cgroups, limits and capabilities (empty, plus any inferred ones) stay
   enforced; Landlock and AppArmor are switched off so file access is
   permissive; the seccomp filter hands every syscall to ``observe.Observer``,
   which answers as the base would and records; what verify flags as
   dangerous is answered EPERM and never granted unless
   ``opts.allow_dangerous`` (capabilities included). When capabilities are
   inferred and may be granted, the round is repeated with them kept, so the
   recorded behaviour is the one the profile will give (at most
   ``MAX_ROUNDS``).
2. **Generate** the units and the profile text (``rules``, ``generate``).
3. **Minimise** (optional): re-run every input under candidate profiles,
   enforced, and drop what no input needs (``minimize``).
4. **Verify**: the verify checks (``checks.verify_profile``), then every input
   once more under the final profile, enforced; the behaviour must be
   identical to the learning runs (exit status, stdout, stderr).

An input that does not finish (wall-time limit) makes the record
incomplete: the profile is still generated, marked incomplete, and neither
minimised nor run again.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sandbox.caps.names import DANGEROUS, normalize
from sandbox.errors import SandboxError
from sandbox.host import HostFacts
from sandbox.learn.checks import verify_profile
from sandbox.learn.decode import AF_INET, AF_INET6, LiveTask, TaskView
from sandbox.learn.generate import Meta, comment, render
from sandbox.learn.minimize import minimize
from sandbox.learn.observe import Answer, Observer
from sandbox.learn.record import Record, RunInfo
from sandbox.learn.result import LearnOptions, LearnResult
from sandbox.learn.rules import LAUNCHER_SYSCALLS, Derived, Unit, derive, describe_value, runs_text
from sandbox.learn.runs import Outcome, Runner
from sandbox.policy.frozen import Policy
from sandbox.policy.load import load_profile, validate
from sandbox.policy.profile import LoadedProfile
from sandbox.seccomp.groups import resolve
from sandbox.verify.lint.danger_seccomp import FLAGGED_CAPS, flagged_syscalls

log = logging.getLogger(__name__)

MAX_ROUNDS = 3
LEARNING_ABLATE = frozenset({"landlock", "apparmor"})
# Never granted from an inference, whatever the program tried: the lint's danger
# class and what gives power over the kernel, other tasks or the file system.
NEVER_GRANTED = DANGEROUS | {
    "CAP_SYS_TIME",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PACCT",
    "CAP_NET_RAW",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_AUDIT_CONTROL",
    "CAP_SYSLOG",
    "CAP_CHECKPOINT_RESTORE",
}


# ------------------------------------------------------------------ steps ----
def learning_profile(
    base: LoadedProfile, caps: Sequence[str], wall_time: float | None
) -> LoadedProfile:
    """The base with a notify-everything filter and the capabilities in ``caps`` only.

    The filter lets through only the launcher's own ``read``/``write`` (it needs
    them after loading the filter, before the supervisor holds the listener);
    every other syscall goes to the supervisor, which mirrors the base.
    """
    p = base.policy
    sec = p.seccomp.model_copy(
        update={
            "default_action": "notify",
            "groups": [],
            "allow": list(LAUNCHER_SYSCALLS),
            "deny": [],
            "errno": {},
            "rules": [],
        }
    )
    capabilities = p.capabilities.model_copy(update={"keep": list(caps)})
    limits = p.limits
    if wall_time is not None:
        limits = limits.model_copy(update={"wall_time": wall_time})
    policy = p.model_copy(
        update={
            "name": f"{p.name}-learning"[:64],
            "seccomp": sec,
            "capabilities": capabilities,
            "limits": limits,
        }
    )
    validate(policy.model_dump())  # still a valid policy (PolicyError, not ValidationError)
    return LoadedProfile(policy, f"learning profile from {base.source}", base.chain)


def learn_round(
    runner: Runner,
    base: LoadedProfile,
    opts: LearnOptions,
    caps: Sequence[str],
    task: TaskView,
    answer: Answer | None = None,
) -> tuple[Record, list[Outcome]]:
    """One learning run per input; returns the record and each run's outcome."""
    profile = learning_profile(base, caps, opts.wall_time)
    spec = resolve(base.policy.seccomp)
    record = Record()
    outcomes = []
    for i, (label, data) in enumerate(opts.inputs, 1):
        observer = Observer(spec, record, i, task, answer, withheld(opts))
        out = runner.run(profile, data, ablate=LEARNING_ABLATE, on_notification=observer)
        finished = out.verdict not in ("WALL_TIME_LIMIT", "TIME_LIMIT", "OUTPUT_LIMIT")
        record.runs.append(
            RunInfo(i, label, out.verdict, out.exit_code, out.signal, finished, out.describe())
        )
        outcomes.append(out)
        log.info("learning run %d: %s (%d notifications)", i, out.describe(), observer.seen)
    return record, outcomes


def withheld(opts: LearnOptions) -> dict[str, str]:
    """Syscalls answered EPERM while learning, never granted: what verify flags as
    dangerous (syscall -> the rule), unless ``--allow-dangerous``."""
    return {} if opts.allow_dangerous else flagged_syscalls()


def grantable(
    record: Record, base: Policy, allow_dangerous: bool = False
) -> tuple[dict[str, str], list[str]]:
    """Inferred capabilities that may be granted (-> why), and lines for the others.

    verify flags every kept capability (SBX101, SBX102, SBX104), so none is
    granted without ``allow_dangerous``; ``NEVER_GRANTED`` never is.
    """
    denied = {normalize(c) for c in base.capabilities.deny}
    ok: dict[str, str] = {}
    lines = []
    for cap, evidence in sorted(record.caps.items()):
        why = "; ".join(sorted(evidence))
        if cap in denied:
            lines.append(f"{cap}: needed by {why}; denied by the base, not granted")
        elif cap in NEVER_GRANTED:
            lines.append(f"{cap}: needed by {why}; never granted from an inference")
        elif cap in FLAGGED_CAPS and not allow_dangerous:
            lines.append(
                f"{cap}: needed by {why}; not granted: verify flags every kept capability "
                "(--allow-dangerous grants it)"
            )
        else:
            ok[cap] = f"inferred from EPERM: {why}"
    return ok, lines


class Candidates:
    """Profiles built from unit subsets, written to a private directory and loaded
    the way ``sandbox exec --profile`` loads them."""

    def __init__(self, derived: Derived, meta: Meta, base: str) -> None:
        self.derived = derived
        self.meta = meta
        self.base = base  # how a candidate in the private directory names the base
        self._dir = tempfile.TemporaryDirectory(prefix="sandbox-learn-")
        self._n = 0

    def text(self, units: Sequence[Unit] | frozenset[Unit]) -> str:
        return render(self.derived, units, self.meta)

    def load(self, units: Sequence[Unit] | frozenset[Unit]) -> LoadedProfile:
        self._n += 1
        path = Path(self._dir.name) / f"{self.meta.name}.{self._n}.toml"
        meta = dataclasses.replace(self.meta, extends=self.base)
        path.write_text(render(self.derived, units, meta))
        return load_profile(str(path))

    def close(self) -> None:
        self._dir.cleanup()


def run_inputs(
    runner: Runner,
    profile: LoadedProfile,
    opts: LearnOptions,
    reference: Sequence[Outcome],
    *,
    stop_at_first: bool,
) -> tuple[bool, list[Outcome]]:
    """Every input under ``profile``, enforced; whether all matched ``reference``.

    ``opts.wall_time`` bounds these runs too (in memory: the profile's text keeps
    the base's limit), so a candidate that makes the program hang costs seconds.
    """
    if opts.wall_time is not None:
        limits = profile.policy.limits.model_copy(update={"wall_time": opts.wall_time})
        policy = profile.policy.model_copy(update={"limits": limits})
        profile = LoadedProfile(policy, profile.source, profile.chain)
    outs = []
    same = True
    for (_, data), ref in zip(opts.inputs, reference, strict=True):
        out = runner.run(profile, data)
        outs.append(out)
        if out.key() != ref.key():
            same = False
            if stop_at_first:
                break
    return same, outs


def _program_lines(record: Record) -> list[str]:
    lines = []
    for path, use in sorted(record.files.items()):
        if "exec" not in use.access:
            continue
        asked = ", ".join(sorted(use.asked))
        via = sorted(v for v in use.via if v.startswith("interpreter of "))
        if via:
            lines.append(f"Interpreter: {path} inside the container ({via[0]})")
        else:
            name = f"{asked} is {path}" if asked else path
            lines.append(f"Executed: {name} inside the container ({runs_text(use.runs)})")
    return lines[:12]


def _meta(
    opts: LearnOptions,
    base: LoadedProfile,
    record: Record,
    caps_lines: list[str],
    granted: dict[str, str],
) -> Meta:
    refused = [
        f"{r.syscall}: {r.reason}, {r.count}x ({runs_text(r.runs)})"
        for r in sorted(record.refused.values(), key=lambda r: r.syscall)
    ]
    net = [
        f"{u.op} {describe_value('socket', u.family)}"
        + (f" {u.address}" if u.address else "")
        + (f" port {u.port}" if u.port is not None else "")
        + f" ({runs_text(runs)})"
        for u, runs in sorted(record.net.items(), key=lambda kv: repr(kv[0]))
    ]
    caps = [f"{c}: granted, {why}" for c, why in sorted(granted.items())] + caps_lines
    ports: dict[int, str] = {}
    for u, runs in sorted(record.net.items(), key=lambda kv: repr(kv[0])):
        if u.op in ("bind", "connect") and u.family in (AF_INET, AF_INET6) and u.port is not None:
            ports.setdefault(u.port, f"{u.op} {u.address or '?'} port {u.port} ({runs_text(runs)})")
    return Meta(
        name=opts.name,
        extends=opts.extends or opts.base,
        base_name=base.policy.name,
        command=opts.argv,
        inputs=tuple(label for label, _ in opts.inputs),
        files=tuple(f"/box/{name} <- {src}" for name, src in opts.files),
        program=_program_lines(record),
        description=f"Learned for {comment(' '.join(opts.argv), 120)} from {base.policy.name}",
        refused=refused,
        network=net,
        tcp_ports=ports,
        caps=caps,
    )


def learn(
    opts: LearnOptions,
    runner: Runner,
    host: HostFacts,
    *,
    task: TaskView | None = None,
    answer: Answer | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> LearnResult:
    """Learn, generate, minimise (``opts.minimize``) and verify a profile for ``opts.argv``.

    Raises:
        SandboxError: when the base cannot be loaded or a run cannot be made.
    """
    t0 = time.monotonic()
    if opts.wall_time is not None:  # the same bounds as a profile's (nan, 0, inf: refused)
        wall = {"limits": {"wall_time": opts.wall_time}}
        validate({"name": "wall-time", **wall}, None, wall)
    base = load_profile(opts.base)
    task = task or LiveTask()
    caps: dict[str, str] = {}
    runs = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        progress(f"learning: {len(opts.inputs)} run(s), round {rounds}")
        record, reference = learn_round(runner, base, opts, sorted(caps), task, answer)
        runs += len(opts.inputs)
        for out in reference:
            if out.verdict in ("SPAWN_ERROR", "INTERNAL_ERROR"):
                raise SandboxError(
                    f"learning run failed before the program ran: {out.stderr.decode()[:300]}"
                )
        more, caps_lines = grantable(record, base.policy, opts.allow_dangerous)
        if set(more) <= set(caps) or not record.complete:
            break
        caps |= more
    fs = base.policy.filesystem
    writable = [
        *fs.writable,
        *(t.target for t in fs.tmpfs),
        *(b.target for b in fs.binds if b.writable),
    ]
    derived = derive(record, base.policy.name, writable, {c: w for c, w in caps.items()})
    meta = _meta(opts, base, record, caps_lines, caps)
    meta.notes = derived.notes + (
        [
            f"{record.dropped} notifications went away before they "
            "could be recorded (their task died)"
        ]
        if record.dropped
        else []
    )
    result = LearnResult(
        text="",
        record=record,
        derived=derived,
        kept=list(derived.units),
        reference=reference,
        rounds=rounds,
        granted_caps=caps,
    )
    result.seconds["learn"] = time.monotonic() - t0
    cands = Candidates(derived, meta, opts.base)
    try:
        if opts.minimize and record.complete:
            t1 = time.monotonic()
            progress(f"minimising: {len(derived.units)} rules, {len(opts.inputs)} input(s) each")

            def same(units: frozenset[Unit]) -> tuple[bool, int]:
                ok, outs = run_inputs(
                    runner, cands.load(units), opts, reference, stop_at_first=True
                )
                return ok, len(outs)

            m = minimize(derived.units, same)
            result.kept, result.removed = m.kept, m.removed
            result.minimize_runs, result.minimize_trials = m.runs, m.trials
            runs += m.runs
            meta.removed, meta.minimize_runs = tuple(m.removed), m.runs
            result.seconds["minimize"] = time.monotonic() - t1
        t2 = time.monotonic()
        progress("verifying")
        final = cands.load(result.kept)
        result.findings = verify_profile(final, host)
        if record.complete:
            _, result.final = run_inputs(runner, final, opts, reference, stop_at_first=False)
            runs += len(result.final)
        result.seconds["verify"] = time.monotonic() - t2
        meta.status = result.status_lines()
        result.text = cands.text(result.kept)
    finally:
        cands.close()
    result.runs = runs
    result.seconds["total"] = time.monotonic() - t0
    return result


__all__ = [
    "LEARNING_ABLATE",
    "MAX_ROUNDS",
    "NEVER_GRANTED",
    "Candidates",
    "grantable",
    "learn",
    "learn_round",
    "learning_profile",
    "run_inputs",
    "withheld",
]

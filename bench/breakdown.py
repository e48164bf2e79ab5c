"""Where one warm library run's time goes, step by step (``make bench`` ``--breakdown``).

Run as its own process (it patches the product in memory, never on disk):

    .venv/bin/python -m bench.breakdown [--runs N] [--cli]

Supervisor phases are timed from outside by wrapping methods and functions
at the names the supervisor looks them up by. The child's steps are timed by
wrapping ``sandbox.launcher.steps.run_steps`` (each step run on its own
through the original), ``outer_main``, ``init_main`` and ``step_exec``. For
the patches to reach the children, the fork server is started with
``ForkServerClient(mode="fork")``: a copy of this process, patches included
(the library itself uses ``mode="exec"``, a fresh interpreter; the child
steps are the same code either way). The children report through an
anonymous ``MAP_SHARED`` mapping made before the server is forked: it
survives the server's closing of inherited fds, pivot_root (the host /tmp
is gone for init and the payload) and even seccomp (writing memory and
reading the vDSO clock make no syscall); it vanishes at execve.

All clocks are CLOCK_MONOTONIC; the run's time namespace has zero offsets,
so the children's stamps line up with the supervisor's.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import logging
import mmap
import statistics
import struct
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from bench.common import header, loadavg, table

# ----------------------------------------------------------- recording ----

REC = struct.Struct("<qq48s")
REGION = 64 << 10
ROLES = ("server", "outer", "init", "payload")
_shm = mmap.mmap(-1, REGION * len(ROLES), flags=mmap.MAP_SHARED)
_local: list[tuple[str, str, int, int]] = []  # supervisor side: (role, label, t0, t1)
JOIN_ORDER: list[str] = []  # hierarchy of each join fd the payload writes


def _shm_add(role: int, label: str, t0: int, t1: int) -> None:
    """Append one record to a child role's region (no syscall: safe after seccomp)."""
    base = role * REGION
    (n,) = struct.unpack_from("<q", _shm, base)
    off = base + 8 + n * REC.size
    if off + REC.size > base + REGION:
        return
    REC.pack_into(_shm, off, t0, t1, label.encode()[:48])
    struct.pack_into("<q", _shm, base, n + 1)


def _shm_reset() -> None:
    for r in range(len(ROLES)):
        struct.pack_into("<q", _shm, r * REGION, 0)


def _shm_records() -> list[tuple[str, str, int, int]]:
    out = []
    for r, role in enumerate(ROLES):
        base = r * REGION
        (n,) = struct.unpack_from("<q", _shm, base)
        for i in range(n):
            t0, t1, raw = REC.unpack_from(_shm, base + 8 + i * REC.size)
            out.append((role, raw.rstrip(b"\0").decode(), t0, t1))
    return out


def _wrap(owner: Any, attr: str, label: str, role: str = "supervisor") -> None:
    """Replace owner.attr by a version that records its start and end."""
    orig = getattr(owner, attr)
    child = ROLES.index(role) if role in ROLES else -1

    @functools.wraps(orig)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.monotonic_ns()
        try:
            return orig(*args, **kwargs)
        finally:
            t1 = time.monotonic_ns()
            if child >= 0:
                _shm_add(child, label, t0, t1)
            else:
                _local.append((role, label, t0, t1))

    is_static = isinstance(inspect.getattr_static(owner, attr), staticmethod)
    setattr(owner, attr, staticmethod(timed) if is_static else timed)


def _wrap_cm(owner: Any, attr: str, label: str) -> None:
    """Time a context manager's enter and exit separately."""
    orig = getattr(owner, attr)

    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        t0 = time.monotonic_ns()
        cm = orig(*args, **kwargs)
        value = cm.__enter__()
        _local.append(("supervisor", label + " (enter)", t0, time.monotonic_ns()))
        try:
            yield value
        finally:
            t2 = time.monotonic_ns()
            cm.__exit__(None, None, None)
            _local.append(("supervisor", label + " (exit)", t2, time.monotonic_ns()))

    setattr(owner, attr, timed)


def install() -> None:
    """Wrap the supervisor's phases and the child's steps (this process and its forks)."""
    from sandbox import api, codec, enforce
    from sandbox import compile as comp
    from sandbox.cgroups import leaf as cgleaf
    from sandbox.fs import image
    from sandbox.launcher import server, steps
    from sandbox.runner import acquire, client, launch, state, supervise, supervisor, watch
    from sandbox.verify import cache as vcache

    sup = supervisor.Supervisor
    _wrap(api.Sandbox, "run", "Sandbox.run (total)")
    _wrap(api.Sandbox, "profile", "api: profile (cached)")
    _wrap(sup, "run", "Supervisor.run")
    _wrap(supervisor, "compile_run", "stage: compile")
    _wrap(enforce, "static_states", "enforce.static_states")
    _wrap(enforce, "check", "enforce.check")
    _wrap(image, "ensure", "fs.image.ensure (image key)")
    _wrap(comp, "plan_mounts", "fs.plan_mounts")
    _wrap(comp, "resolve", "fs.resolve program")
    _wrap(comp.Artifacts, "landlock", "compile: landlock")
    _wrap(comp.Artifacts, "seccomp", "compile: seccomp")
    _wrap(comp.Artifacts, "apparmor", "compile: apparmor")
    _wrap(vcache, "verify_run", "stage: verify (cached)")
    _wrap(acquire.Acquirer, "acquire", "stage: acquire")
    _wrap(state, "new_run_id", "state.new_run_id")
    _wrap(state, "acquire_run_lock", "state.acquire_run_lock")
    _wrap_cm(state, "id_slot", "state.id_slot")
    _wrap(acquire.Acquirer, "_cgroups", "acquire: cgroups")
    _wrap(acquire.Acquirer, "_apparmor", "acquire: apparmor")
    _wrap(acquire.cgroups, "create", "cgroups.create (leaf + limits)")
    _wrap(cgleaf.Leaf, "open_join_fds", "cgroups: open join fds")
    _wrap(supervisor, "launch", "stage: launch")
    _wrap(launch, "_stdio", "stdio pipes")
    _wrap(client.ForkServerClient, "spawn", "client.spawn (encode + send)")
    _wrap(codec, "dumps", "codec.dumps LaunchPlan")
    _wrap(client, "send_msg", "client: sendmsg (plan + fds)")
    _wrap(launch, "_await", "await 'spawned' reply")
    _wrap(supervisor, "supervise", "stage: supervise")
    _wrap(watch.Watch, "run", "watch loop (child side runs)")
    _wrap(watch.Watch, "_on_err", "watch: errpipe event")
    _wrap(watch.Watch, "_on_status", "watch: status event")
    _wrap(watch.Watch, "_on_notify_channel", "watch: take seccomp listener")
    _wrap(watch.Watch, "_on_output", "watch: output event")
    _wrap(supervise, "_result", "result (accounting, verdict)")
    _wrap(supervisor, "release", "stage: release")
    _wrap(cgleaf.Leaf, "stats", "cgroups: leaf stats")
    _wrap(cgleaf.Leaf, "remove", "cleanup: cgroups leaf remove")
    _wrap(state.RunLock, "release", "cleanup: run lock release")
    _wrap(watch.Watch, "close", "cleanup: watch close")
    # The fork server (inherited by the fork-mode server).
    _wrap(server.ForkServer, "_spawn", "server: spawn (decode, fork)", "server")
    _wrap(server.codec, "loads", "server: codec.loads plan", "server")
    _wrap(server.ForkServer, "_on_sync", "server: write id maps", "server")
    _wrap(server.ForkServer, "_on_exit", "server: reap outer", "server")
    _wrap(server.ForkServer, "_forget", "server: release", "server")

    # The child processes.
    orig_outer, orig_init, orig_exec = server.outer_main, steps.init_main, steps.step_exec
    orig_run_steps = steps.run_steps
    role_of = {id(steps.OUTER_STEPS): 1, id(steps.INIT_STEPS): 2, id(steps.PAYLOAD_STEPS): 3}

    def outer_main(ctx: Any) -> Any:
        t = time.monotonic_ns()
        _shm_add(1, "outer: running (after fork)", t, t)
        return orig_outer(ctx)

    def init_main(ctx: Any) -> Any:
        t = time.monotonic_ns()
        _shm_add(2, "init: running (after fork)", t, t)
        return orig_init(ctx)

    def step_exec(ctx: Any) -> Any:
        t = time.monotonic_ns()
        _shm_add(3, "payload: execve called", t, t)
        return orig_exec(ctx)

    def run_steps(ctx: Any, seq: Any) -> None:
        role = role_of.get(id(seq), 3)
        if role == 3:
            t = time.monotonic_ns()
            _shm_add(3, "payload: running (after fork)", t, t)
        for step in seq:
            t0 = time.monotonic_ns()
            orig_run_steps(ctx, (step,))
            _shm_add(role, f"{ROLES[role]}: {step.__name__}", t0, time.monotonic_ns())

    def io_counters(ctx: Any, pid: int) -> Any:
        t0 = time.monotonic_ns()
        try:
            return orig_io(ctx, pid)
        finally:
            _shm_add(2, "init: payload exited, read its io", t0, time.monotonic_ns())

    def join_with_fds(fds: Any, write: Any) -> None:
        for i, fd in enumerate(fds):
            t0 = time.monotonic_ns()
            write(fd, b"0")
            _shm_add(3, f"payload: join fd {i}", t0, time.monotonic_ns())

    def open_join_fds(leaf: Any) -> list[int]:
        JOIN_ORDER[:] = [d.hierarchy.name for d in leaf.dirs]
        return orig_open(leaf)

    orig_open = cgleaf.Leaf.open_join_fds
    cgleaf.Leaf.open_join_fds = open_join_fds
    steps.join_with_fds = join_with_fds
    orig_io = steps._io_counters
    server.outer_main = outer_main
    steps.init_main = init_main
    steps.step_exec = step_exec
    steps.run_steps = run_steps
    steps._io_counters = io_counters


# ------------------------------------------------------------ analysis ----


def one_run(sb: Any, argv: list[str]) -> list[tuple[str, str, int, int]]:
    """Records of one run, times relative to Sandbox.run's start."""
    _local.clear()
    _shm_reset()
    r = sb.run(argv)
    if r.verdict.value != "OK":
        raise RuntimeError(f"run failed: {r.verdict} {r.message}")
    recs = _local + _shm_records()
    start = min(t0 for role, label, t0, _ in recs if label == "Sandbox.run (total)")
    return [(role, label, t0 - start, t1 - start) for role, label, t0, t1 in recs]


def summarize(runs: list[list[tuple[str, str, int, int]]]) -> list[tuple[str, str, float, float]]:
    """Median start and duration (ms) of each (role, label, occurrence) over the runs."""
    by: dict[tuple[str, str, int], list[tuple[int, int]]] = defaultdict(list)
    for recs in runs:
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for role, label, t0, t1 in sorted(recs, key=lambda r: r[2]):
            n = seen[(role, label)]
            seen[(role, label)] += 1
            by[(role, label, n)].append((t0, t1))
    out = []
    for (role, label, n), spans in by.items():
        if len(spans) < len(runs) // 2:
            continue  # an event that happens in few runs (e.g. an extra output wakeup)
        start = statistics.median(t0 for t0, _ in spans) / 1e6
        dur = statistics.median(t1 - t0 for t0, t1 in spans) / 1e6
        out.append((role, label + (f" #{n + 1}" if n else ""), start, dur))
    return sorted(out, key=lambda r: r[2])


def phases(rows: list[tuple[str, str, float, float]]) -> list[tuple[str, float]]:
    """The run cut into consecutive phases (ms), from the supervisor's and children's stamps."""
    at = {label: (start, dur) for _, label, start, dur in rows}

    def end(label: str) -> float:
        s, d = at[label]
        return s + d

    def start(label: str) -> float:
        return at[label][0]

    marks = [
        ("api, compile (image, resolve, artifacts)", end("stage: compile")),
        ("verify (cached)", end("stage: verify (cached)")),
        ("acquire: run id, lock, id slot, cgroup leaf", end("stage: acquire")),
        ("launch: pipes, kmsg, stdio", start("client.spawn (encode + send)")),
        ("encode + send spawn request", start("server: spawn (decode, fork)")),
        ("server: decode plan, fork", start("outer: running (after fork)")),
        ("outer steps to unshare", start("outer: step_wait_idmaps")),
        ("id maps (server writes them)", end("outer: step_wait_idmaps")),
        ("fork init", start("init: running (after fork)")),
        ("init steps (mounts, pivot, hostname, lo)", end("init: step_loopback")),
        ("fork payload", start("payload: running (after fork)")),
        ("payload steps to seccomp", start("payload: execve called")),
        ("execve seen by supervisor (errpipe EOF)", _exec_seen(rows)),
        ("payload runs, init reports status", _status_seen(rows)),
        ("result: accounting, verdict", end("result (accounting, verdict)")),
        ("cleanup (leaf rmdir, release, unlock)", end("Sandbox.run (total)")),
    ]
    out, prev = [], 0.0
    for name, t in marks:
        out.append((name, t - prev))
        prev = t
    return out


def _exec_seen(rows: list[tuple[str, str, float, float]]) -> float:
    errs = [s + d for _, label, s, d in rows if label.startswith("watch: errpipe event")]
    return max(errs) if errs else float("nan")


def _status_seen(rows: list[tuple[str, str, float, float]]) -> float:
    st = [s + d for _, label, s, d in rows if label.startswith("watch: status event")]
    return max(st) if st else float("nan")


CLI_ARGV = ["exec", "--profile", "strict", "--", "/bin/true"]
CLI_IMPORTS = (
    "sandbox.cli.main",  # the console script's import
    "sandbox.errors",  # then what cmd_exec imports, in its order
    "sandbox.host",
    "sandbox.policy.cache",  # pydantic only on a miss (sandbox.policy.load, imported lazily)
    "sandbox.runner.client",
    "sandbox.runner.supervisor",
)


def cli_child() -> int:
    """One cold ``sandbox exec --profile strict -- /bin/true`` in this fresh process, timed."""
    import importlib

    t_start = time.monotonic_ns()
    spans = []
    for mod in CLI_IMPORTS:
        t0 = time.monotonic_ns()
        importlib.import_module(mod)
        spans.append(("cli", f"import {mod}", t0, time.monotonic_ns()))
    t_inst = time.monotonic_ns()
    install()  # the timers (they import sandbox.api, pydantic): not the CLI's cost
    import sandbox.host
    from sandbox.cli import main as climain
    from sandbox.policy import cache
    from sandbox.runner import acquire, client, supervisor

    _wrap(cache, "load", "cli: profile (cache, pydantic on a miss)")
    _wrap(sandbox.host, "probe", "cli: host probe")
    _wrap(supervisor.Supervisor, "__init__", "cli: Supervisor() incl. sweep")
    _wrap(acquire.Acquirer, "sweep", "cli: sweep stale leaves")
    _wrap(client.ForkServerClient, "_start", "cli: fork the fork server")
    _wrap(client.ForkServerClient, "close", "cli: close fork server")
    _wrap(climain, "_write_meta", "cli: write meta")
    _wrap(climain, "cmd_exec", "cli: cmd_exec (total)")
    _shm_reset()
    inst = time.monotonic_ns() - t_inst
    t0 = time.monotonic_ns()
    try:
        climain.main(CLI_ARGV)
    except SystemExit as e:
        status = e.code
    t_end = time.monotonic_ns()
    if status != 0:
        print(f"sandbox exec failed: status {status}", file=sys.stderr)
        return 1
    recs = spans + _local + _shm_records()
    recs.append(("cli", "cli: main() (argparse to exit)", t0, t_end))
    # Spans after the timers were installed move back by their cost.
    out = [
        (role, label, t0 - t_start - (inst if t0 >= t_inst else 0), t1 - t0)
        for role, label, t0, t1 in recs
    ]
    out = [(role, label, start, start + dur) for role, label, start, dur in out]
    print(json.dumps({"spans": out, "instrumentation_ns": inst}))
    return 0


def cli_breakdown(runs: int) -> None:
    """Time cold CLI runs from outside, and their inside from a timed copy of the CLI."""
    import subprocess

    from bench.common import ROOT, VENV_PY

    header("breakdown of one CLI run: sandbox exec --profile strict -- /bin/true (cold)")
    totals, inside = [], []
    for _ in range(runs):
        t0 = time.monotonic_ns()
        p = subprocess.run(
            [str(VENV_PY), "-m", "bench.breakdown", "--cli-child"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        totals.append((time.monotonic_ns() - t0) / 1e6)
        if p.returncode != 0:
            raise RuntimeError(f"CLI breakdown child: {p.stderr.strip()}")
        child = json.loads(p.stdout)
        inside.append([tuple(r) for r in child["spans"]])
        totals[-1] -= child["instrumentation_ns"] / 1e6
    rows = summarize(inside)  # type: ignore[arg-type]
    total = statistics.median(totals)
    last = max(s + d for _, _, s, d in rows)
    print(
        f"{runs} cold CLI runs (copies of the CLI with timers, the timers' own set-up taken "
        f"out; fork-mode server, as the CLI uses); median wall {total:.1f} ms from outside, "
        f"{last:.1f} ms from the first import to exit; interpreter start, site and "
        f"teardown: {total - last:.1f} ms; "
        f"load {loadavg()}"
    )
    keep = ("import ", "cli: ", "Supervisor.run", "stage: ", "fs.image", "server: spawn")
    sel = [(lab, s, d) for r, lab, s, d in rows if lab.startswith(keep)]
    print(table(("span (cold, one run)", "start ms", "ms"), sel))
    print("(child steps as in the library breakdown; run `python -m bench.breakdown --timeline`)")
    out = subprocess.run(
        [str(VENV_PY), "-X", "importtime", "-c", "import " + ", ".join(CLI_IMPORTS)],
        capture_output=True,
        text=True,
    ).stderr
    mods = []
    for line in out.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            if depth <= 1:
                mods.append((name.strip(), int(parts[1]) / 1e3, depth))
    mods.sort(key=lambda m: -m[1])
    print("\nheaviest imports of `sandbox exec` (python -X importtime, cumulative ms, one run):")
    print(table(("module", "ms", "depth"), mods[:12]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs (median per step)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--timeline", action="store_true", help="print every recorded span")
    ap.add_argument("--cli", type=int, default=0, metavar="N", help="also N cold CLI runs")
    ap.add_argument("--cli-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the per-run "apparmor is off" warning
    if args.cli_child:
        return cli_child()

    install()
    from sandbox import Sandbox
    from sandbox.runner.client import ForkServerClient

    header("breakdown of one warm library run: Sandbox('strict').run(['/bin/true'])")
    sb = Sandbox("strict")
    sb._client = ForkServerClient(mode="fork")  # the patches must reach the children
    sb._supervisor.client = sb._client
    try:
        for _ in range(args.warmup):
            one_run(sb, ["/bin/true"])
        runs = [one_run(sb, ["/bin/true"]) for _ in range(args.runs)]
    finally:
        sb.close()
    rows = summarize(runs)
    totals = [
        (t1 - t0) / 1e6 for recs in runs for _, lab, t0, t1 in recs if lab == "Sandbox.run (total)"
    ]
    total = statistics.median(totals)
    print(
        f"{args.runs} runs after {args.warmup} warm-up, fork-mode server; median total "
        f"{total:.2f} ms (p10 {sorted(totals)[len(totals) // 10]:.2f}, "
        f"p90 {sorted(totals)[len(totals) * 9 // 10]:.2f}); load {loadavg()}"
    )
    ph = phases(rows)
    print("\nphases (consecutive, medians of each stamp; they add up to the median total):")
    print(
        table(
            ("phase", "ms", "% of run"),
            [(name, d, f"{100 * d / total:.0f}%") for name, d in ph],
        )
    )
    for role in ("supervisor", "server", "outer", "init", "payload"):
        sel = [(lab, s, d) for r, lab, s, d in rows if r == role]
        if not sel:
            continue
        if role == "supervisor" and not args.timeline:
            skip = ("Sandbox.run (total)", "Supervisor.run", "watch loop", "stage: supervise")
            sel = [x for x in sel if not x[0].startswith(skip)]
        print(f"\n{role}: spans (start from Sandbox.run's start, duration; ms, medians)")
        print(table(("span", "start", "duration"), sel))
    top = sorted(
        [
            (lab, d)
            for r, lab, _, d in rows
            if (r in ("outer", "init", "payload") and lab not in _CONTAINERS)
            or (r == "supervisor" and lab.startswith(_LEAVES))
        ]
        + [(name, d) for name, d in ph if name.startswith(_GAPS)]
        + [("drain: stdout/stderr EOF after the status (held by outer)", _drain(rows))],
        key=lambda x: -x[1],
    )[:8]
    last = len(JOIN_ORDER) - 1
    print(f"\n(join fds, v1 tasks / v2 cgroup.procs, 0..{last}: {', '.join(JOIN_ORDER)})")
    print("\nlargest single costs (ms):")
    print(table(("span", "ms"), top))
    if args.cli:
        cli_breakdown(args.cli)
    return 0


# Supervisor spans that do not contain other spans (for the "largest costs" list).
_LEAVES = (
    "fs.",
    "cgroups",
    "codec",
    "cleanup",
    "enforce",
    "state.",
    "watch: take",
    "LaunchPlan",
)
_CONTAINERS = ("payload: step_join_cgroup",)  # its join writes are listed instead
_GAPS = ("fork ", "execve seen", "payload runs", "server: decode", "id maps")


def _drain(rows: list[tuple[str, str, float, float]]) -> float:
    """From the end of the status record to the outputs' EOF (the outer monitor's exit)."""
    status = max(s + d for _, lab, s, d in rows if lab.startswith("watch: status event"))
    outs = [s for _, lab, s, _ in rows if lab.startswith("watch: output event")]
    return max(0.0, min(outs) - status) if outs else float("nan")


if __name__ == "__main__":
    sys.exit(main())

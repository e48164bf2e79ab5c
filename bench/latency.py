"""Latency of one fully isolated run of /bin/true, beside the bare floor and the peers.

Subjects, interleaved round by round (each takes one batch per round):

- bare fork+exec+wait of /bin/true by a small C loop (``bench/c/forkexec.c``),
  twice, as two series: their disagreement is this run's noise;
- the same from Python (``os.posix_spawn`` + ``waitpid``, a separate
  ``python -I -S`` process);
- Debian's bubblewrap, ``--unshare-all --ro-bind /usr /usr --proc /proc
  --dev /dev``: the issue's literal command cannot exec on a merged-/usr
  host (the dynamic loader is /lib64/ld-linux-x86-64.so.2 and /lib64 is not
  in the box; /usr/lib64's loader is itself a symlink into /lib), so it is
  checked and reported, and timed with the two symlinks it lacks
  (``--symlink usr/lib /lib --symlink usr/lib64 /lib64``), for /usr/bin/true
  and (with /bin too) for /bin/true;
- the library, warm: ``Sandbox("strict").run(["/bin/true"])`` in this
  process after a few runs (all namespaces, overlay root, cgroup leaf with
  limits, capabilities dropped, Landlock, seccomp), once per launcher the
  installed library offers (``Sandbox(..., launcher=...)``);
- the CLI, ``.venv/bin/sandbox exec --profile strict -- /bin/true`` (once per
  ``--launcher`` it offers), beside ``.venv/bin/python -I -S -c pass`` (the
  target's floor) and ``.venv/bin/python -c pass`` (the interpreter as the
  CLI's script starts it: with the venv's site and the editable install's
  path hook);
- the floor: ``bench/c/floor.c``'s "all layers" run (strict's steps done by a
  resident C launcher, the kernel's own cost), and the same with the network
  namespace and the cgroup leaf made ahead of the run, so the distance from
  it is a ratio within the same rounds;
- the peers found on PATH or under ``$SANDBOX_BENCH_PEERS`` (``bench.peers``:
  isolate, nsjail, runc, crun), each checked first; one that cannot run here
  is reported with the reason and the rest goes on.

Every subject's exit status is checked on every run. Each isolating subject
also runs the static probe ``bench/c/isoprobe.c`` once, and the section
prints what isolation it really had (namespaces, uid, capabilities,
no_new_privs, seccomp, read-only root, network interfaces).
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import peers as peers_mod
from bench import strictfilter
from bench.common import (
    ROOT,
    VENV_PY,
    Guarded,
    Series,
    Target,
    check_command,
    cli_exec,
    cli_launchers,
    header,
    interleave,
    launcher_label,
    library_launchers,
    ms,
    noise_line,
    open_sandbox,
    ratio,
    resolved,
    run_forkexec,
    server_pid,
    table,
)

BWRAP = "/usr/bin/bwrap"
BWRAP_ISSUE = [BWRAP, "--unshare-all", "--ro-bind", "/usr", "/usr", "--proc", "/proc"]
BWRAP_ISSUE += ["--dev", "/dev", "/usr/bin/true"]
BWRAP_LIBS = ["--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64"]
BWRAP_USR = [*BWRAP_ISSUE[:-1], *BWRAP_LIBS, "/usr/bin/true"]
BWRAP_BIN = [*BWRAP_USR[:-1], "--symlink", "usr/bin", "/bin", "/bin/true"]
PYSPAWN = ROOT / "bench" / "pyspawn.py"


def _lib_batch(sb: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = sb.run(["/bin/true"])
        out.append(time.monotonic() - t0)
        if r.verdict.value != "OK":
            raise RuntimeError(f"library run: {r.verdict} {r.message}")
    return out


def _py_batch(n: int) -> list[float]:
    p = subprocess.run(
        [str(VENV_PY), "-I", "-S", str(PYSPAWN), str(n), "/bin/true"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(x) / 1e9 for x in p.stdout.split()]


def _floor_batch(
    exe: Path, strict: strictfilter.StrictFilter | None, row: str, n: int
) -> list[float]:
    """n runs of a floor harness row (C, kernel only: "all", "all:ahead"), as seconds each."""
    argv = [str(exe), "-R", "-o", row, "-n", str(n), "-r", "1"]
    if strict:
        argv += ["-S", str(strict.numbers), "-B", str(strict.bpf)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    out = [
        int(f[2]) / 1e9
        for f in (ln.split("\t") for ln in p.stdout.splitlines())
        if f[0] == "sample"
    ]
    if p.returncode != 0 or not out:
        failed = [ln for ln in p.stdout.splitlines() if "failed" in ln] or [p.stderr.strip()]
        raise RuntimeError(f"floor harness: {failed[-1]}")
    return out


def _pcts(s: Series) -> str:
    return f"{ms(s.median):.2f} / {ms(s.pct(90)):.2f} / {ms(s.pct(99)):.2f}"


def run(exe: dict[str, Path], rounds: int, targets: list[Target], results: dict[str, Any]) -> None:
    """Measure, print the table and record the latency targets."""
    header("latency: one run of /bin/true (medians; batches interleaved round by round)")
    fe = exe["forkexec"]
    probe = exe["isoprobe"]
    tmp = Path(tempfile.mkdtemp(prefix="sbxbench-"))
    notes: list[str] = []  # one line per subject left out, and why
    bare = Series("bare C fork+exec+wait /bin/true")
    bare2 = Series("bare C fork+exec+wait /bin/true (again: noise)")
    py = Series("Python posix_spawn+waitpid /bin/true")
    bw_usr = Series("bwrap --unshare-all ... /usr/bin/true (+/lib, /lib64)")
    bw_bin = Series("bwrap --unshare-all ... /bin/true (+/lib, /lib64, /bin)")
    pyss = Series("python -I -S -c pass")
    pysite = Series("python -c pass (the venv's site, as the CLI starts)")
    floor = Series("floor: all layers in C, kernel only (bench/c/floor.c)")
    floor_ahead = Series("floor, net ns and cgroup leaf made ahead of the run")

    def fork(argv: list[str], n: int) -> Callable[[], list[float]]:
        return lambda: run_forkexec(fe, argv, n)

    issue_cmd = check_command(BWRAP_ISSUE)
    bwrap_ok = True
    for argv in (BWRAP_USR, BWRAP_BIN):
        why = check_command(argv)
        if why:
            bwrap_ok = False
            notes.append(f"bwrap: cannot run here ({why}): the bwrap targets are n/a")
            break

    # The probe: the host's own view, then each subject's.
    _, out, _ = peers_mod.run_cmd([str(probe)])
    host = peers_mod.parse_probe(out)
    isolation: list[tuple[str, str]] = [("bare fork+exec (the host's view)", "host namespaces")]
    if bwrap_ok:
        rc, out, _ = peers_mod.run_cmd(
            [*BWRAP_USR[:-1], "--ro-bind", str(probe), "/isoprobe", "/isoprobe"]
        )
        isolation.append(
            (
                bw_usr.name,
                peers_mod.describe(peers_mod.parse_probe(out), host) if rc == 0 else "probe failed",
            )
        )

    exported = strictfilter.export(tmp)
    strict = None if isinstance(exported, str) else exported
    if isinstance(exported, str):
        notes.append(
            f"strict's filter not exported for the peers ({exported}): peers without seccomp"
        )
    found, missing = peers_mod.discover(tmp, probe, strict)
    peers_mod.probe_all(found, host)
    notes += [f"peer {line}" for line in missing]

    logging.disable(logging.WARNING)  # "apparmor is off" at every run on this host
    libs: list[tuple[str | None, Any, Series]] = []
    refused: list[tuple[str, str]] = []  # our own subjects that cannot run: NOT met
    for launcher in library_launchers():
        label = launcher_label(launcher)
        try:
            sb = open_sandbox(launcher)
        except Exception as e:  # any refusal is reported, the rest goes on
            notes.append(f"library, launcher {label}: cannot start ({e})")
            refused.append((f"library warm [{label}]", f"cannot start: {e}"))
            continue
        try:
            _lib_batch(sb, 5)  # warm: fork server up, caches filled
            r = sb.run([str(probe)])
            seen = peers_mod.parse_probe((r.stdout or b"").decode(errors="replace"))
            s = Series(f"library warm: Sandbox('strict').run(['/bin/true']) [{label}]")
            isolation.append((s.name, peers_mod.describe(seen, host)))
            libs.append((launcher, sb, s))
        except Exception as e:
            notes.append(f"library, launcher {label}: cannot run ({e})")
            refused.append((f"library warm [{label}]", f"cannot run: {e}"))
            sb.close()
    clis: list[tuple[str | None, Series]] = []
    for launcher in cli_launchers():
        label = launcher_label(launcher)
        argv = [*cli_exec(launcher), "--profile", "strict", "--", "/bin/true"]
        why = check_command(argv)
        if why:
            notes.append(f"CLI, launcher {label}: cannot run ({why})")
            refused.append((f"CLI [{label}]", f"cannot run: {why}"))
            continue
        clis.append(
            (launcher, Series(f"CLI: sandbox exec --profile strict -- /bin/true [{label}]"))
        )
    for p in found:
        isolation.append((p.name, p.isolation))

    subjects: list[Guarded] = [
        Guarded(bare, fork(["/bin/true"], 200)),
        Guarded(py, lambda: _py_batch(200)),
        *([Guarded(bw_usr, fork(BWRAP_USR, 40))] if bwrap_ok else []),
        *[Guarded(s, functools.partial(_lib_batch, sb, 15)) for _, sb, s in libs],
        Guarded(bare2, fork(["/bin/true"], 200)),
        *([Guarded(bw_bin, fork(BWRAP_BIN, 40))] if bwrap_ok else []),
        Guarded(pyss, fork([str(VENV_PY), "-I", "-S", "-c", "pass"], 20)),
        Guarded(pysite, fork([str(VENV_PY), "-c", "pass"], 10)),
        Guarded(floor, functools.partial(_floor_batch, exe["floor"], strict, "all", 20)),
        Guarded(
            floor_ahead, functools.partial(_floor_batch, exe["floor"], strict, "all:ahead", 20)
        ),
        *[
            Guarded(s, fork([*cli_exec(launcher), "--profile", "strict", "--", "/bin/true"], 3))
            for launcher, s in clis
        ],
    ]
    peer_series: list[tuple[peers_mod.Peer, Guarded]] = []
    for p in found:
        g = Guarded(Series(p.name, note=p.note), fork(p.argv, p.batch))
        subjects.append(g)
        peer_series.append((p, g))
    pids = []
    try:
        interleave([(g.series, g) for g in subjects], rounds)
        pids = [server_pid(sb) for _, sb, _ in libs]
    finally:
        for _, sb, _ in libs:
            sb.close()
        logging.disable(logging.NOTSET)
        peers_mod.teardown(found)
        shutil.rmtree(tmp, ignore_errors=True)
    broke: dict[str, str] = {}  # our own subjects that failed: their targets read NOT met
    for g in subjects:
        if g.failed:
            notes.append(f"{g.series.name}: failed during the rounds, left out: {g.failed}")
            g.series.samples.clear()
            broke[g.series.name] = g.failed

    rows = []
    for g in subjects:
        s = g.series
        if not s.samples:
            continue
        rows.append(
            (
                s.name,
                ms(s.median),
                ms(s.pct(10)),
                ms(s.pct(90)),
                ms(s.pct(99)),
                len(s.samples),
                ratio(s.median, bare.median),
                ratio(s.median, bw_usr.median) if bw_usr.samples else float("nan"),
            )
        )
    print(table(("subject", "median ms", "p10", "p90", "p99", "n", "x bare C", "x bwrap"), rows))
    print(f"bwrap, the issue's literal command: {issue_cmd or 'runs'} (not timed when failing)")
    for line in notes:
        print(line)
    for p, _ in peer_series:
        if p.note:
            print(f"{p.name}: {p.note}")
    print("\nisolation each subject showed (bench/c/isoprobe run in its place):")
    print(table(("subject", "seen inside"), isolation))
    print(
        f"binaries: python {resolved(VENV_PY)}; bwrap {resolved(BWRAP)}; "
        f"library fork server pids {pids or '-'}"
    )
    print(noise_line(bare, bare2))

    results["latency"] = {
        g.series.name: {
            "median_ms": ms(g.series.median),
            "p10_ms": ms(g.series.pct(10)),
            "p90_ms": ms(g.series.pct(90)),
            "p99_ms": ms(g.series.pct(99)),
            "n": len(g.series.samples),
        }
        for g in subjects
        if g.series.samples
    }
    results["latency_notes"] = notes
    results["isolation"] = dict(isolation)

    targets += [Target(name, "runs", "refused", False, why[:200]) for name, why in refused]
    for launcher, _, lib in libs:
        tag = f" [{launcher_label(launcher)}]"
        if not lib.samples:
            targets.append(Target("library warm" + tag, "runs", "failed", False, broke[lib.name]))
            continue
        lib_bw = ratio(lib.median, bw_usr.median)
        lib_bare = ratio(lib.median, bare.median)
        targets += [
            Target(
                "library warm vs bwrap" + tag,
                "<= 0.75x",
                f"{lib_bw:.2f}x ({ms(lib.median):.1f} vs {ms(bw_usr.median):.1f} ms)"
                if bw_usr.samples
                else "bwrap not measured",
                lib_bw <= 0.75 if bw_usr.samples else None,
                f"median/p90/p99 ms: library {_pcts(lib)}, bwrap {_pcts(bw_usr)}"
                + (
                    f"; the floor (C, kernel only) {ms(floor.median):.2f} ms = "
                    f"{ratio(floor.median, bw_usr.median):.2f}x bwrap "
                    f"({ratio(floor_ahead.median, bw_usr.median):.2f}x with the net ns and "
                    f"leaf made ahead), library {ratio(lib.median, floor.median):.1f}x the floor"
                    if floor.samples and bw_usr.samples
                    else ""
                ),
            ),
            Target(
                "library warm vs bare fork+exec" + tag,
                "<= 5x",
                f"{lib_bare:.1f}x ({ms(lib.median):.1f} vs {ms(bare.median):.2f} ms)",
                lib_bare <= 5,
                f"median/p90/p99 ms: bare {_pcts(bare)}",
            ),
        ]
    runcs = [g.series for p, g in peer_series if p.family == "runc" and g.series.samples]
    runc = min(runcs, key=lambda s: s.median) if runcs else None
    runc_why = next((n for n in notes if n.startswith("peer runc")), "peer runc: not measured")
    for launcher, cli in clis:
        tag = f" [{launcher_label(launcher)}]"
        if not cli.samples:
            targets.append(Target("CLI" + tag, "runs", "failed", False, broke[cli.name]))
            continue
        cli_py = ratio(cli.median, pyss.median)
        targets += [
            Target(
                "CLI vs python -I -S -c pass" + tag,
                "<= 3x",
                f"{cli_py:.1f}x ({ms(cli.median):.0f} vs {ms(pyss.median):.1f} ms)",
                cli_py <= 3,
                f"p90 {ms(cli.pct(90)):.0f} ms, p99 {ms(cli.pct(99)):.0f} ms",
            ),
            Target(
                "CLI vs runc" + tag,
                "below runc",
                f"{ms(cli.median):.0f} ms vs "
                + (f"{ms(runc.median):.1f} ms" if runc else "runc not measured"),
                (cli.median < runc.median) if runc else None,
                f"the faster runc row: {runc.name}" if runc else runc_why.removeprefix("peer "),
            ),
        ]

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
  limits, capabilities dropped, Landlock, seccomp);
- the CLI, ``.venv/bin/sandbox exec --profile strict -- /bin/true``, beside
  ``.venv/bin/python -I -S -c pass`` (the target's floor) and
  ``.venv/bin/python -c pass`` (the interpreter as the CLI's script starts it:
  with the venv's site and the editable install's path hook);
- nsjail, isolate, runc, crun when installed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    VENV_PY,
    VENV_SANDBOX,
    Series,
    Target,
    check_command,
    header,
    interleave,
    ms,
    noise_line,
    ratio,
    resolved,
    run_forkexec,
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


def _peers(tmp: Path) -> tuple[list[tuple[str, list[str], int]], list[str]]:
    """(name, argv, batch) of the peers installed here, and a line per peer that is not."""
    rows, missing = [], []
    nsjail = shutil.which("nsjail")
    if nsjail:
        rows.append(
            (
                "nsjail -Mo (all ns, ro /usr)",
                [nsjail, "-Mo", "-q", "--chroot", "/", "--", "/usr/bin/true"],
                20,
            )
        )
    else:
        missing.append("nsjail: not installed")
    isolate = shutil.which("isolate")
    if isolate:
        rows.append(
            (
                "isolate --run (box 0; init/cleanup not timed)",
                [isolate, "--box-id=0", "--run", "--", "/usr/bin/true"],
                20,
            )
        )
        subprocess.run([isolate, "--box-id=0", "--init"], capture_output=True)
    else:
        missing.append("isolate: not installed")
    for name in ("runc", "crun"):
        exe = shutil.which(name)
        if not exe:
            missing.append(f"{name}: not installed (the issue quotes runc 26 ms, crun 10.7 ms)")
            continue
        bundle = _oci_bundle(exe, tmp / name)
        if bundle is None:
            missing.append(f"{name}: installed, but `{name} spec` failed: not measured")
            continue
        rows.append(
            (
                f"{name} run (OCI bundle, ro /usr)",
                [exe, "run", "--bundle", str(bundle), f"sbxbench-{os.getpid()}"],
                5,
            )
        )
    return rows, missing


def _oci_bundle(exe: str, bundle: Path) -> Path | None:
    """A minimal OCI bundle: empty root, /usr bound read-only, /usr/bin/true."""
    bundle.mkdir(parents=True)
    (bundle / "rootfs").mkdir()
    os.symlink("usr/lib64", bundle / "rootfs" / "lib64")
    if subprocess.run([exe, "spec"], cwd=bundle, capture_output=True).returncode != 0:
        return None
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/usr/bin/true"]
    cfg["mounts"].append(
        {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}
    )
    (bundle / "config.json").write_text(json.dumps(cfg))
    return bundle


def run(exe: dict[str, Path], rounds: int, targets: list[Target], results: dict[str, Any]) -> None:
    """Measure, print the table and record the latency targets."""
    from sandbox import Sandbox

    header("latency: one run of /bin/true (medians; batches interleaved round by round)")
    fe = exe["forkexec"]
    tmp = Path(tempfile.mkdtemp(prefix="sbxbench-"))
    bare = Series("bare C fork+exec+wait /bin/true")
    bare2 = Series("bare C fork+exec+wait /bin/true (again: noise)")
    py = Series("Python posix_spawn+waitpid /bin/true")
    bw_usr = Series("bwrap --unshare-all ... /usr/bin/true (+/lib, /lib64)")
    bw_bin = Series("bwrap --unshare-all ... /bin/true (+/lib, /lib64, /bin)")
    lib = Series("library warm: Sandbox('strict').run(['/bin/true'])")
    cli = Series("CLI: sandbox exec --profile strict -- /bin/true")
    pyss = Series("python -I -S -c pass")
    pysite = Series("python -c pass (the venv's site, as the CLI starts)")

    def fork(argv: list[str], n: int) -> Callable[[], list[float]]:
        return lambda: run_forkexec(fe, argv, n)

    issue_cmd = check_command(BWRAP_ISSUE)
    for argv in (BWRAP_USR, BWRAP_BIN, [str(VENV_SANDBOX), "exec", "--", "/bin/true"]):
        why = check_command(argv)
        if why:
            raise RuntimeError(f"{' '.join(argv)}: {why}")
    peers, missing = _peers(tmp)
    peer_series = [(Series(name), fork(argv, n)) for name, argv, n in peers]

    logging.disable(logging.WARNING)  # "apparmor is off" at every run on this host
    sb = Sandbox("strict")
    try:
        _lib_batch(sb, 5)  # warm: fork server up, caches filled
        subjects: list[tuple[Series, Callable[[], list[float]]]] = [
            (bare, fork(["/bin/true"], 200)),
            (py, lambda: _py_batch(200)),
            (bw_usr, fork(BWRAP_USR, 40)),
            (lib, lambda: _lib_batch(sb, 15)),
            (bare2, fork(["/bin/true"], 200)),
            (bw_bin, fork(BWRAP_BIN, 40)),
            (pyss, fork([str(VENV_PY), "-I", "-S", "-c", "pass"], 20)),
            (pysite, fork([str(VENV_PY), "-c", "pass"], 10)),
            (cli, fork([str(VENV_SANDBOX), "exec", "--profile", "strict", "--", "/bin/true"], 3)),
            *peer_series,
        ]
        interleave(subjects, rounds)
        server_pid = sb._client.server_pid
    finally:
        sb.close()
        logging.disable(logging.NOTSET)
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for s, _ in subjects:
        rows.append(
            (
                s.name,
                ms(s.median),
                f"{ms(s.pct(10)):.2f}-{ms(s.pct(90)):.2f}",
                len(s.samples),
                ratio(s.median, bare.median),
                ratio(s.median, bw_usr.median),
            )
        )
    print(table(("subject", "median ms", "p10-p90 ms", "n", "x bare C", "x bwrap"), rows))
    print(f"bwrap, the issue's literal command: {issue_cmd or 'runs'} (not timed when failing)")
    for line in missing:
        print(f"peer {line}")
    print(
        f"binaries: python {resolved(VENV_PY)}; sandbox CLI {VENV_SANDBOX} "
        f"(#!{resolved(VENV_PY)}); bwrap {resolved(BWRAP)}; library fork server pid "
        f"{server_pid} (exec mode)"
    )
    print(noise_line(bare, bare2))

    lib_bw = ratio(lib.median, bw_usr.median)
    lib_bare = ratio(lib.median, bare.median)
    cli_py = ratio(cli.median, pyss.median)
    results["latency"] = {
        s.name: {"median_ms": ms(s.median), "n": len(s.samples)} for s, _ in subjects
    }
    targets += [
        Target(
            "library warm vs bwrap",
            "<= 0.75x",
            f"{lib_bw:.2f}x ({ms(lib.median):.1f} vs {ms(bw_usr.median):.1f} ms)",
            lib_bw <= 0.75,
        ),
        Target(
            "library warm vs bare fork+exec",
            "<= 5x",
            f"{lib_bare:.1f}x ({ms(lib.median):.1f} vs {ms(bare.median):.2f} ms)",
            lib_bare <= 5,
        ),
        Target(
            "CLI vs python -I -S -c pass",
            "<= 3x",
            f"{cli_py:.1f}x ({ms(cli.median):.0f} vs {ms(pyss.median):.1f} ms)",
            cli_py <= 3,
        ),
    ]
    runc = next((s for s, _ in peer_series if s.name.startswith("runc")), None)
    targets.append(
        Target(
            "CLI vs runc",
            "below runc",
            f"{ms(cli.median):.0f} ms vs "
            + (f"{ms(runc.median):.0f} ms" if runc else "runc not installed"),
            (cli.median < runc.median) if runc else None,
            "" if runc else "issue's figure for runc here: 26 ms",
        )
    )

"""Shared helpers of the benchmarks: building the C harnesses, statistics, tables.

Every benchmark measures its baselines in the same process run as the
subject, interleaved round by round (so a burst of load hits both), and
prints its own noise: the same baseline measured twice, as two series.
Times are CLOCK_MONOTONIC (``time.monotonic_ns``), the clock the C
harnesses read too.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "bench" / "c"
BUILD = ROOT / "bench" / "build"
VENV_PY = ROOT / ".venv" / "bin" / "python"
VENV_SANDBOX = ROOT / ".venv" / "bin" / "sandbox"


def build_flags(src: Path) -> list[str]:
    """Extra gcc flags a source asks for on a ``bench-build: FLAGS`` line (e.g. -static)."""
    for line in src.read_text().splitlines()[:40]:
        if "bench-build:" in line:
            return line.split("bench-build:", 1)[1].replace("*/", "").split()
    return []


def build_c() -> dict[str, Path]:
    """Compile bench/c/*.c into bench/build (again only when a source is newer)."""
    BUILD.mkdir(exist_ok=True)
    out: dict[str, Path] = {}
    for src in sorted(CSRC.glob("*.c")):
        exe = BUILD / src.stem
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(
                [
                    "gcc",
                    "-O2",
                    "-Wall",
                    "-Wextra",
                    "-Werror",
                    *build_flags(src),
                    "-o",
                    str(exe),
                    str(src),
                ],
                check=True,
            )
        out[src.stem] = exe
    return out


def resolved(path: str | os.PathLike[str]) -> str:
    """The binary a path really runs (shims and symlinks followed)."""
    found = shutil.which(os.fspath(path)) or os.fspath(path)
    return os.path.realpath(found)


def loadavg() -> str:
    """/proc/loadavg's three averages and runnable/total."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:4])


def machine() -> dict[str, str]:
    """What the figures were taken on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{int(mem) >> 20} GiB",
        "kernel": os.uname().release,
        "python": f"{resolved(VENV_PY)} ({sys.version.split()[0]})",
        "load": loadavg(),
    }


@dataclass
class Series:
    """Samples of one subject (seconds, or any unit: ``unit`` says which)."""

    name: str
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    def pct(self, p: float) -> float:
        """The p-th percentile (nearest rank)."""
        if not self.samples:
            return float("nan")
        s = sorted(self.samples)
        return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]

    @property
    def cv(self) -> float:
        """Coefficient of variation (stdev / mean)."""
        if len(self.samples) < 2:
            return float("nan")
        return statistics.stdev(self.samples) / statistics.fmean(self.samples)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def noise_line(a: Series, b: Series) -> str:
    """Bare vs bare: how far two series of the same thing disagree in this run."""
    r = ratio(a.median, b.median)
    return (
        f"noise: {a.name} measured twice, medians differ by {abs(r - 1) * 100:.1f}% "
        f"(ratio {r:.3f}); p90/p10 spread {ratio(a.pct(90), a.pct(10)):.2f}x"
    )


def interleave(subjects: Sequence[tuple[Series, Callable[[], list[float]]]], rounds: int) -> None:
    """Round by round, each subject takes one batch; the order rotates each round."""
    for r in range(rounds):
        k = r % len(subjects)
        for series, batch in [*subjects[k:], *subjects[:k]]:
            series.samples += batch()


class Guarded:
    """A subject's batch that stops the subject (with the reason) instead of the bench."""

    def __init__(self, series: Series, batch: Callable[[], list[float]]) -> None:
        self.series, self.batch, self.failed = series, batch, ""

    def __call__(self) -> list[float]:
        if self.failed:
            return []
        try:
            return self.batch()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self.failed = " ".join(str(e).split())[:300] or repr(e)
            return []


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table (right-aligned numbers)."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c != c:  # nan
            return "-"
        return f"{c:.3f}" if abs(c) < 10 else f"{c:.1f}"
    return str(c)


def ms(x: float) -> float:
    return x * 1e3


def run_forkexec(exe: Path, argv: Sequence[str], n: int, quiet: bool = True) -> list[float]:
    """n timed fork+exec+wait runs of argv by the C harness (seconds each)."""
    cmd = [str(exe), *(["-q"] if quiet else []), "-n", str(n), "--", *argv]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{p.stderr.strip() or f'exit {p.returncode}'}: {' '.join(argv)}")
    return [int(x) / 1e9 for x in p.stdout.split()]


def check_command(argv: Sequence[str]) -> str | None:
    """None when argv runs and exits 0, else why not (first line of its stderr)."""
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    except OSError as e:
        return str(e)
    if p.returncode == 0:
        return None
    err = (p.stderr.strip().splitlines() or [""])[-1]
    return f"exit {p.returncode}: {err}"


@dataclass
class Target:
    """One target of issue 7, measured."""

    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measurable here, or not decidable from this run
    note: str = ""
    undecided: str = "n/a"  # the status shown when met is None


def targets_table(targets: Sequence[Target]) -> str:
    rows = [
        (
            t.name,
            t.goal,
            t.measured,
            t.undecided if t.met is None else ("met" if t.met else "NOT met"),
            t.note,
        )
        for t in targets
    ]
    return table(("target", "goal", "measured", "status", "note"), rows)


def header(title: str) -> None:
    print(f"\n== {title} ==  (load {loadavg()})", flush=True)


# ------------------------------------------------------------- launchers ---
# The library and the CLI may offer a choice of launcher (issue 12: "native",
# the C launcher, and "python", the reference). The bench passes the option
# through only when the installed library accepts it, and measures each.

LAUNCHERS = ("native", "python")


def library_launchers() -> list[str | None]:
    """The launchers ``Sandbox(..., launcher=...)`` accepts here; [None] when it has no choice."""
    import inspect

    import sandbox

    cls: Any = sandbox.Sandbox
    if "launcher" not in inspect.signature(cls).parameters:
        return [None]
    return list(LAUNCHERS)


def cli_launchers() -> list[str | None]:
    """The launchers ``sandbox exec --launcher`` accepts here; [None] when it has no option."""
    p = subprocess.run(
        [str(VENV_SANDBOX), "exec", "--help"], capture_output=True, text=True, timeout=120
    )
    return list(LAUNCHERS) if "--launcher" in p.stdout else [None]


def launcher_label(launcher: str | None) -> str:
    return launcher or "python, the only one"


def open_sandbox(launcher: str | None, profile: str = "strict") -> Any:
    """A ``Sandbox`` with this launcher (the library's default when None)."""
    import sandbox

    cls: Any = sandbox.Sandbox
    return cls(profile) if launcher is None else cls(profile, launcher=launcher)


def cli_exec(launcher: str | None) -> list[str]:
    """``sandbox exec`` with this launcher, up to the profile option."""
    return [str(VENV_SANDBOX), "exec", *(["--launcher", launcher] if launcher else [])]


def server_pid(sb: Any) -> int:
    """The fork server's pid of a Sandbox, 0 when it has none (another launcher)."""
    client = getattr(sb, "_client", None)
    return int(getattr(client, "server_pid", 0) or 0)

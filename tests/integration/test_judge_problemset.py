"""A small contest, judged twice: through the library and through the isolate front end.

One problem ("sum": read n, then n integers, print their sum) with two tests,
and submissions in C, C++, Python and Java (where the JDK is installed), each
with a known verdict: accepted, wrong answer, time limit, runtime error,
memory limit, compilation error. Sources are compiled inside the sandbox
(judge-compile; isolate's box with -p), run under the judge profiles (or
isolate's limits), the output compared with the expected one. The figures are
checked where they do not depend on load: a time limit's CPU figure is at
least the limit and at most a poll and a tick past it, a memory limit's peak
at most the limit, an accepted run's figures positive and small.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox import Sandbox, Verdict
from sandbox.runner.watch import POLL_INTERVAL

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]
HAS_JDK = os.path.exists("/usr/bin/javac") and os.path.exists("/usr/bin/java")
HAS_GXX = shutil.which("g++") is not None
TICK = 0.01
CPU_LIMIT = 0.5
MEMORY = 64 << 20

TESTS = [("3\n1 2 3\n", "6\n"), ("4\n1000000000 1000000000 1000000000 -7\n", "2999999993\n")]

C_OK = r"""
#include <stdio.h>
int main(void) { int n; long long s = 0, x; scanf("%d", &n);
  while (n--) { scanf("%lld", &x); s += x; } printf("%lld\n", s); return 0; }
"""
C_WA = r"""
#include <stdio.h>
int main(void) { int n, s = 0, x; scanf("%d", &n);   /* int: overflows on test 2 */
  while (n--) { scanf("%d", &x); s += x; } printf("%d\n", s); return 0; }
"""
C_MLE = r"""
#include <stdlib.h>
#include <string.h>
int main(void) { for (;;) { char *p = malloc(1 << 20); if (!p) return 3; memset(p, 7, 1 << 20); } }
"""
C_CE = "int main(void) { return missing; }\n"
CPP_OK = r"""
#include <iostream>
#include <numeric>
#include <vector>
int main() { int n; std::cin >> n; std::vector<long long> v(n);
  for (auto &x : v) std::cin >> x; std::cout << std::accumulate(v.begin(), v.end(), 0LL) << '\n'; }
"""
CPP_TLE = r"""
#include <iostream>
int main() { volatile unsigned long i = 0; for (;;) ++i; }
"""
PY_OK = "n = int(input())\nprint(sum(map(int, input().split())))\n"
PY_RE = "n = int(input())\nprint(sum(map(int, input().split())) // 0)\n"
JAVA_OK = """
import java.util.*;
public class Main { public static void main(String[] a) { Scanner in = new Scanner(System.in);
  int n = in.nextInt(); long s = 0; for (int i = 0; i < n; i++) s += in.nextLong();
  System.out.println(s); } }
"""
JAVA_RE = """
public class Main { public static void main(String[] a) { int[] x = new int[1]; x[2] = 0; } }
"""


@dataclass(frozen=True)
class Submission:
    name: str
    lang: str
    source: str
    verdict: str  # AC, WA, TLE, RE, MLE, CE


SUBMISSIONS = [
    Submission("c-ok", "c", C_OK, "AC"),
    Submission("c-wa", "c", C_WA, "WA"),
    Submission("c-mle", "c", C_MLE, "MLE"),
    Submission("c-ce", "c", C_CE, "CE"),
    Submission("py-ok", "python", PY_OK, "AC"),
    Submission("py-re", "python", PY_RE, "RE"),
]
if HAS_GXX:
    SUBMISSIONS += [
        Submission("cpp-ok", "c++", CPP_OK, "AC"),
        Submission("cpp-tle", "c++", CPP_TLE, "TLE"),
    ]
if HAS_JDK:
    SUBMISSIONS += [
        Submission("java-ok", "java", JAVA_OK, "AC"),
        Submission("java-re", "java", JAVA_RE, "RE"),
    ]

SOURCE = {"c": "sol.c", "c++": "sol.cpp", "python": "sol.py", "java": "Main.java"}
COMPILE = {
    "c": ["/usr/bin/gcc", "-O2", "-o", "sol", "sol.c", "-lm"],
    "c++": ["/usr/bin/g++", "-O2", "-o", "sol", "sol.cpp"],
    "java": ["/usr/bin/javac", "-d", ".", "Main.java"],
}
OUTPUT = {"c": "sol", "c++": "sol", "java": "Main.class"}
RUN = {
    "c": ["./sol"],
    "c++": ["./sol"],
    "python": ["/usr/bin/python3", "sol.py"],
    "java": ["/usr/bin/java", "-Xmx48m", "-Xss8m", "-cp", ".", "Main"],
}
PROFILE = {"c": "judge", "c++": "judge", "python": "judge-python", "java": "judge-java"}


def check_figures(verdict: str, cpu: float | None, peak: int | None, wall: float | None) -> None:
    """What a judge shows beside the verdict, within bounds that do not depend on load."""
    assert cpu is not None and wall is not None and peak is not None
    if verdict == "TLE":
        assert CPU_LIMIT <= cpu <= CPU_LIMIT + POLL_INTERVAL + 2 * TICK, cpu
    if verdict == "MLE":
        assert peak <= MEMORY, peak
    if verdict == "AC":
        assert 0 <= cpu < CPU_LIMIT and 0 < peak < MEMORY


# --- through the library ------------------------------------------------------------------


def judge_library(sub: Submission, tmp: Path) -> list[str]:
    """Compile (inside judge-compile), then run every test; one verdict per test."""
    files = {SOURCE[sub.lang]: sub.source.encode()}
    if sub.lang in COMPILE:
        with Sandbox("judge-compile") as sb:
            c = sb.run(
                ["/bin/sh", "-c", 'cd /box && exec "$@"', "sh", *COMPILE[sub.lang]],
                files=files,
                collect=[OUTPUT[sub.lang]],
            )
        if c.verdict is not Verdict.OK:
            assert c.verdict is Verdict.RUNTIME_ERROR and c.stderr, c
            return ["CE"]
        built = c.files[OUTPUT[sub.lang]]
        if sub.lang == "java":
            files = {"Main.class": built}
            argv = RUN["java"]
        else:
            prog = tmp / f"{sub.name}.bin"
            prog.write_bytes(built)
            prog.chmod(0o755)
            files, argv = {}, [str(prog)]
    else:
        argv = RUN[sub.lang]
    verdicts = []
    java = sub.lang == "java"
    with Sandbox(PROFILE[sub.lang]) as sb:
        for given, want in TESTS:
            r = sb.run(
                argv,
                files=files,
                stdin=given.encode(),
                limits={
                    "cpu_time": CPU_LIMIT * (4 if java else 1),
                    "wall_time": 10,
                    "memory": MEMORY * (4 if java else 1),
                },
            )
            v = {
                Verdict.TIME_LIMIT: "TLE",
                Verdict.MEMORY_LIMIT: "MLE",
                Verdict.RUNTIME_ERROR: "RE",
            }.get(r.verdict, "AC" if r.stdout == want.encode() else "WA")
            assert r.verdict in (
                Verdict.OK,
                Verdict.TIME_LIMIT,
                Verdict.MEMORY_LIMIT,
                Verdict.RUNTIME_ERROR,
            ), r
            if not java:
                check_figures(v, r.usage.cpu_time, r.usage.memory_peak, r.usage.wall_time)
            verdicts.append(v)
    return verdicts


@pytest.mark.parametrize("sub", SUBMISSIONS, ids=lambda s: s.name)
def test_library_judges_the_contest(sub, tmp_path):
    verdicts = judge_library(sub, tmp_path)
    want = ["CE"] if sub.verdict == "CE" else None
    if want:
        assert verdicts == want
    elif sub.verdict == "WA":
        assert verdicts == ["AC", "WA"]  # the int overflow shows on test 2 only
    else:
        assert verdicts == [sub.verdict] * len(TESTS), verdicts


# --- through the isolate front end ----------------------------------------------------------

ISOLATE = [sys.executable, "-m", "sandbox.isolate.main"]


def meta_of(path: Path) -> dict[str, str]:
    return dict(line.split(":", 1) for line in path.read_text().splitlines())


def judge_isolate(sub: Submission, box_id: int) -> list[str]:
    """As a CMS/Judge0-style judge: init, compile in the box, run each test, cleanup."""
    base = ["--cg", "-b", str(box_id)]
    box = Path(subprocess.check_output([*ISOLATE, *base, "--init"], text=True).strip())
    try:
        (box / "box" / SOURCE[sub.lang]).write_text(sub.source)
        if sub.lang in COMPILE:
            r = subprocess.run(
                [
                    *ISOLATE,
                    *base,
                    "-M",
                    str(box / "compile.meta"),
                    "-p",
                    "-t",
                    "30",
                    "-w",
                    "60",
                    "--cg-mem=1048576",
                    "-E",
                    "PATH=/usr/bin:/bin",
                    "-r",
                    "compile.err",
                    "--run",
                    "--",
                    *COMPILE[sub.lang],
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode in (0, 1), r.stderr
            if r.returncode == 1:
                assert meta_of(box / "compile.meta")["status"] == "RE"
                return ["CE"]
        java = sub.lang == "java"
        verdicts = []
        for i, (given, want) in enumerate(TESTS):
            (box / "box" / f"in{i}").write_text(given)
            limit = CPU_LIMIT * (4 if java else 1)
            mem = MEMORY * (4 if java else 1)
            r = subprocess.run(
                [
                    *ISOLATE,
                    *base,
                    "-M",
                    str(box / f"run{i}.meta"),
                    "-t",
                    str(limit),
                    "-w",
                    "10",
                    f"--cg-mem={mem // 1024}",
                    *(["-p"] if java else []),
                    "-i",
                    f"in{i}",
                    "-o",
                    f"out{i}",
                    "--run",
                    "--",
                    *RUN[sub.lang],
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode in (0, 1), r.stderr
            meta = meta_of(box / f"run{i}.meta")
            status = meta.get("status")
            if status == "TO":
                v = "TLE"
            elif status == "SG" and "cg-oom-killed" in meta:
                v = "MLE"
            elif status in ("SG", "RE"):
                v = "RE"
            else:
                v = "AC" if (box / "box" / f"out{i}").read_text() == want else "WA"
            if not java:
                check_figures(
                    v, float(meta["time"]), int(meta["cg-mem"]) * 1024, float(meta["time-wall"])
                )
            verdicts.append(v)
        return verdicts
    finally:
        subprocess.run([*ISOLATE, *base, "--cleanup"], check=True)


@pytest.mark.parametrize("sub", SUBMISSIONS, ids=lambda s: s.name)
def test_isolate_front_end_judges_the_contest(sub, tmp_path, monkeypatch):
    root = tmp_path / "boxes"
    root.mkdir(mode=0o755)
    monkeypatch.setenv("SANDBOX_ISOLATE_ROOT", str(root))
    verdicts = judge_isolate(sub, 5000 + secrets.randbelow(10000))
    if sub.verdict == "CE":
        assert verdicts == ["CE"]
    elif sub.verdict == "WA":
        assert verdicts == ["AC", "WA"]
    else:
        assert verdicts == [sub.verdict] * len(TESTS), verdicts

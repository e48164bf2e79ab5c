"""The judge profiles with real submissions: what a grader expects of them (issue 15).

``judge`` (native code), ``judge-python``, ``judge-java`` and ``judge-compile``:
the program runs, nothing runs after it (tests/escape/test_judge_exec.py),
the stack may grow to the memory limit, threads and processes are counted per
run, compilers run inside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox import Sandbox, Verdict

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]
HAS_JDK = os.path.exists("/usr/bin/javac") and os.path.exists("/usr/bin/java")
HAS_GXX = shutil.which("g++") is not None

RECURSE = r"""
#include <stdio.h>
#include <stdlib.h>
static long depth(long n, long lim) {
    volatile char pad[96];
    pad[0] = (char)(n & 1);
    if (n >= lim) return 1;
    return depth(n + 1, lim) + pad[0];
}
int main(int argc, char **argv) {
    long lim = atol(argv[1]);
    printf("%ld\n", depth(0, lim) > 0 ? lim : -1L);
    return 0;
}
"""

THREADS = r"""
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *idle(void *arg) { (void)arg; sleep(2); return 0; }
int main(void) {
    pthread_t t[16];
    int made = 0;
    for (int i = 0; i < 16; i++)
        if (pthread_create(&t[i], 0, idle, 0) == 0) made++;
    printf("%d\n", made);
    return 0;
}
"""


def build(tmp: Path, name: str, source: str, *flags: str, cxx: bool = False) -> Path:
    src = tmp / (name + (".cpp" if cxx else ".c"))
    src.write_text(source)
    out = tmp / name
    cmd = ["g++" if cxx else "gcc", "-O0", "-o", str(out), str(src), *flags]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def sb():
    with Sandbox("judge") as s:
        yield s


def test_dynamic_and_static_binaries_run(sb, tmp_path):
    src = '#include <stdio.h>\nint main(void){int a,b;scanf("%d %d",&a,&b);printf("%d\\n",a+b);}\n'
    dyn = build(tmp_path, "dyn", src)
    r = sb.run([str(dyn)], stdin=b"2 3\n")
    assert r.verdict is Verdict.OK and r.stdout == b"5\n", r
    static = tmp_path / "static"
    made = subprocess.run(["gcc", "-static", "-o", str(static), str(tmp_path / "dyn.c")])
    if made.returncode == 0:
        s = sb.run([str(static)], stdin=b"4 5\n")
        assert s.verdict is Verdict.OK and s.stdout == b"9\n", s


@pytest.mark.skipif(not HAS_GXX, reason="no g++")
def test_cpp_with_libstdcxx_runs(sb, tmp_path):
    src = (
        "#include <iostream>\n#include <vector>\n#include <algorithm>\n"
        "int main() { std::vector<int> v{3, 1, 2}; std::sort(v.begin(), v.end());\n"
        "  for (int x : v) std::cout << x; std::cout << '\\n'; }\n"
    )
    prog = build(tmp_path, "sort", src, cxx=True)
    r = sb.run([str(prog)])
    assert r.verdict is Verdict.OK and r.stdout == b"123\n", r


def test_deep_recursion_is_ok_and_unbounded_recursion_is_a_memory_limit(sb, tmp_path):
    prog = build(tmp_path, "rec", RECURSE)
    deep = sb.run([str(prog), "1000000"], limits={"memory": "256M"})  # ~128 MiB of stack
    assert deep.verdict is Verdict.OK and deep.stdout == b"1000000\n", deep
    with Sandbox("strict") as strict:
        small = strict.run([str(prog), "1000000"], limits={"memory": "256M"})
    assert small.verdict is Verdict.RUNTIME_ERROR and small.signal == 11  # strict's 8 MiB
    endless = sb.run([str(prog), "100000000000"], limits={"memory": "128M"})
    assert endless.verdict is Verdict.MEMORY_LIMIT, endless
    assert endless.usage.oom_killed


def test_threads_count_against_the_runs_process_limit(sb, tmp_path):
    prog = build(tmp_path, "threads", THREADS, "-lpthread")
    r = sb.run([str(prog)], limits={"processes": 5})
    assert r.verdict is Verdict.OK, r
    assert r.stdout == b"4\n"  # the main thread plus four


def test_python_runs_with_extension_modules(tmp_path):
    script = (
        "import sys, json, math, decimal, hashlib, re\n"
        "n = int(sys.stdin.readline())\n"
        "print(json.dumps({'sqrt': math.isqrt(n), 'd': str(decimal.Decimal(n) / 4)}))\n"
    )
    with Sandbox("judge-python") as s:
        r = s.run(["python3", "sol.py"], files={"sol.py": script.encode()}, stdin=b"81\n")
    assert r.verdict is Verdict.OK, (r, r.stderr)
    assert r.stdout == b'{"sqrt": 9, "d": "20.25"}\n'


@pytest.mark.skipif(not HAS_GXX, reason="no g++")
@pytest.mark.parametrize("profile", ["compile", "judge-compile"])
def test_gcc_compiles_template_heavy_cpp_needing_a_big_stack(tmp_path, profile):
    """cc1plus recursing 20000 template levels deep needs more than 8 MiB of stack
    (issue 15 item 7: the compile profile's 8 MiB stack made g++ segfault)."""
    src = (
        "template <int N> struct F { static constexpr long v = F<N - 1>::v + N; };\n"
        "template <> struct F<0> { static constexpr long v = 0; };\n"
        "int main() { return F<20000>::v % 7; }\n"
    )
    with Sandbox(profile) as s:
        r = s.run(
            ["/usr/bin/g++", "-ftemplate-depth=100000", "-o", "/box/deep", "/box/deep.cpp"],
            files={"deep.cpp": src.encode()},
            collect=["deep"],
        )
    assert r.verdict is Verdict.OK, (r, r.stderr)
    assert r.files["deep"].startswith(b"\x7fELF")


@pytest.mark.skipif(not HAS_JDK, reason="no JDK")
def test_javac_in_judge_compile_then_java_in_judge_java(tmp_path):
    src = (
        "import java.util.Scanner;\n"
        "public class Main {\n"
        "  public static void main(String[] a) throws Exception {\n"
        "    Scanner in = new Scanner(System.in);\n"
        "    long x = in.nextLong(), y = in.nextLong();\n"
        "    System.out.println(x * y);\n"
        '    try { Runtime.getRuntime().exec(new String[]{"/bin/true"}).waitFor();'
        ' System.out.println("exec worked"); }\n'
        '    catch (java.io.IOException e) { System.out.println("no exec"); }\n'
        "  }\n"
        "}\n"
    )
    with Sandbox("judge-compile") as s:
        c = s.run(
            ["/usr/bin/javac", "-d", "/box", "/box/Main.java"],
            files={"Main.java": src.encode()},
            collect=["Main.class"],
        )
    assert c.verdict is Verdict.OK, (c, c.stderr)
    with Sandbox("judge-java") as s:
        r = s.run(
            ["java", "-Xmx128m", "-cp", "/box", "Main"],
            files={"Main.class": c.files["Main.class"]},
            stdin=b"6 7\n",
        )
    assert r.verdict is Verdict.OK, (r, r.stderr)
    assert r.stdout == b"42\nno exec\n"


FREOPEN = r"""
#include <stdio.h>
int main(void) {
    if (!freopen("/dev/stdin", "r", stdin)) { perror("freopen stdin"); return 1; }
    if (!freopen("/dev/stdout", "w", stdout)) { perror("freopen stdout"); return 2; }
    long a, b;
    if (scanf("%ld %ld", &a, &b) != 2) return 3;
    printf("%ld\n", a + b);
    fprintf(fopen("/dev/stderr", "w"), "done\n");
    return 0;
}
"""


def test_a_submission_reopens_its_stdio(sb, tmp_path):
    """Issue 15 item 1: contest solutions freopen("/dev/stdin") routinely."""
    prog = build(tmp_path, "freopen", FREOPEN)
    r = sb.run([str(prog)], stdin=b"40 2\n")
    assert r.verdict is Verdict.OK, (r, r.stderr)
    assert r.stdout == b"42\n" and r.stderr == b"done\n"

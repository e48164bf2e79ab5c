"""The native launcher under sanitizers: the decoder fuzzed, whole runs under ASan+UBSan.

- the plan decoder (the native side's only parser) is fuzzed for a bounded
  number of inputs from seeds that are real encoded plans: libFuzzer with
  AddressSanitizer and UBSan when clang is installed (scripts/setup.sh installs
  it), else a mutation driver of our own (fuzz_driver.c) built with gcc's
  sanitizers; any crash, leak-free overflow or undefined behaviour fails;
- the whole launcher, built with -fsanitize=address,undefined, serves real
  runs (strict, a failing step, collected files, a killed run) once.

``SANDBOX_FUZZ_RUNS`` widens the fuzzing by hand.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_launcher_order import make_plan

from sandbox.launcher import nativebuild, wire

SRC = nativebuild.SRC
RUNS = int(os.environ.get("SANDBOX_FUZZ_RUNS", "30000"))
SAN = ["-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]


def _seeds(corpus: Path) -> list[Path]:
    from dataclasses import replace

    from sandbox.fs.ops import TmpfsMount

    plans = [
        make_plan(),
        make_plan(apparmor_profile=None, landlock=None, seccomp=None, collect=("a", "b/c")),
        make_plan(
            id_mode="rootless",
            mounts=replace(
                make_plan().mounts, tmpfs=(TmpfsMount("/scratch", 1 << 20),), rootless=True
            ),
        ),
    ]
    corpus.mkdir(exist_ok=True)
    out = []
    for i, p in enumerate(plans):
        f = corpus / f"seed{i}"
        f.write_bytes(wire.encode_plan(p))
        out.append(f)
    return out


@pytest.mark.parametrize("engine", ["libfuzzer", "driver"])
def test_decoder_fuzzed_under_asan_and_ubsan(tmp_path, engine):
    seeds = _seeds(tmp_path / "corpus")
    srcs = [str(SRC / n) for n in ("fuzz_plan.c", "plan.c", "util.c")]
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    exe = tmp_path / "fuzz"
    if engine == "libfuzzer":
        if not shutil.which("clang"):
            pytest.skip("clang (libFuzzer) is not installed: scripts/setup.sh installs it")
        subprocess.run(["clang", *SAN, "-fsanitize=fuzzer", "-o", str(exe), *srcs], check=True)
        cmd = [str(exe), f"-runs={RUNS}", "-max_len=65536", "-seed=1", "-timeout=10",
               str(tmp_path / "corpus")]  # fmt: skip
    else:
        subprocess.run(["gcc", *SAN, "-o", str(exe), *srcs, str(SRC / "fuzz_driver.c")], check=True)
        cmd = [str(exe), str(RUNS * 3), *map(str, seeds)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "ERROR: AddressSanitizer" not in p.stderr and "runtime error" not in p.stderr


@pytest.mark.requires("root")
def test_runs_under_asan_and_ubsan(tmp_path):
    from sandbox import Sandbox, Verdict
    from sandbox.launcher.native import NativeLauncherClient

    exe = nativebuild.compile_launcher(tmp_path / "sandbox-launcher-asan", tuple(SAN))
    client = NativeLauncherClient(binary=exe)
    client.server_env = {
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    logging.disable(logging.WARNING)
    sb = Sandbox("strict", launcher="native")
    sb._client.close()
    sb._client = sb._supervisor.client = client
    try:
        r = sb.run(["/bin/sh", "-c", "echo hi; echo x > f"], collect=["f", "nope"])
        assert r.verdict is Verdict.OK and r.stdout == b"hi\n", (r.message, r.stderr)
        assert r.files == {"f": b"x\n"} and r.collect_errors == {"nope": "no such file"}
        r = sb.run(["/bin/sleep", "10"], limits={"wall_time": 0.2})
        assert r.verdict is Verdict.WALL_TIME_LIMIT
        # A failed spawn is a SPAWN_ERROR result (issue 15 item 15), not an exception.
        r = sb.run(["/bin/true"], cwd="/", profile=None, env={"A": "1"}, limits={"open_files": 1})
        assert r.verdict is Verdict.SPAWN_ERROR, r
    finally:
        sb.close()
        logging.disable(logging.NOTSET)
    assert client._proc is not None and client._proc.returncode == 0, "the server failed"

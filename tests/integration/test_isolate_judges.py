"""Real judges' isolate command lines, replayed against the front end.

Written from reading their public code (cms-dev/cms ``cms/grading/Sandbox.py``
``IsolateSandbox``; judge0/judge0 ``app/jobs/isolate_job.rb``), copying none of
it: the same options in the same order, the same files where the judge puts
them, and the meta file read the way each judge reads it. A submission is
compiled and run through the front end as the judge would, and the judge's
own decision (CMS's exit status kind, Judge0's status) must come out right.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]

ISOLATE = [sys.executable, "-m", "sandbox.isolate.main"]
APLUSB = (
    "#include <stdio.h>\n"
    'int main(void){long a,b;scanf("%ld %ld",&a,&b);printf("%ld\\n",a+b);return 0;}\n'
)
SLOW = "int main(void){volatile unsigned long i=0;for(;;)i++;}\n"
CRASH = "#include <stdlib.h>\nint main(void){abort();}\n"
HOG = (
    "#include <stdlib.h>\n#include <string.h>\n"
    "int main(void){for(;;){char*p=malloc(1<<20);if(!p)return 3;memset(p,1,1<<20);}}\n"
)


@pytest.fixture
def root(tmp_path, monkeypatch):
    boxes = tmp_path / "boxes"
    boxes.mkdir(mode=0o755)
    monkeypatch.setenv("SANDBOX_ISOLATE_ROOT", str(boxes))
    return boxes


# --- CMS -------------------------------------------------------------------------------


class CmsSandbox:
    """The command lines of CMS's IsolateSandbox for one box (see module docstring)."""

    def __init__(self, temp_dir: Path, box_id: int) -> None:
        self.box_id = box_id
        self.outer = Path(tempfile.mkdtemp(dir=temp_dir, prefix="cms-test-"))
        self.home = self.outer / "home"
        self.home.mkdir()
        os.chmod(self.home, 0o777)  # allow_writing_all
        self.dirs: list[tuple[str | None, str, str | None]] = [
            (str(self.home), "/tmp", "rw"),
            (None, "/dev/shm", "tmp"),
        ]
        for src in ("/etc/alternatives", "/opt/pypy3"):  # maybe_add_mapped_directory
            if os.path.exists(src):
                self.dirs.append((src, src, None))
        self.exec_num = -1
        subprocess.check_call([*ISOLATE, f"--box-id={box_id}", "--cg", "--cleanup"])
        subprocess.check_call(
            [*ISOLATE, f"--box-id={box_id}", "--cg", "--init"], stdout=subprocess.DEVNULL
        )

    def options(self, **o) -> list[str]:
        res = ["--cg", f"--box-id={self.box_id}", "--chdir=/tmp"]
        for src, dest, opts in self.dirs:
            s = dest + (f"={src}" if src else "") + (f":{opts}" if opts else "")
            res.append(f"--dir={s}")
        res.append("--env=HOME=/tmp")
        if o.get("fsize"):
            res.append(f"--fsize={o['fsize'] // 1024}")
        if o.get("stdin"):
            res.append(f"--stdin=/tmp/{o['stdin']}")
        if o.get("stack"):
            res.append(f"--stack={o['stack'] // 1024}")
        if o.get("memory"):
            res.append(f"--cg-mem={o['memory'] // 1024}")
        if o.get("stdout"):
            res.append(f"--stdout=/tmp/{o['stdout']}")
        res.append(f"--processes={o.get('processes', 1)}")
        if o.get("stderr"):
            res.append(f"--stderr=/tmp/{o['stderr']}")
        if o.get("time"):
            res.append(f"--time={o['time']:g}")
        if o.get("wall"):
            res.append(f"--wall-time={o['wall']:g}")
        if o.get("extra"):
            res.append(f"--extra-time={o['extra']:g}")
        res.append(f"--meta={self.outer / 'run.meta'}.{self.exec_num}")
        res.append("--run")
        return res

    def execute(self, command: list[str], **o) -> tuple[bool, dict[str, list[str]]]:
        """Popen + translate_box_exitcode + get_meta, as CMS does them."""
        self.exec_num += 1
        p = subprocess.run([*ISOLATE, *self.options(**o), "--", *command], timeout=120)
        if p.returncode not in (0, 1):
            assert p.returncode == 2, f"isolate exited {p.returncode}: breaks CMS"
            return False, {}
        meta: dict[str, list[str]] = {}
        for line in Path(f"{self.outer / 'run.meta'}.{self.exec_num}").read_text().splitlines():
            key, value = line.strip().split(":", 1)
            meta.setdefault(key, []).append(value)
        return True, meta

    @staticmethod
    def exit_status(meta: dict[str, list[str]]) -> str:
        """CMS's get_exit_status."""
        status = meta.get("status", [])
        if "XX" in status:
            return "sandbox error"
        if "TO" in status:
            return "timeout-wall" if "wall" in meta.get("message", [""])[0] else "timeout"
        if "SG" in status:
            return "memory limit" if "cg-oom-killed" in meta else "signal"
        if "RE" in status:
            return "nonzero return"
        return "ok"

    def cleanup(self) -> None:
        """cleanup(delete=True): chmod inside the box, --cleanup, remove the directory."""
        subprocess.call(
            [
                *ISOLATE,
                f"--box-id={self.box_id}",
                "--cg",
                f"--dir=/tmp={self.home}:rw",
                "--run",
                "--",
                "/bin/chmod",
                "777",
                "-R",
                "/tmp",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        subprocess.check_call([*ISOLATE, f"--box-id={self.box_id}", "--cg", "--cleanup"])
        shutil.rmtree(self.outer)


def test_cms_compiles_and_evaluates_a_c_submission(root, tmp_path):
    box_id = 1000 + secrets.randbelow(1000)
    sources = {"ok": APLUSB, "slow": SLOW, "crash": CRASH, "hog": HOG}
    expected = {"ok": "ok", "slow": "timeout", "crash": "signal", "hog": "memory limit"}
    for name, source in sources.items():
        sb = CmsSandbox(tmp_path, box_id)
        try:
            (sb.home / "sol.c").write_text(source)
            ok, meta = sb.execute(
                [
                    "/usr/bin/gcc",
                    "-DEVAL",
                    "-std=gnu11",
                    "-O2",
                    "-pipe",
                    "-static",
                    "-s",
                    "-o",
                    "sol",
                    "sol.c",
                    "-lm",
                ],
                processes=1000,
                time=10,
                wall=20,
                memory=512 << 20,
                stdout="compiler_stdout.txt",
                stderr="compiler_stderr.txt",
            )
            assert ok and sb.exit_status(meta) == "ok", (
                meta,
                (sb.home / "compiler_stderr.txt").read_text(),
            )
            assert (sb.home / "sol").exists()
        finally:
            sb.cleanup()
        # Evaluation happens in a new sandbox, with the executable copied in.
        eb = CmsSandbox(tmp_path, box_id)
        try:
            shutil.copy(_built(tmp_path, name, source), eb.home / "sol")
            (eb.home / "input.txt").write_text("20 22\n")
            ok, meta = eb.execute(
                ["./sol"],
                stdin="input.txt",
                stdout="output.txt",
                time=0.5,
                wall=5,
                extra=0.5,
                memory=64 << 20,
                fsize=1 << 20,
                stack=64 << 20,
            )
            assert ok, name
            assert eb.exit_status(meta) == expected[name], (name, meta)
            assert float(meta["time"][0]) >= 0 and float(meta["time-wall"][0]) >= 0
            assert int(meta["cg-mem"][0]) * 1024 <= (64 << 20) + (1 << 20)
            if name == "ok":
                assert (eb.home / "output.txt").read_text() == "42\n"
        finally:
            eb.cleanup()


def _built(tmp: Path, name: str, source: str) -> Path:
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / f"{name}.bin"
    subprocess.run(["gcc", "-O2", "-static", "-o", str(out), str(src)], check=True)
    return out


# --- Judge0 ----------------------------------------------------------------------------

JUDGE0_ENV = [
    "-E", "HOME=/tmp",
    "-E", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "-E", "LANG", "-E", "LANGUAGE", "-E", "LC_ALL", "-E", "JUDGE0_HOMEPAGE",
    "-E", "JUDGE0_SOURCE_CODE", "-E", "JUDGE0_MAINTAINER", "-E", "JUDGE0_VERSION",
]  # fmt: skip


def judge0_submit(
    box_id: int,
    source: str,
    stdin: str,
    *,
    compile_cmd: str | None,
    run_cmd: str,
    name: str,
    cpu: float = 2,
    memory_kb: int = 128000,
) -> dict:
    """IsolateJob.perform for one run: init, compile, run, verify, cleanup."""
    workdir = Path(
        subprocess.check_output([*ISOLATE, "--cg", "-b", str(box_id), "--init"], text=True).strip()
    )
    boxdir = workdir / "box"
    (boxdir / name).write_text(source)
    (workdir / "stdin.txt").write_text(stdin)
    for f in ("stdout.txt", "stderr.txt", "metadata.txt"):
        (workdir / f).touch()
    out: dict = {}
    try:
        if compile_cmd:
            (boxdir / "compile.sh").write_text(compile_cmd)
            with open(workdir / "compile_output.txt", "wb") as co:
                p = subprocess.run(
                    [
                        *ISOLATE,
                        "--cg",
                        "-s",
                        "-b",
                        str(box_id),
                        "-M",
                        str(workdir / "metadata.txt"),
                        "--stderr-to-stdout",
                        "-i",
                        "/dev/null",
                        "-t",
                        "15",
                        "-x",
                        "0",
                        "-w",
                        "20",
                        "-k",
                        "128000",
                        "-p120",
                        "--cg-timing",
                        "--cg-mem=512000",
                        "-f",
                        "4096",
                        *JUDGE0_ENV,
                        "-d",
                        "/etc:noexec",
                        "--run",
                        "--",
                        "/bin/bash",
                        "compile.sh",
                    ],
                    stdout=co,
                    timeout=120,
                )
            if p.returncode != 0:
                out["status"] = "Compilation Error"
                out["compile_output"] = (workdir / "compile_output.txt").read_text()
                return out
        (boxdir / "run.sh").write_text(run_cmd)
        with (
            open(workdir / "stdin.txt", "rb") as i,
            open(workdir / "stdout.txt", "wb") as o,
            open(workdir / "stderr.txt", "wb") as e,
        ):
            subprocess.run(
                [
                    *ISOLATE,
                    "--cg",
                    "-s",
                    "-b",
                    str(box_id),
                    "-M",
                    str(workdir / "metadata.txt"),
                    "-t",
                    str(cpu),
                    "-x",
                    "1",
                    "-w",
                    "10",
                    "-k",
                    "64000",
                    "-p60",
                    "--cg-timing",
                    f"--cg-mem={memory_kb}",
                    "-f",
                    "1024",
                    *JUDGE0_ENV,
                    "-d",
                    "/etc:noexec",
                    "--run",
                    "--",
                    "/bin/bash",
                    "run.sh",
                ],
                stdin=i,
                stdout=o,
                stderr=e,
                timeout=120,
            )
        meta: dict[str, str] = {}
        for line in (workdir / "metadata.txt").read_text().split("\n"):
            if line:
                key, _, value = line.partition(":")
                meta[key] = value
        out.update(
            time=meta.get("time"),
            wall_time=meta.get("time-wall"),
            memory=meta.get("cg-mem"),
            exit_code=int(meta.get("exitcode") or 0),
            exit_signal=meta.get("exitsig"),
            message=meta.get("message"),
            stdout=(workdir / "stdout.txt").read_text(),
        )
        status = meta.get("status")
        out["status"] = {
            "TO": "Time Limit Exceeded",
            "SG": "Runtime Error (signal)",
            "RE": "Runtime Error (NZEC)",
            "XX": "Internal Error",
        }.get(status or "", "Accepted" if out["stdout"].strip() == "42" else "Wrong Answer")
        return out
    finally:
        subprocess.call(["chown", "-R", f"{os.getuid()}:", str(boxdir)])  # fix_permissions
        for d in (boxdir, workdir / "tmp"):
            for child in d.iterdir() if d.exists() else ():
                shutil.rmtree(
                    child
                ) if child.is_dir() and not child.is_symlink() else child.unlink()
        subprocess.check_call([*ISOLATE, "--cg", "-b", str(box_id), "--cleanup"])
        assert not workdir.exists(), "Cleanup of sandbox failed."


@pytest.mark.parametrize(
    ("source", "want"),
    [
        (APLUSB, "Accepted"),
        (SLOW, "Time Limit Exceeded"),
        (CRASH, "Runtime Error (NZEC)"),  # bash reports its child's SIGABRT: 134
        ("int main(void){return 3;}\n", "Runtime Error (NZEC)"),
        ('#include <stdio.h>\nint main(void){puts("41");}\n', "Wrong Answer"),
        ("int main(void){ syntax error }\n", "Compilation Error"),
    ],
    ids=["accepted", "tle", "signal", "nzec", "wa", "ce"],
)
def test_judge0_c_submission(root, source, want):
    r = judge0_submit(
        2000 + secrets.randbelow(1000),
        source,
        "20 22\n",
        compile_cmd="/usr/bin/gcc main.c -o a.out",
        run_cmd="./a.out",
        name="main.c",
        cpu=0.5,
    )
    assert r["status"] == want, r
    if want == "Accepted":
        assert float(r["time"]) >= 0 and int(r["memory"]) > 0 and r["exit_code"] == 0
    if want == "Time Limit Exceeded":
        assert r["exit_signal"] is None and "Time limit exceeded" in r["message"]
    if source is CRASH:
        assert r["exit_code"] == 134


def test_judge0_python_submission(root):
    r = judge0_submit(
        3000 + secrets.randbelow(1000),
        "a, b = map(int, input().split())\nprint(a + b)\n",
        "20 22\n",
        compile_cmd=None,
        run_cmd="/usr/bin/python3 script.py",
        name="script.py",
        cpu=2,
    )
    assert r["status"] == "Accepted", r

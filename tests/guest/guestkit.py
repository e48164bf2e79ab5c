"""Running ``sandbox`` in the kvm-run guest without paying for a new interpreter each time.

Under TCG a fresh ``sandbox exec`` spends 7 to 12 s importing (pydantic and
the package over 9p); the run itself takes under a second. ``start_cli``
forks the test process, which has imported everything once, and calls
``sandbox.cli.main.main(argv)`` in the child: the whole ``sandbox exec`` path
(argument parsing, profile loading, supervisor, fork server, run record,
exit status) except the interpreter start. A few tests still run the real
``.venv/bin/sandbox`` to cover that too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sbxtest import CliResult

# What `sandbox exec` imports lazily, imported here once so that every forked
# CLI starts with it loaded (otherwise each child imports it again: seconds).
import sandbox.cli.main
import sandbox.compile
import sandbox.doctor
import sandbox.host
import sandbox.policy.load
import sandbox.runner.acquire
import sandbox.runner.client
import sandbox.runner.supervisor


@dataclass
class ForkedCli:
    """A ``sandbox`` command running in a forked copy of the test process."""

    pid: int
    out: Path
    err: Path
    meta: Path | None
    stdin: int | None  # write end when started with a pipe

    def wait(self, timeout: float = 300) -> CliResult:
        """Wait for it (SIGTERM at the deadline: the CLI then cleans up and exits 143)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGTERM)
                _, status = os.waitpid(self.pid, 0)
                break
            time.sleep(0.02)
        if self.stdin is not None:
            os.close(self.stdin)
            self.stdin = None
        record = None
        if self.meta is not None and self.meta.exists() and self.meta.stat().st_size:
            record = json.loads(self.meta.read_text())
        return CliResult(
            os.waitstatus_to_exitcode(status),
            self.out.read_text(errors="replace"),
            self.err.read_text(errors="replace"),
            record,
        )

    def err_contains(self, text: str, timeout: float = 120) -> bool:
        """Poll stderr until ``text`` appears (a payload's 'ready' mark)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.err.read_text(errors="replace"):
                return True
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                raise AssertionError(f"sandbox ended before printing {text!r}")
            time.sleep(0.02)
        return False


def start_cli(
    args: list[str],
    *,
    tmp: Path,
    stdin_pipe: bool = False,
    env: dict[str, str] | None = None,
) -> ForkedCli:
    """Start ``sandbox ARGS`` (``--meta`` added after ``exec``) in a forked child."""
    tag = os.urandom(4).hex()
    out, err = tmp / f"out-{tag}", tmp / f"err-{tag}"
    argv = list(args)
    meta = None
    if argv and argv[0] == "exec":
        meta = tmp / f"meta-{tag}.json"
        argv[1:1] = ["--meta", str(meta)]
    out.touch()
    err.touch()  # before the fork: the caller may poll them at once
    r = w = -1
    if stdin_pipe:
        r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become `sandbox ARGS`; never return into pytest
        code = 125
        try:
            os.chdir(tmp)
            os.environ.update(env or {})
            stdin = r if stdin_pipe else os.open(os.devnull, os.O_RDONLY)
            os.dup2(stdin, 0)
            if stdin_pipe:
                os.close(w)
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.stdin = open(0, closefd=False)  # noqa: SIM115
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            sandbox.cli.main.main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException as e:
            os.write(2, f"forked sandbox CLI: {e!r}\n".encode())
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    if stdin_pipe:
        os.close(r)
    return ForkedCli(pid, out, err, meta, w if stdin_pipe else None)


def run_cli_fast(
    args: list[str], *, tmp: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> CliResult:
    """``start_cli`` and wait."""
    return start_cli(args, tmp=tmp, env=env).wait(timeout)

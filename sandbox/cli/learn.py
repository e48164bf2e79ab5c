"""``sandbox learn``: learn, minimise and verify a per-program profile (see sandbox.learn).

    sandbox learn [--from BASE] [--input FILE]... [--file NAME=PATH]... [--minimize]
                  [--wall-time S] [--allow-dangerous] [--report FILE] -o PROFILE
                  -- PROGRAM [ARGS...]

Each ``--input FILE`` is one run with FILE as stdin (no input: one run with
/dev/null). ``--file NAME=PATH`` copies PATH to ``/box/NAME`` for every run
(a script for an interpreter, data). Exit status: 0 when the profile was
written, complete and verified identical; 1 when it was written but is
incomplete or not verified (the header says why); 125 when the sandbox failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any


def _file_arg(value: str) -> tuple[str, str]:
    name, sep, path = value.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {value!r}")
    return name, path


def register(sub: Any) -> None:
    """Add ``learn`` to the ``sandbox`` subcommands."""
    p = sub.add_parser(
        "learn",
        help="learn a per-program profile from what a program does",
        description="Run PROGRAM under a learning policy, write a profile that allows what "
        "it used (extending BASE), optionally minimised, verified by running again.",
    )
    p.add_argument(
        "--from",
        dest="base",
        default="strict",
        metavar="BASE",
        help="profile to extend (default: strict)",
    )
    p.add_argument(
        "--input",
        dest="inputs",
        metavar="FILE",
        action="append",
        default=[],
        help="stdin of one run (repeat for several runs)",
    )
    p.add_argument(
        "--file",
        dest="files",
        metavar="NAME=PATH",
        type=_file_arg,
        action="append",
        default=[],
        help="copy PATH to /box/NAME for every run",
    )
    p.add_argument(
        "--minimize",
        action="store_true",
        help="drop every rule no input needs (re-runs each input per trial)",
    )
    p.add_argument(
        "--wall-time",
        type=float,
        metavar="S",
        help="wall-time limit of every run (learning, minimising, verifying); "
        "the written profile keeps the base's",
    )
    p.add_argument(
        "--allow-dangerous",
        action="store_true",
        help="learn what verify flags as dangerous (any capability, sync, native AIO, "
        "memfd_secret, fanotify, vhangup...) instead of answering it EPERM",
    )
    p.add_argument("--report", metavar="FILE", help="write the report as JSON")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="PROFILE",
        help="where to write the learned profile",
    )
    p.add_argument("program", metavar="PROGRAM")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")
    p.set_defaults(handler=cmd_learn)


class _Once(logging.Filter):
    """Let each distinct log message through once (every run of a learning session
    would repeat the same layer warning)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


def _base_ref(base: str, out: Path) -> tuple[str, str]:
    """(how candidates load the base, how the written profile names it)."""
    if "/" not in base and not base.endswith(".toml"):
        return base, base
    path = Path(base).resolve()
    return str(path), os.path.relpath(path, out.resolve().parent)


def cmd_learn(ns: argparse.Namespace) -> int:
    """Learn a profile; returns the exit status (module docstring)."""
    from sandbox.errors import SandboxError
    from sandbox.learn import LearnOptions, SupervisorRunner, learn, report
    from sandbox.learn.generate import profile_name

    for handler in logging.getLogger().handlers:
        handler.addFilter(_Once())
    out = Path(ns.output)
    try:
        inputs = tuple((name, Path(name).read_bytes()) for name in ns.inputs) or (
            ("(no input)", None),
        )
        for _, path in ns.files:
            if not Path(path).is_file():
                raise OSError(f"--file: {path} is not a regular file")
    except OSError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 125
    base, extends = _base_ref(ns.base, out)
    opts = LearnOptions(
        argv=(ns.program, *ns.args),
        base=base,
        extends=extends,
        inputs=inputs,
        minimize=ns.minimize,
        wall_time=ns.wall_time,
        name=profile_name(out.name.removesuffix(".toml")),
        files=tuple(ns.files),
        allow_dangerous=ns.allow_dangerous,
    )
    runner = None
    try:
        runner = SupervisorRunner(opts.argv, [(n, str(Path(p).resolve())) for n, p in ns.files])
        result = learn(
            opts,
            runner,
            runner.host,
            progress=lambda m: print(f"sandbox learn: {m}", file=sys.stderr),
        )
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return e.exit_status
    finally:
        if runner is not None:
            runner.close()
    out.write_text(result.text)
    rep = report(result)
    if ns.report:
        Path(ns.report).write_text(json.dumps(rep, indent=2) + "\n")
    print(
        f"sandbox learn: wrote {out}: {rep['rules']['kept']} rules "
        f"({rep['rules']['learned']} learned), {result.runs} runs in "
        f"{result.seconds['total']:.1f} s",
        file=sys.stderr,
    )
    if result.removed:
        print(
            f"sandbox learn: --minimize removed {len(result.removed)} rules in "
            f"{result.minimize_runs} runs",
            file=sys.stderr,
        )
    for line in result.status_lines():
        print(f"sandbox learn: {line}", file=sys.stderr)
    return 0 if result.ok else 1

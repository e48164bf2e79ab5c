"""isolate's command line, parsed as isolate parses it (``isolate(1)``, options and modes).

Declarative: one argparse parser with isolate's short and long names, then
isolate's own rules (one mode, ``--cg-mem`` needs ``--cg``, numbers that are
unsigned integers). A usage error exits 2, as isolate's does. Everything
after ``--`` is the command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

MODES = ("init", "run", "cleanup", "version", "print_cg_root", "check_config")


@dataclass
class Options:
    """One invocation of ``isolate`` (defaults are isolate's)."""

    mode: str
    box_id: int = 0
    cg: bool = False
    cg_mem: int | None = None  # KiB
    chdir: str | None = None
    dirs: list[str] = field(default_factory=list)
    no_default_dirs: bool = False
    env: list[str] = field(default_factory=list)
    full_env: bool = False
    fsize: int | None = None  # KiB
    stdin: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    stderr_to_stdout: bool = False
    stack: int | None = None  # KiB
    mem: int | None = None  # KiB of address space
    meta: str | None = None
    open_files: int = 1024
    processes: int | None = 1  # None: any number
    quota: str | None = None
    share_net: bool = False
    silent: bool = False
    verbose: int = 0
    time: float | None = None
    wall_time: float | None = None
    extra_time: float | None = None
    core: int | None = None
    special_files: bool = False
    inherit_fds: bool = False
    tty_hack: bool = False
    wait: bool = False
    as_uid: int | None = None
    as_gid: int | None = None
    syscalls: int | None = None
    profile: str = "isolate"
    launcher: str | None = None
    command: list[str] = field(default_factory=list)


def usage_error(message: str) -> NoReturn:
    """isolate's usage failure: the message, a hint, exit status 2."""
    sys.stderr.write(f"{message.rstrip()}\nTry 'isolate --help' for more information.\n")
    sys.exit(2)


def _uint(value: str) -> int:
    """An unsigned integer that fits an int, as isolate's opt_uint wants."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"Invalid numeric parameter: {value}")
    n = int(value)
    if n > 2**31 - 1:
        raise argparse.ArgumentTypeError(f"Numeric parameter out of range: {value}")
    return n


def _seconds(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Invalid time: {value}") from None
    if not 0 <= s < 1e9:  # nan and inf fail this too
        raise argparse.ArgumentTypeError(f"Invalid time: {value}")
    return s


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        usage_error(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="isolate", add_help=False, allow_abbrev=False)
    for name in MODES:
        p.add_argument(
            f"--{name.replace('_', '-')}", dest="modes", action="append_const", const=name
        )
    p.add_argument("--help", action="store_true")
    p.add_argument("-b", "--box-id", type=_uint, default=0)
    p.add_argument("-c", "--chdir")
    p.add_argument("--cg", action="store_true")
    p.add_argument("--cg-mem", type=_uint)
    p.add_argument("--cg-timing", action="store_true")  # Judge0's isolate: always, here
    p.add_argument("--no-cg-timing", action="store_true")
    p.add_argument("--core", type=_uint)
    p.add_argument("-d", "--dir", dest="dirs", action="append", default=[])
    p.add_argument("-D", "--no-default-dirs", action="store_true")
    p.add_argument("-e", "--full-env", action="store_true")
    p.add_argument("-E", "--env", action="append", default=[])
    p.add_argument("-f", "--fsize", type=_uint)
    p.add_argument("-i", "--stdin")
    p.add_argument("-k", "--stack", type=_uint)
    p.add_argument("-m", "--mem", type=_uint)
    p.add_argument("-M", "--meta")
    p.add_argument("-n", "--open-files", type=_uint, default=1024)
    p.add_argument("-o", "--stdout")
    p.add_argument("-p", "--processes", nargs="?", type=_uint, const=0, default=1)
    p.add_argument("-q", "--quota")
    p.add_argument("-r", "--stderr")
    p.add_argument("--stderr-to-stdout", action="store_true")
    p.add_argument("-s", "--silent", action="count", default=0)
    p.add_argument("--share-net", action="store_true")
    p.add_argument("--special-files", action="store_true")
    p.add_argument("--inherit-fds", action="store_true")
    p.add_argument("--tty-hack", action="store_true")
    p.add_argument("--syscalls", type=_uint)
    p.add_argument("-t", "--time", type=_seconds)
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--wait", action="store_true")
    p.add_argument("-w", "--wall-time", type=_seconds)
    p.add_argument("-x", "--extra-time", type=_seconds)
    p.add_argument("--as-uid", type=_uint)
    p.add_argument("--as-gid", type=_uint)
    p.add_argument("--profile", default="isolate")  # ours: the layers around the box
    p.add_argument("--launcher", choices=("native", "python"))  # ours, as sandbox exec's
    p.add_argument("words", nargs="*")
    return p


def parse(argv: Sequence[str]) -> Options:
    """Parse an isolate command line (exits 2 on a usage error, as isolate does)."""
    args = list(argv)
    command: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, command = args[:cut], args[cut + 1 :]
    ns = _parser().parse_args(args)
    if ns.help:
        usage_error("Usage: isolate [<options>] <command> (see isolate(1); README: isolate)")
    modes = sorted(set(ns.modes or []))
    if len(modes) > 1:
        usage_error("Only one command is allowed.")
    if not modes:
        usage_error("Please specify an isolate command (e.g. --init, --run).")
    command = [*ns.words, *command]
    if modes[0] == "run" and not command:
        usage_error("--run mode requires a command to run")
    if modes[0] in ("init", "cleanup") and command:
        usage_error(f"--{modes[0]} mode takes no parameters")
    if ns.cg_mem is not None and not ns.cg:
        usage_error("Options related to control groups require --cg to be set.")
    if ns.stderr and ns.stderr_to_stdout:
        ns.stderr_to_stdout = False  # the later one wins in isolate; -r is explicit here
    if (ns.as_uid is None) != (ns.as_gid is None):
        usage_error("--as-uid and --as-gid must be used either both or none")
    return Options(
        mode=modes[0],
        box_id=ns.box_id,
        cg=ns.cg,
        cg_mem=ns.cg_mem,
        chdir=ns.chdir,
        dirs=list(ns.dirs),
        no_default_dirs=ns.no_default_dirs,
        env=list(ns.env),
        full_env=ns.full_env,
        fsize=ns.fsize,
        stdin=ns.stdin,
        stdout=ns.stdout,
        stderr=ns.stderr,
        stderr_to_stdout=ns.stderr_to_stdout,
        stack=ns.stack,
        mem=ns.mem,
        meta=ns.meta,
        open_files=ns.open_files,
        processes=None if ns.processes == 0 else ns.processes,
        quota=ns.quota,
        share_net=ns.share_net,
        silent=bool(ns.silent),
        verbose=ns.verbose,
        time=ns.time,
        wall_time=ns.wall_time,
        extra_time=ns.extra_time,
        core=ns.core,
        special_files=ns.special_files,
        inherit_fds=ns.inherit_fds,
        tty_hack=ns.tty_hack,
        wait=ns.wait,
        as_uid=ns.as_uid,
        as_gid=ns.as_gid,
        syscalls=ns.syscalls,
        profile=ns.profile,
        launcher=ns.launcher,
        command=command,
    )


__all__ = ["MODES", "Options", "parse", "usage_error"]

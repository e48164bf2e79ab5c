"""``sandbox`` command line: exec, doctor (and the verify/explain family).

Declarative argparse mapped straight onto policy overrides (never bwrap's
hand-written parser). Imports are lazy so ``sandbox exec`` loads only what it
needs. Exit status of ``exec``: the program's own; 128+N when killed by
signal N; 125 when the sandbox failed or refused; 126 cannot execute; 127 not
found. Errors are one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import signal
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from sandbox.compile import Artifacts
    from sandbox.host import HostFacts
    from sandbox.policy.profile import LoadedProfile
    from sandbox.runner.acquire import Acquirer
    from sandbox.runner.supervisor import RunRequest


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT so every cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def _pair(value: str) -> tuple[str, str]:
    if "=" not in value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {value!r}")
    k, v = value.split("=", 1)
    return k, v


def _number(text: str) -> int | float | str:
    """A limit as TOML would read it: an integer, else a float, else the text itself.

    Ranges are not checked here but by the policy model (``sandbox.policy.model``),
    the one trust boundary for profiles and options alike: ``nan``, ``inf``, ``0``
    or a value the kernel would read as "unlimited" is refused there with the key
    named, exit 125, and so is text that is no number.
    """
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _file_arg(value: str) -> tuple[str, str]:
    """``NAME=PATH``, or ``PATH`` staged under its base name."""
    if "=" in value:
        name, path = value.split("=", 1)
    else:
        name, path = os.path.basename(value.rstrip("/")), value
    if not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH or PATH, got {value!r}")
    return name, path


def _collect_arg(value: str) -> tuple[str, str]:
    """``NAME=PATH``, or ``NAME`` written to its base name in the current directory."""
    name, _, path = value.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"expected NAME or NAME=PATH, got {value!r}")
    return name, path or os.path.basename(name)


def _exec_parser(sub: Any) -> None:
    p = sub.add_parser(
        "exec",
        help="run a program in the sandbox",
        description="Run PROGRAM under a profile; exit with its status.",
    )
    p.add_argument("--profile", default="strict", help="profile name or path (default: strict)")
    p.add_argument("--meta", metavar="FILE", help="write the run record (JSON) to FILE")
    p.add_argument(
        "--launcher",
        choices=("native", "python"),
        help="child-side launcher: native (default) or the Python reference",
    )
    p.add_argument("--meta-fd", metavar="N", type=int, help="write the run record to fd N")
    p.add_argument("--meta-format", choices=("json", "isolate"), default="json")
    p.add_argument("--bind", nargs=2, metavar=("SRC", "DST"), action="append", default=[])
    p.add_argument("--ro-bind", nargs=2, metavar=("SRC", "DST"), action="append", default=[])
    p.add_argument("--tmpfs", metavar="DST", action="append", default=[])
    p.add_argument("--env", metavar="NAME=VALUE", type=_pair, action="append", default=[])
    p.add_argument("--chdir", metavar="DIR")
    for flag, key, kind in (
        ("--cpu-time", "cpu_time", _number),
        ("--wall-time", "wall_time", _number),
        ("--memory", "memory", str),
        ("--processes", "processes", _number),
        ("--output", "output", str),
        ("--file-size", "file_size", str),
        ("--open-files", "open_files", _number),
        ("--stack", "stack", str),
        ("--address-space", "address_space", str),
        ("--cpuset", "cpuset", str),
        ("--cpu-quota", "cpu_quota", _number),
    ):
        p.add_argument(flag, dest=f"limit_{key}", type=kind, metavar=key.upper())
    p.add_argument(
        "--tcp-port",
        metavar="PORT",
        type=int,
        action="append",
        default=[],
        help="let the payload bind and connect to this TCP port on its loopback",
    )
    p.add_argument("--disk", metavar="SIZE")
    p.add_argument("--disk-inodes", type=_number, metavar="N")
    p.add_argument("--io-read-bps", metavar="DEV=SIZE", type=_pair, action="append", default=[])
    p.add_argument("--io-write-bps", metavar="DEV=SIZE", type=_pair, action="append", default=[])
    p.add_argument(
        "--file",
        metavar="NAME=PATH",
        type=_file_arg,
        action="append",
        default=[],
        help="copy PATH into /box/NAME before the run (PATH alone: NAME is its base name)",
    )
    p.add_argument(
        "--collect",
        metavar="NAME[=PATH]",
        type=_collect_arg,
        action="append",
        default=[],
        help="after the run, write /box/NAME to PATH (default: ./NAME's base name)",
    )
    p.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="no verdict line and no warnings on stderr (errors only)",
    )
    p.add_argument("--stdin", metavar="FILE")
    p.add_argument("--stdout", metavar="FILE")
    p.add_argument("--stderr", metavar="FILE")
    p.add_argument(  # test-only: sandbox.ablation
        "--test-ablate", metavar="LAYER", action="append", default=[], help=argparse.SUPPRESS
    )
    p.add_argument("program", metavar="PROGRAM")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS")


def overrides(ns: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as a profile layer (merged last, part of the digest)."""
    out: dict[str, Any] = {}
    limits = {
        k.removeprefix("limit_"): v
        for k, v in vars(ns).items()
        if k.startswith("limit_") and v is not None
    }
    for key, values in (("io_read_bps", ns.io_read_bps), ("io_write_bps", ns.io_write_bps)):
        if values:
            limits[key] = dict(values)
    if limits:
        out["limits"] = limits
    fs: dict[str, Any] = {}
    binds = [{"source": s, "target": d, "writable": True} for s, d in ns.bind]
    binds += [{"source": s, "target": d} for s, d in ns.ro_bind]
    if binds:
        fs["binds"] = binds
    if ns.tmpfs:
        fs["tmpfs"] = [{"target": d} for d in ns.tmpfs]
    if ns.chdir:
        fs["workdir"] = ns.chdir
    if ns.disk is not None:  # "0" too: the model refuses it (tmpfs size=0 is unlimited)
        fs["disk"] = ns.disk
    if ns.disk_inodes is not None:  # 0 was dropped here, silently keeping the profile's
        fs["disk_inodes"] = ns.disk_inodes
    if fs:
        out["filesystem"] = fs
    if ns.env:
        out["env"] = {"vars": dict(ns.env)}
    if ns.tcp_port:
        out["network"] = {"tcp_ports": list(ns.tcp_port)}
    return out


def _die(message: str, status: int) -> NoReturn:
    print(f"sandbox: {message}", file=sys.stderr)
    sys.exit(status)


def cmd_exec(ns: argparse.Namespace) -> int:
    """Run one program; returns its shell-style status."""
    from sandbox.errors import SandboxError
    from sandbox.policy.cache import load as load_profile
    from sandbox.runner.launchers import make_client
    from sandbox.runner.supervisor import Supervisor

    try:
        profile = load_profile(ns.profile, overrides(ns))
    except SandboxError as e:
        _die(str(e), e.exit_status)
    except OSError as e:  # e.g. a profile path we may not read
        _die(str(e), 125)
    if ns.meta is not None:
        # Checked before the run: a record that cannot be written must not cost a run.
        parent = os.path.dirname(os.path.abspath(ns.meta))
        if not os.path.isdir(parent):
            _die(f"--meta {ns.meta}: {parent} is not a directory", 125)
    if ns.meta_fd is not None:
        import fcntl

        try:
            mode = os.fstat(ns.meta_fd).st_mode
            access = fcntl.fcntl(ns.meta_fd, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError as e:
            _die(f"--meta-fd {ns.meta_fd}: {e.strerror}", 125)
        if stat.S_ISDIR(mode) or access == os.O_RDONLY:
            _die(f"--meta-fd {ns.meta_fd}: not open for writing", 125)
    from sandbox.fs.hostpath import open_path

    stdio: dict[str, int] = {}
    try:
        # These paths may lie where an earlier run's payload wrote: opened
        # without following a symlink it could have planted (issue 13 item 2).
        for name, flags in (
            ("stdin", os.O_RDONLY),
            ("stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            ("stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            path = getattr(ns, name)
            if path:
                stdio[name] = open_path(path, flags, f"--{name}")
        meta_fd = (
            open_path(ns.meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "--meta") if ns.meta else None
        )
    except SandboxError as e:
        _die(str(e), 125)
    ns.meta_opened = meta_fd
    client = make_client(ns.launcher, mode="fork")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sup: Supervisor | None = None

    def close() -> None:
        # The run was released inside sup.run; then the launcher: nothing is left.
        if sup is not None:
            sup.close()
        client.close()

    try:
        state = exec_state()
        # Released inline: one run, then this process ends, so a release thread
        # frees nothing sooner; it only cost a thread and a GIL hand-over (~5 ms
        # measured between submit and the thread's first step, issue 12).
        sup = Supervisor(state.host, client, artifacts=state.artifacts, acquirer=state.acquirer)
        result = sup.run(run_request(ns, profile, stdio, os.getcwd()))
    except SandboxError as e:
        close()
        _write_meta(ns, _failure_record(profile, e))
        _die(str(e), e.exit_status)
    except OSError as e:  # the host refused something the sandbox needed: say what
        close()
        _write_meta(ns, _failure_record(profile, e))
        _die(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "), 125)
    except _Terminated as t:
        close()
        return 128 + t.signum
    try:
        _write_meta(ns, result.record())
        _write_collected(ns, result.files)
        if not ns.quiet and result.verdict != "OK":
            print(f"sandbox: {result.summary()}", file=sys.stderr)
    finally:
        close()
    return result.cli_status


@dataclass
class ExecState:
    """What every ``exec`` of this process shares: host facts, artifact caches, the acquirer.

    A one-shot CLI makes it once; the zygote makes it before it forks, so each
    fork starts with the caches of the calls before it (compiled runs are
    reused only while their inputs hold: ``sandbox.compile``).
    """

    host: HostFacts
    artifacts: Artifacts
    acquirer: Acquirer


_STATE: ExecState | None = None


def exec_state() -> ExecState:
    """The process's ExecState (made, with the sweep of dead runs' leftovers, on first use)."""
    global _STATE
    if _STATE is None:
        from sandbox.compile import Artifacts
        from sandbox.host import probe
        from sandbox.runner.acquire import Acquirer

        host = probe()
        acquirer = Acquirer(host)
        acquirer.sweep()
        _STATE = ExecState(host, Artifacts(host), acquirer)
    return _STATE


def run_request(
    ns: argparse.Namespace, profile: LoadedProfile, stdio: dict[str, int], cwd: str
) -> RunRequest:
    """The RunRequest of an ``exec`` command line."""
    from sandbox.runner.supervisor import STDIO_INHERIT, RunRequest

    return RunRequest(
        argv=[ns.program, *ns.args],
        profile=profile,
        stdin=stdio.get("stdin", STDIO_INHERIT),
        stdout=stdio.get("stdout", STDIO_INHERIT),
        stderr=stdio.get("stderr", STDIO_INHERIT),
        ablate=frozenset(ns.test_ablate),
        cwd=cwd,
        files=tuple(ns.file),
        collect=tuple(name for name, _ in ns.collect),
    )


def prewarm(argv: Sequence[str], cwd: str) -> None:
    """Compile an ``exec`` command line as a call would, filling this process's caches.

    For the zygote, between calls: its next fork for the same command finds
    the profile and the compiled run ready. Refusals are the call's to report,
    so any error here is ignored.
    """
    from sandbox.compile import compile_run
    from sandbox.policy.cache import load as load_profile

    out, err = io.StringIO(), io.StringIO()
    try:
        # argparse prints (--help, usage errors) into buffers of this process that
        # every later fork would flush into its caller's stdout: never here.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ns = parser(argv[0] if argv else None).parse_args(list(argv))
        if ns.cmd != "exec":
            return
        state = exec_state()
        profile = load_profile(ns.profile, overrides(ns))
        req = run_request(ns, profile, {}, cwd).compile_request()
        compiled = compile_run(profile, state.host, req, state.artifacts)
        from sandbox.verify.cache import verify_run

        verify_run(compiled, state.host)
    except (Exception, SystemExit):  # noqa: S110 - the call itself reports what is wrong
        pass


def _write_collected(ns: argparse.Namespace, files: dict[str, bytes]) -> None:
    """``--collect``: each file read from /box written to its host path (never through a
    symlink at the last component); a missing one is named on stderr."""
    for name, path in ns.collect:
        data = files.get(name)
        if data is None:
            print(f"sandbox: --collect {name}: not a regular file in /box", file=sys.stderr)
            continue
        from sandbox.errors import SandboxError
        from sandbox.fs.hostpath import open_path

        try:
            fd = open_path(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, f"--collect {name}:")
        except SandboxError as e:
            print(f"sandbox: {e}", file=sys.stderr)
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _failure_record(profile: Any, err: Exception) -> dict[str, Any]:
    """The record of a run that never started: every key a record has."""
    from sandbox.errors import ProgramNotFound, SpawnError
    from sandbox.runner.result import RunResult, Verdict
    from sandbox.runner.supervise import limits_record

    spawn = isinstance(err, ProgramNotFound | SpawnError)
    return RunResult.failure(
        Verdict.SPAWN_ERROR if spawn else Verdict.INTERNAL_ERROR,
        profile=profile.policy.name,
        policy_digest=profile.digest,
        message=str(err),
        status=getattr(err, "exit_status", 125),
        enforcement=getattr(err, "enforcement", None),
        limits=limits_record(profile.policy),
    ).record()


def _write_meta(ns: argparse.Namespace, record: dict[str, Any]) -> None:
    import json

    text = json.dumps(record, indent=2) + "\n"
    if ns.meta_format == "isolate":
        from sandbox.runner.meta import isolate_meta

        text = isolate_meta(record)
    fd = getattr(ns, "meta_opened", None)
    if fd is not None:
        with os.fdopen(fd, "w") as f:  # opened before the run, no symlink followed
            f.write(text)
        ns.meta_opened = None
    elif ns.meta:
        from sandbox.fs.hostpath import open_path

        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(open_path(ns.meta, flags, "--meta"), "w") as f:
            f.write(text)
    if ns.meta_fd is not None:
        os.write(ns.meta_fd, text.encode())


def cmd_doctor(ns: argparse.Namespace) -> int:
    """Print what this host can enforce."""
    from sandbox.doctor import report

    return report(as_json=ns.json)


# Subcommands in their own modules (sandbox/cli/<name>.py, each with
# register(subparsers) setting a handler). A module is imported only when its
# subcommand is named, so `sandbox exec` loads none of them; otherwise a
# placeholder keeps it in `sandbox --help`.
MODULES = {
    "verify": "check profiles before running them (compile, simulate, lint)",
    "explain": "show every artifact a profile generates",
    "diff": "what changes between two profiles, layer by layer",
    "seccomp": "import/export Docker and OCI seccomp JSON",
    "learn": "learn a per-program profile from what a program does",
    "isolate": "ioi/isolate's command line (--init/--run/--cleanup) on the sandbox's layers",
}


@functools.cache
def parser(named: str | None) -> argparse.ArgumentParser:
    """The command line's parser, with the subcommand ``named`` fully registered (made once)."""
    top = argparse.ArgumentParser(prog="sandbox", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="cmd", required=True)
    _exec_parser(sub)
    d = sub.add_parser("doctor", help="what this host can enforce")
    d.add_argument("--json", action="store_true")
    _register_modules(sub, named)
    return top


def _register_modules(sub: Any, named: str | None) -> None:
    import importlib

    for name, summary in MODULES.items():
        if name == named:
            importlib.import_module(f"sandbox.cli.{name}").register(sub)
        else:
            sub.add_parser(name, help=summary)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``sandbox`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["isolate"]:  # isolate's own command line (-p120, --run -- cmd)
        from sandbox.isolate.main import main as isolate_main

        isolate_main(argv[1:])
    named = next((a for a in argv if not a.startswith("-")), None)
    ns = parser(named).parse_args(argv)
    import logging

    level = logging.ERROR if getattr(ns, "quiet", False) else logging.WARNING
    logging.basicConfig(format="sandbox: %(levelname)s: %(message)s", level=level)
    handlers = {"exec": cmd_exec, "doctor": cmd_doctor}
    handler = getattr(ns, "handler", None) or handlers[ns.cmd]
    sys.exit(handler(ns))


if __name__ == "__main__":
    main()

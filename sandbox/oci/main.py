"""``sandbox-runtime``: the OCI runtime command line (runc's), with a lean start.

Engines call the runtime several times per container (create, start,
state, kill, delete), so this module imports only the standard library and
``oci.state``/``oci.ctl`` until a command needs more: ``create``/``run``
load the pipeline, the others talk to the container's supervisor or read
its state. Errors are one line on stderr (and in ``--log``, as JSON with
``--log-format json``, which containerd's shim reads) and exit status 1.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from sandbox.oci import ctl
from sandbox.oci.state import DEFAULT_ROOT, Container, StateError, check_id, oci_state

TYPE_CHECKING = False  # not typing's (see oci.state)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

VERSION = "0.1.0"
SPEC_VERSION = "1.0.2"
DELETE_WAIT = 10.0
# flag -> takes a value; aliases map to the long name
_GLOBAL = {
    "--root": True,
    "--log": True,
    "--log-format": True,
    "--debug": False,
    "--systemd-cgroup": False,
    "--rootless": True,
    "--criu": True,
}
_CMDS: dict[str, dict[str, bool]] = {
    "create": {
        "--bundle": True,
        "--pid-file": True,
        "--console-socket": True,
        "--no-pivot": False,
        "--no-new-keyring": False,
        "--preserve-fds": True,
    },
    "run": {
        "--bundle": True,
        "--pid-file": True,
        "--console-socket": True,
        "--detach": False,
        "--no-pivot": False,
        "--no-new-keyring": False,
        "--preserve-fds": True,
    },
    "start": {},
    "state": {},
    "pause": {},
    "resume": {},
    "kill": {"--all": False},
    "delete": {"--force": False},
    "ps": {"--format": True},
    "exec": {
        "--process": True,
        "--detach": False,
        "--pid-file": True,
        "--tty": False,
        "--console-socket": True,
        "--cwd": True,
        "--env": True,
        "--user": True,
        "--preserve-fds": True,
        "--no-new-privs": False,
        "--cap": True,
    },
    "features": {},
    "spec": {"--bundle": True, "--rootless": False},
    "list": {"--format": True, "--quiet": False},
}
_SHORT = {
    "-b": "--bundle",
    "-d": "--detach",
    "-f": "--force",
    "-a": "--all",
    "-p": "--process",
    "-t": "--tty",
    "-e": "--env",
    "-u": "--user",
    "-c": "--cap",
    "-q": "--quiet",
}
_UNSUPPORTED = ("checkpoint", "restore", "update", "events")


class UsageError(Exception):
    """A bad command line (one line)."""


class Args:
    """Parsed command line: global options, the command, its options and operands."""

    def __init__(self) -> None:
        self.glob: dict[str, Any] = {}
        self.cmd = ""
        self.opts: dict[str, Any] = {}
        self.rest: list[str] = []


def _take(argv: list[str], i: int, spec: dict[str, bool], out: dict[str, Any]) -> int:
    a = argv[i]
    name, eq, value = a.partition("=")
    if name == "--format" and "--format" not in spec:
        raise UsageError(f"unknown flag {a}")
    name = _SHORT.get(name, name)
    if name not in spec:
        raise UsageError(f"unknown flag {a}")
    if spec[name]:
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"flag {name} needs a value")
            i += 1
            value = argv[i]
        if name == "--env":
            out.setdefault(name, []).append(value)
        else:
            out[name] = value
    else:
        out[name] = value.lower() != "false" if eq else True
    return i + 1


def parse(argv: Sequence[str]) -> Args:
    """runc's command line: ``[global options] command [options] operands``.

    Raises:
        UsageError: naming the bad flag or command.
    """
    argv = list(argv)
    args = Args()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        if argv[i] in ("--version", "-v"):
            args.cmd = "version"
            return args
        if argv[i] in ("--help", "-h"):
            args.cmd = "help"
            return args
        i = _take(argv, i, _GLOBAL, args.glob)
    if i >= len(argv):
        raise UsageError("no command given (try --help)")
    args.cmd = argv[i]
    i += 1
    if args.cmd in _UNSUPPORTED:
        raise UsageError(f"{args.cmd} is not supported by sandbox-runtime")
    if args.cmd in ("version", "help"):
        return args
    spec = _CMDS.get(args.cmd)
    if spec is None:
        raise UsageError(f"unknown command {args.cmd!r}")
    while i < len(argv):
        a = argv[i]
        if a == "--":
            args.rest += argv[i + 1 :]
            break
        if a.startswith("-") and len(a) > 1 and not (args.cmd == "exec" and len(args.rest) >= 1):
            if args.cmd == "kill" and len(args.rest) == 1 and a[1:].isdigit():
                args.rest.append(a)  # kill ID -9
                i += 1
                continue
            i = _take(argv, i, spec, args.opts)
        else:
            args.rest.append(a)
            i += 1
    return args


# ------------------------------------------------------------- commands ----
def _container(args: Args, need: bool = True) -> Container:
    if not args.rest:
        raise UsageError(f"{args.cmd}: a container id is required")
    c = Container(args.glob.get("--root", DEFAULT_ROOT), check_id(args.rest[0]))
    if need and not c.exists():
        raise StateError(f"container {c.id!r} does not exist")
    return c


def cmd_state(args: Args) -> int:
    """Print the runtime-spec state JSON."""
    c = _container(args)
    print(json.dumps(oci_state(c.read()), indent=2))
    return 0


def _ask(c: Container, msg: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        reply = ctl.request(c.ctl_path, msg)
    except OSError:
        raise StateError(f"cannot {what} container {c.id!r}: it is not running") from None
    if "error" in reply:
        raise StateError(f"{what} {c.id}: {reply['error']}")
    return reply


def cmd_start(args: Args) -> int:
    """Open the gate: the payload execs."""
    c = _container(args)
    st = c.read()
    if st["status"] != "created":
        raise StateError(f"cannot start container {c.id!r}: it is {st['status']}, not created")
    _ask(c, {"op": "start"}, "start")
    return 0


_SIGNALS = {s.name: int(s) for s in signal.Signals}


def parse_signal(text: str) -> int:
    """``9``, ``KILL`` or ``SIGKILL`` -> the number.

    Raises:
        UsageError: for an unknown signal.
    """
    if text.isdigit():
        n = int(text)
        if 0 < n < 65:
            return n
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name in _SIGNALS:
        return _SIGNALS[name]
    raise UsageError(f"unknown signal {text!r}")


def cmd_kill(args: Args) -> int:
    """Send a signal to the payload (``--all``: every task of the container)."""
    c = _container(args)
    sig = parse_signal(args.rest[1]) if len(args.rest) > 1 else signal.SIGTERM
    st = c.read()
    if st["status"] == "stopped":
        raise StateError(f"cannot kill container {c.id!r}: it is stopped")
    _ask(c, {"op": "kill", "signal": sig, "all": bool(args.opts.get("--all"))}, "kill")
    return 0


def cmd_pause(args: Args) -> int:
    """Freeze every task of the container (the leaf's freezer)."""
    c = _container(args)
    if c.read()["status"] != "running":
        raise StateError(f"cannot pause container {c.id!r}: it is not running")
    _ask(c, {"op": "pause"}, "pause")
    return 0


def cmd_resume(args: Args) -> int:
    """Thaw a paused container."""
    c = _container(args)
    if c.read()["status"] != "paused":
        raise StateError(f"cannot resume container {c.id!r}: it is not paused")
    _ask(c, {"op": "resume"}, "resume")
    return 0


def cmd_ps(args: Args) -> int:
    """The container's processes: host pids (``--format json``) or a ps table."""
    c = _container(args)
    if c.read()["status"] == "stopped":
        pids: list[int] = []
    else:
        pids = _ask(c, {"op": "ps"}, "list the processes of")["pids"]
    if args.opts.get("--format", "table") == "json":
        print(json.dumps(pids))
        return 0
    print(f"{'PID':>8}  CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        print(f"{pid:>8}  {cmd}")
    return 0


def cmd_delete(args: Args) -> int:
    """Remove a stopped container (``--force``: kill it first); nothing is left behind."""
    c = _container(args, need=False)
    if not os.path.exists(c.path):
        if args.opts.get("--force"):
            return 0
        raise StateError(f"container {c.id!r} does not exist")
    st = c.read() if c.exists() else {"status": "stopped"}
    if st["status"] not in ("stopped", "created") and not args.opts.get("--force"):
        raise StateError(f"cannot delete container {c.id!r}: it is {st['status']} (use --force)")
    if c.supervisor_alive(st):
        try:
            ctl.request(c.ctl_path, {"op": "kill", "signal": 9, "all": True}, timeout=5.0)
        except OSError:
            os.kill(int(st["pid"]), signal.SIGKILL)  # no answer: end the supervisor itself
        _wait_gone(c, st)
    from sandbox.oci.cleanup import remove

    remove(c, st)
    return 0


def _wait_gone(c: Container, st: dict[str, Any]) -> None:
    end = time.monotonic() + DELETE_WAIT
    while c.supervisor_alive(st):
        if time.monotonic() > end:
            os.kill(st["pid"], signal.SIGKILL)
            end += DELETE_WAIT
        time.sleep(0.002)


def _logging(glob: dict[str, Any]) -> None:
    """The library's log records go to --log (never to stderr: engines read the runtime's
    stderr as its error message)."""
    import logging

    logger = logging.getLogger("sandbox")
    logger.propagate = False
    path = glob.get("--log")
    if not path:
        logger.addHandler(logging.NullHandler())
        return
    handler = logging.FileHandler(path)
    if glob.get("--log-format") == "json":
        handler.setFormatter(_json_formatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)


def _json_formatter() -> Any:
    import logging

    class JsonFormatter(logging.Formatter):
        """One JSON object a line, runc's --log-format json (level, msg, time)."""

        def format(self, record: logging.LogRecord) -> str:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
            level = record.levelname.lower()
            return json.dumps({"level": level, "msg": record.getMessage(), "time": stamp})

    return JsonFormatter()


def cmd_create(args: Args) -> int:
    """Create a container from a bundle; the payload waits for ``start``."""
    from sandbox.oci.shim import CreateError, Options, create

    _logging(args.glob)
    c = _container(args, need=False)
    opts = Options(
        root=c.root,
        id=c.id,
        bundle=args.opts.get("--bundle", "."),
        pid_file=args.opts.get("--pid-file"),
        console_socket=args.opts.get("--console-socket"),
    )
    if args.opts.get("--preserve-fds", "0") not in ("0", ""):
        raise UsageError("--preserve-fds is not supported: no fd of the caller reaches the payload")
    try:
        return create(opts)
    except CreateError as e:
        raise StateError(str(e)) from None


def cmd_run(args: Args) -> int:
    """create + start; without --detach, wait for the container and exit as it did."""
    cmd_create(args)
    c = _container(args)
    st = c.read()
    try:
        cmd_start(args)
    except StateError:
        cmd_delete(_with(args, {"--force": True}))
        raise
    if args.opts.get("--detach"):
        return 0
    pid = st["pid"]
    while c.supervisor_alive(st):
        time.sleep(0.005)
    code = c.read_raw().get("exit_status")
    cmd_delete(_with(args, {}))
    del pid
    if code is None:
        return 255
    if code < 0:
        return 255
    code = os.waitstatus_to_exitcode(code)
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says


def _with(args: Args, opts: dict[str, Any]) -> Args:
    a = Args()
    a.glob, a.cmd, a.opts, a.rest = args.glob, args.cmd, opts, args.rest[:1]
    return a


def cmd_exec(args: Args) -> int:
    """Run another process in a running container, under the same layers."""
    from sandbox.oci.execute import execute

    return execute(_container(args), args.opts, args.rest[1:])


def cmd_features(args: Args) -> int:
    """runtime-spec features.json: what this runtime accepts."""
    from sandbox.oci.spec import features

    print(json.dumps(features(), indent=2))
    return 0


def cmd_spec(args: Args) -> int:
    """Write a default config.json into the bundle directory."""
    from pathlib import Path

    from sandbox.oci.spec import default_config

    path = Path(args.opts.get("--bundle", ".")) / "config.json"
    if path.exists():
        raise StateError(f"{path} exists: remove it first")
    path.write_text(json.dumps(default_config(), indent=2) + "\n")
    return 0


def cmd_list(args: Args) -> int:
    """The containers under --root."""
    from pathlib import Path

    root = Path(args.glob.get("--root", DEFAULT_ROOT))
    out = []
    for d in sorted(root.glob("*/state.json")) if root.is_dir() else []:
        try:
            out.append(oci_state(Container(root, d.parent.name).read()))
        except StateError:
            continue
    if args.opts.get("--format") == "json":
        print(json.dumps(out))
    elif args.opts.get("--quiet"):
        print("\n".join(s["id"] for s in out))
    else:
        print(f"{'ID':<20} {'PID':>8} {'STATUS':<10} BUNDLE")
        for s in out:
            print(f"{s['id']:<20} {s['pid']:>8} {s['status']:<10} {s['bundle']}")
    return 0


def cmd_version(_args: Args) -> int:
    """runc-style version lines."""
    print(f"sandbox-runtime version {VERSION}\nspec: {SPEC_VERSION}")
    return 0


def cmd_help(_args: Args) -> int:
    """A short usage text."""
    print(
        "usage: sandbox-runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND ...\n"
        "commands: " + ", ".join(sorted(_CMDS)) + ", version"
    )
    return 0


COMMANDS: dict[str, Callable[[Args], int]] = {
    "state": cmd_state,
    "start": cmd_start,
    "kill": cmd_kill,
    "delete": cmd_delete,
    "create": cmd_create,
    "run": cmd_run,
    "exec": cmd_exec,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "ps": cmd_ps,
    "features": cmd_features,
    "spec": cmd_spec,
    "list": cmd_list,
    "version": cmd_version,
    "help": cmd_help,
}


def _log(glob: dict[str, Any], message: str) -> None:
    path = glob.get("--log")
    if not path:
        return
    try:
        with open(path, "a") as f:
            if glob.get("--log-format") == "json":
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                f.write(json.dumps({"level": "error", "msg": message, "time": stamp}) + "\n")
            else:
                f.write(f"sandbox-runtime: {message}\n")
    except OSError:
        pass


def _fail(glob: dict[str, Any], message: str, code: int = 1) -> NoReturn:
    line = " ".join(message.split())  # one line, whatever the cause said
    print(f"sandbox-runtime: {line}", file=sys.stderr)
    _log(glob, line)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``sandbox-runtime``."""
    args = Args()
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
        if args.glob.get("--systemd-cgroup"):
            raise UsageError(
                "--systemd-cgroup is not supported: sandbox-runtime has only the cgroupfs "
                "manager (linux.cgroupsPath as a cgroupfs path; use podman --cgroup-manager "
                "cgroupfs, or SystemdCgroup = false in containerd)"
            )
        code = COMMANDS[args.cmd](args)
    except StateError as e:
        _fail(args.glob, str(e), e.code)
    except UsageError as e:
        _fail(args.glob, str(e))
    except OSError as e:
        _fail(args.glob, f"{args.cmd}: {e}")
    except Exception as e:  # a bug: still one line for the engine
        from sandbox.errors import SandboxError

        if isinstance(e, SandboxError):
            _fail(args.glob, str(e))
        _fail(args.glob, f"{args.cmd}: internal error: {type(e).__name__}: {e}")
    raise SystemExit(code)


if __name__ == "__main__":
    main()

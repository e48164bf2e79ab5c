"""``sandbox isolate ...`` (and the ``isolate`` executable): ioi/isolate's command line on
our layers.

A judge that drives isolate switches by path: ``--init`` prints the box
directory, the judge fills ``<box>/box``, ``--run`` runs a command there under
isolate's limits and writes isolate's meta file and status line, ``--cleanup``
removes the box. Every run is a sandbox run under the ``isolate`` profile
(``--profile`` picks another): all namespaces, the overlay root, seccomp,
Landlock (and AppArmor where on), capabilities dropped, the cgroup leaf;
isolate's options set its limits, directory rules and environment. What is
accepted but different is listed in README.md ("isolate front end").

Exit status: 0 OK, 1 any other finished run, 2 a failure of the sandbox
(status XX) or a usage error.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from sandbox.isolate.box import Box, BoxError, BoxState, chowntree
from sandbox.isolate.options import Options, parse, usage_error
from sandbox.isolate.rules import Mounts, environment, mounts, open_inside, rule_list
from sandbox.runner.meta import Outcome, failure, outcome

VERSION_TEXT = "The process isolator 2.0 (sandbox's isolate-compatible front end, sandbox {v})"


class _Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of ``isolate`` and ``sandbox isolate``."""
    sys.exit(run(sys.argv[1:] if argv is None else list(argv)))


def run(argv: Sequence[str]) -> int:
    """Run one isolate command; returns isolate's exit status."""
    opts = parse(argv)
    level = logging.INFO if opts.verbose > 1 else logging.WARNING if opts.verbose else logging.ERROR
    logging.basicConfig(format="isolate: %(message)s", level=level)
    if opts.mode == "version":
        from sandbox import __version__

        print(VERSION_TEXT.format(v=__version__))
        return 0
    if opts.mode == "check_config":
        return 0
    if opts.mode == "print_cg_root":
        print(_cg_root())
        return 0
    owner = (os.getuid(), os.getgid())
    if opts.as_uid is not None and opts.as_gid is not None:
        owner = (opts.as_uid, opts.as_gid)
    if opts.as_uid is not None and os.getuid() != 0:
        return _die(opts, "You must be root to use --as-uid or --as-gid")
    box = Box(opts.box_id)
    try:
        with box.locked(opts.wait) as state:
            if opts.mode == "init":
                return _init(box, opts, owner)
            if opts.mode == "cleanup":
                if state is None:
                    _say(opts, "Nothing to do -- box did not exist")
                else:
                    box.remove_tree()
                    box.write_state(None)
                return 0
            return _run(box, state, opts)
    except BoxError as e:
        return _die(opts, str(e))
    except OSError as e:
        return _die(opts, f"{e.strerror or e}: {e.filename or ''}".rstrip(": "))


def _init(box: Box, opts: Options, owner: tuple[int, int]) -> int:
    """isolate --init: a fresh box (an existing one is reset); prints its directory."""
    box.remove_tree()
    box.create(owner)
    box.write_state(BoxState(owner[0], owner[1], opts.cg))
    print(box.dir)
    return 0


def _run(box: Box, state: BoxState | None, opts: Options) -> int:
    if state is None:
        name = "isolate --cg" if opts.cg else "isolate"
        raise BoxError(f"Box not found, did you run `{name} --init'?")
    if state.cg != opts.cg:
        raise BoxError("This box was initialized with an incompatible control group mode")
    if opts.share_net:
        raise BoxError(
            "--share-net is refused: a run never shares the host's network "
            "(network.tcp_ports in a profile gives TCP on the run's own loopback)"
        )
    try:
        rules = rule_list(opts.dirs, opts.no_default_dirs)
        env = environment(opts.env, opts.full_env, dict(os.environ))
        if opts.chdir is not None and ".." in opts.chdir.split("/"):
            raise ValueError(f"Invalid --chdir '{opts.chdir}': must not contain '..'")
    except ValueError as e:
        usage_error(str(e))
    meta_fd = _open_meta(opts.meta)
    try:
        out = _run_box(box, state, opts, rules, env)
    except BoxError as e:
        out = failure(str(e))
    _finish(opts, out, meta_fd)
    return out.exit_code


def _run_box(
    box: Box, state: BoxState, opts: Options, rules: list[Any], env: dict[str, str]
) -> Outcome:
    """The box handed to a run slot's uid, the run, the box handed back to its owner."""
    m = mounts(rules, str(box.dir))
    for note in m.notes:
        _say(opts, note, verbose=True)
    workdir = "/" + (opts.chdir or "box").strip("/")
    owner = (state.owner_uid, state.owner_gid)
    from sandbox.runner.state import id_slot

    slot_cm = id_slot(prefer=opts.box_id) if os.geteuid() == 0 else None
    uid = slot_cm.__enter__() if slot_cm is not None else os.geteuid()
    gid = uid if slot_cm is not None else os.getegid()
    out: Outcome
    try:
        for host, _inside in m.tmp_dirs:
            _tmp_dir(Path(host), uid, gid)
        chowntree(box.box, uid, gid, keep_special=opts.special_files)
        try:
            out = _launch(opts, m, env, workdir, (uid, gid))
        finally:
            chowntree(box.box, *owner, keep_special=opts.special_files)
    finally:
        if slot_cm is not None:
            slot_cm.__exit__(None, None, None)
    return out


def _launch(
    opts: Options, m: Mounts, env: dict[str, str], workdir: str, ids: tuple[int, int]
) -> Outcome:
    """The run itself: stdio opened as isolate opens them (stdin first), the profile, the
    supervisor; the record turned into isolate's outcome."""
    from sandbox.errors import ProgramNotFound, SandboxError, SpawnError
    from sandbox.host import probe
    from sandbox.runner.launchers import make_client
    from sandbox.runner.supervisor import STDIO_INHERIT, RunRequest, Supervisor

    fds: list[int] = []
    try:
        stdin = _redirect(opts.stdin, workdir, m, os.O_RDONLY, None, fds)
        write = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        stdout = _redirect(opts.stdout, workdir, m, write, ids, fds)
        stderr = _redirect(opts.stderr, workdir, m, write, ids, fds)
        if opts.stderr_to_stdout:
            stderr = stdout
        try:
            profile = _profile(opts, m, env, workdir)
        except SandboxError as e:  # what the options make of the profile: one line
            usage_error(f"The options make an invalid run: {e}")
        argv = list(opts.command)
        if "/" in argv[0] and not argv[0].startswith("/"):
            argv[0] = os.path.normpath(os.path.join(workdir, argv[0]))  # isolate: inside path
        client = make_client(opts.launcher, mode="fork")
        old = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            result = Supervisor(probe(), client).run(
                RunRequest(
                    argv=argv,
                    profile=profile,
                    stdin=STDIO_INHERIT if stdin is None else stdin,
                    stdout=STDIO_INHERIT if stdout is None else stdout,
                    stderr=STDIO_INHERIT if stderr is None else stderr,
                    slot=ids[0] if os.geteuid() == 0 else None,
                )
            )
        except _Interrupted as i:
            client.close()
            record = {"verdict": "CANCELLED", "signal": i.signum}
            return outcome(record, time_limit=opts.time, cg=opts.cg)
        except ProgramNotFound:
            return failure(f'execve("{argv[0]}"): No such file or directory')
        except SpawnError as e:
            return failure(e.message if e.step == "exec" else str(e))
        except SandboxError as e:
            return failure(str(e))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        client.close()
        return outcome(result.record(), time_limit=opts.time, cg=opts.cg)
    finally:
        for fd in fds:
            os.close(fd)


def _redirect(
    path: str | None,
    workdir: str,
    m: Mounts,
    flags: int,
    owner: tuple[int, int] | None,
    fds: list[int],
) -> int | None:
    if path is None:
        return None
    fd = open_inside(path, workdir, m, flags, owner)
    fds.append(fd)
    return fd


def _profile(opts: Options, m: Mounts, env: dict[str, str], workdir: str) -> Any:
    """The profile's policy with isolate's limits (those alone), binds, workdir and
    environment in place of its own."""
    from sandbox.policy.load import dump_policy, implied, load_profile, snapshot, validate
    from sandbox.policy.names import check_names
    from sandbox.policy.profile import LoadedProfile

    base = load_profile(opts.profile)
    raw = dump_policy(base)
    fs = dict(raw["filesystem"])
    binds = [{"source": s, "target": t, "writable": w, "exec": x} for s, t, w, x in m.binds]
    binds += [{"source": s, "target": t, "writable": True} for s, t in m.tmp_dirs]
    fs["binds"] = [*fs.get("binds", []), *binds]
    fs["tmpfs"] = [*fs.get("tmpfs", []), *({"target": t} for t in m.tmpfs)]
    fs["workdir"] = workdir
    raw["filesystem"] = fs
    raw["limits"] = limits(opts)
    raw["env"] = {**raw["env"], "vars": env}
    policy = snapshot(validate(implied(raw), Path(base.source)))
    check_names(policy, base.source)
    return LoadedProfile(policy=policy, source=base.source, chain=base.chain)


def limits(opts: Options) -> dict[str, Any]:
    """isolate's limits as the policy's (KiB to bytes; 0 and absent mean none).

    ``-t`` with ``-x``: the run is killed at the larger of the two, and is TO when
    its CPU time passed ``-t`` (meta.outcome). No ``-k``: an unlimited stack.
    """
    lim: dict[str, Any] = {"stack": opts.stack * 1024 if opts.stack else "unlimited"}
    if opts.time:
        lim["cpu_time"] = max(opts.time, opts.extra_time or 0.0)
    if opts.wall_time:
        lim["wall_time"] = opts.wall_time
    if opts.cg_mem:
        lim["memory"] = opts.cg_mem * 1024
    if opts.mem:
        lim["address_space"] = opts.mem * 1024
    if opts.processes:
        lim["processes"] = opts.processes
    if opts.fsize:
        lim["file_size"] = opts.fsize * 1024
    if opts.open_files:
        lim["open_files"] = opts.open_files
    return lim


def _tmp_dir(path: Path, uid: int, gid: int) -> None:
    """A box tmp directory for this run's uid, 0700 (made if missing, never a link)."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        if path.is_symlink() or not path.is_dir():
            raise BoxError(f"Cannot use {path}: not a directory") from None
    os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, 0o700, follow_symlinks=False)


def _open_meta(path: str | None) -> int | None:
    """The meta file, opened before the run (a bad path must not cost a run)."""
    if path is None:
        return None
    from sandbox.errors import SandboxError
    from sandbox.fs.hostpath import open_path

    try:
        return open_path(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "meta file")
    except SandboxError as e:
        raise BoxError(f"Failed to open {e}") from None


def _finish(opts: Options, out: Outcome, meta_fd: int | None) -> None:
    if meta_fd is not None:
        with os.fdopen(meta_fd, "w") as f:
            f.write(out.text())
    if out.status == "XX":
        print(out.message, file=sys.stderr)
    elif opts.silent:
        return
    elif out.status is None:
        values = dict(out.lines)
        cpu, wall = float(values.get("time", 0)), float(values.get("time-wall", 0))
        print(f"OK ({cpu:.3f} sec real, {wall:.3f} sec wall)", file=sys.stderr)
    else:
        print(out.message, file=sys.stderr)


def _die(opts: Options, message: str) -> int:
    """isolate's die(): status XX in the meta file, the message on stderr, exit 2."""
    out = failure(message)
    meta_fd = None
    if opts.meta:
        try:
            meta_fd = _open_meta(opts.meta)
        except BoxError:
            meta_fd = None
    _finish(opts, out, meta_fd)
    return 2


def _say(opts: Options, message: str, verbose: bool = False) -> None:
    if opts.verbose or (not verbose and not opts.silent):
        print(message, file=sys.stderr)


def _cg_root() -> str:
    """Where the cgroup hierarchy is mounted (runs get leaves under the caller's cgroup)."""
    return "/sys/fs/cgroup"


__all__ = ["limits", "main", "run"]

if __name__ == "__main__":
    main()

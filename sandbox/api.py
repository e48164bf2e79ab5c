"""The Python library: ``Sandbox(...).run(argv, ...) -> RunResult``.

For grading and judge systems: a ``Sandbox`` keeps one fork server and the
artifact caches, so the thousandth run of a profile compiles nothing; it is
safe to call from many threads at once. ``run()`` is the one-shot form.

    from sandbox import Sandbox, Verdict
    with Sandbox("strict") as sb:
        r = sb.run(["./a.out"], stdin=b"1 2\\n", limits={"cpu_time": 1, "memory": "64M"},
                   files={"a.out": Path("build/a.out")})
        if r.verdict is Verdict.OK: print(r.stdout, r.usage.cpu_time, r.usage.memory_peak)
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import ProgramNotFound, SpawnError
from sandbox.fs.hostpath import open_path
from sandbox.fs.staging import FileContent
from sandbox.host import HostFacts, probe
from sandbox.policy.load import load_profile, merge, with_overrides
from sandbox.policy.profile import LoadedProfile
from sandbox.runner.control import RunControl
from sandbox.runner.launchers import make_client
from sandbox.runner.pool import pool_size
from sandbox.runner.result import RunResult, Verdict
from sandbox.runner.supervisor import RunRequest, Supervisor
from sandbox.runner.verdict import KillReason

Stdin = bytes | str | os.PathLike[str] | int | None
Output = str | os.PathLike[str] | int | None


class CpuPool:
    """CPUs handed out one per run, so concurrent runs never share a core (judges pin
    runs for stable timing); a run waits for a free CPU."""

    def __init__(self, cpus: Sequence[int]) -> None:
        self._free = list(cpus)
        self._cond = threading.Condition()

    @contextmanager
    def take(self) -> Iterator[int]:
        """Hold one CPU for the block."""
        with self._cond:
            while not self._free:
                self._cond.wait()
            cpu = self._free.pop(0)
        try:
            yield cpu
        finally:
            with self._cond:
                self._free.append(cpu)
                self._cond.notify()


class Sandbox:
    """A long-lived sandbox for many runs of one default profile (thread-safe).

    Args:
        profile: profile name (``strict``, ``interp``, ``compile``) or path, or a
            loaded profile.
        overrides: profile keys applied on top (as a profile layer; part of the
            policy digest), e.g. ``{"limits": {"memory": "128M"}}``.

    The fork server starts on the first run and stops with :meth:`close` (or
    the ``with`` block); if it dies, the next run starts a new one. With
    ``cpus``, each run is pinned to a CPU of that list that no other run of
    this sandbox is using (runs wait for a free one). ``launcher``: ``"native"``
    (the default; ``$SANDBOX_LAUNCHER`` overrides the default) or ``"python"``,
    the readable reference; a native launcher that is not built refuses the run.
    """

    def __init__(
        self,
        profile: str | os.PathLike[str] | LoadedProfile = "strict",
        *,
        overrides: Mapping[str, Any] | None = None,
        host: HostFacts | None = None,
        cpus: Sequence[int] | None = None,
        launcher: str | None = None,
    ) -> None:
        self._default = profile
        self._overrides = dict(overrides or {})
        self._profiles: dict[str, LoadedProfile] = {}
        self._lock = threading.Lock()
        self._client = make_client(launcher, mode="exec")
        self._cpus = CpuPool(cpus) if cpus else None
        # Leaves made ahead and releases after the result: both off the run's path.
        self._supervisor = Supervisor(
            host or probe(), self._client, leaf_pool=pool_size(), background_release=True
        )

    def profile(
        self,
        profile: str | os.PathLike[str] | LoadedProfile | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> LoadedProfile:
        """Load (and cache) a profile with this sandbox's overrides plus ``overrides``."""
        prof = self._default if profile is None else profile
        merged = merge(self._overrides, overrides or {})
        if isinstance(prof, LoadedProfile) and not merged:
            return prof
        name = f"loaded:{prof.digest}" if isinstance(prof, LoadedProfile) else os.fspath(prof)
        key = f"{name}\0{json.dumps(merged, sort_keys=True, default=str)}"
        with self._lock:
            cached = self._profiles.get(key)
        if cached is None:
            if isinstance(prof, LoadedProfile):
                # Never drop what the caller passed (limits, env): apply it, or the
                # PolicyError says why it cannot be applied.
                cached = with_overrides(prof, merged)
            else:
                cached = load_profile(os.fspath(prof), merged or None)
            with self._lock:
                self._profiles[key] = cached
        return cached

    def start(self, argv: Sequence[str], **kwargs: Any) -> RunHandle:
        """Start a run in the background; returns a handle to pause, resume, cancel, wait."""
        return RunHandle(self, argv, kwargs)

    def run_interactive(
        self,
        solution: Sequence[str],
        interactor: Sequence[str],
        *,
        solution_kwargs: Mapping[str, Any] | None = None,
        interactor_kwargs: Mapping[str, Any] | None = None,
        grace: float = 1.0,
    ) -> InteractiveResult:
        """Run a solution against an interactor, their stdout and stdin cross-connected.

        Each side has its own profile, limits and verdict (``*_kwargs`` as for
        :meth:`run`, without stdin/stdout). When one side ends, the other gets
        ``grace`` seconds to finish and is then killed (WALL_TIME_LIMIT). The
        interactor's exit status decides the answer: ``accepted`` is true when
        the solution's verdict is OK and the interactor exited 0.
        """
        to_int_r, to_int_w = os.pipe2(os.O_CLOEXEC)
        to_sol_r, to_sol_w = os.pipe2(os.O_CLOEXEC)
        try:
            sol = self.start(
                solution, **{**(solution_kwargs or {}), "stdin": to_sol_r, "stdout": to_int_w}
            )
            inter = self.start(
                interactor, **{**(interactor_kwargs or {}), "stdin": to_int_r, "stdout": to_sol_w}
            )
            for h in (sol, inter):
                h.started_or_done(timeout=60.0)
        finally:
            for fd in (to_int_r, to_int_w, to_sol_r, to_sol_w):
                os.close(fd)  # the children hold their own copies: EOF works both ways
        first, other = (sol, inter) if sol.done_first(inter) else (inter, sol)
        first.wait()
        if not other.control.finished.wait(grace):
            other.cancel("wall")
        r_sol, r_int = sol.wait(), inter.wait()
        accepted = r_sol.verdict == Verdict.OK and r_int.verdict == Verdict.OK
        reason = (
            ""
            if accepted
            else f"solution: {r_sol.verdict.value}"
            if r_sol.verdict != Verdict.OK
            else f"interactor: {r_int.verdict.value} (exit {r_int.exit_code})"
        )
        return InteractiveResult(solution=r_sol, interactor=r_int, accepted=accepted, reason=reason)

    def run(
        self,
        argv: Sequence[str],
        *,
        profile: str | os.PathLike[str] | LoadedProfile | None = None,
        limits: Mapping[str, Any] | None = None,
        stdin: Stdin = None,
        stdout: Output = None,
        stderr: Output = None,
        env: Mapping[str, str] | None = None,
        files: Mapping[str, FileContent] | None = None,
        collect: Sequence[str] = (),
        cwd: str | None = None,
        control: RunControl | None = None,
    ) -> RunResult:
        """Run ``argv`` in the sandbox and return its verdict, figures and record.

        Args:
            argv: program and arguments (``PROGRAM`` as for ``sandbox exec``).
            limits: overrides of the profile's ``[limits]`` (``cpu_time``,
                ``wall_time``, ``memory``, ``processes``, ``output``, ...).
            stdin: bytes to feed, a file path, an fd, or None (/dev/null).
            stdout, stderr: None captures into the result (capped by the output
                limit); a path or an fd receives the stream.
            env: extra environment variables (the environment is otherwise clean).
            files: files to place in ``/box`` before the run: name -> bytes (0644),
                a host path (a regular file keeps its mode; a symlink is staged
                as a symlink, never followed), ``File(content, mode=0o755)`` or
                ``Symlink(target)``. Names may be in any script (``нет.java``).
            collect: names of files in ``/box`` to return in ``result.files``.
            cwd: directory against which a relative ``PROGRAM`` path is resolved.

        Returns:
            The result; a program that is missing or cannot be started is a
            SPAWN_ERROR result (``status`` 127, 126 or 125), not an exception.

        Raises:
            SandboxError: subclasses for a bad profile or request, a failed
                verification, a layer that cannot be enforced, a resource that
                cannot be made.
        """
        extra: dict[str, Any] = {}
        if limits:
            extra["limits"] = dict(limits)
        if env:
            extra["env"] = {"vars": dict(env)}
        if self._cpus is not None and not (limits and "cpuset" in limits):
            with self._cpus.take() as cpu:
                extra.setdefault("limits", {})["cpuset"] = str(cpu)
                return self._run(
                    argv, profile, extra, stdin, stdout, stderr, files, collect, cwd, control
                )
        return self._run(argv, profile, extra, stdin, stdout, stderr, files, collect, cwd, control)

    def _run(
        self,
        argv: Sequence[str],
        profile: str | os.PathLike[str] | LoadedProfile | None,
        extra: dict[str, Any],
        stdin: Stdin,
        stdout: Output,
        stderr: Output,
        files: Mapping[str, FileContent] | None,
        collect: Sequence[str],
        cwd: str | None,
        control: RunControl | None,
    ) -> RunResult:
        prof = self.profile(profile, extra)
        opened: list[int] = []
        try:
            req = RunRequest(
                argv=list(argv),
                profile=prof,
                stdin=_open_in(stdin, opened),
                stdout=_open_out(stdout, opened),
                stderr=_open_out(stderr, opened),
                cwd=cwd,
                files=_files(files),
                collect=tuple(collect),
                control=control,
            )
            return self._supervisor.run(req)
        except (ProgramNotFound, SpawnError) as e:
            # A result, as documented: the program could not be started.
            return spawn_failure(prof, e)
        finally:
            for fd in opened:
                os.close(fd)

    def close(self) -> None:
        """Finish the runs' releases, remove the leaves made ahead, stop the launcher
        (it kills and cleans up any run still in flight)."""
        self._supervisor.close()
        self._client.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spawn_failure(prof: LoadedProfile, err: ProgramNotFound | SpawnError) -> RunResult:
    """SPAWN_ERROR for a program that could not be started (127 not found, 126 cannot
    execute, 125 a launcher step failed), with the record's every key."""
    from sandbox.runner.supervise import limits_record

    return RunResult.failure(
        Verdict.SPAWN_ERROR,
        profile=prof.policy.name,
        policy_digest=prof.digest,
        message=str(err),
        status=err.exit_status,
        enforcement=getattr(err, "enforcement", None),
        limits=limits_record(prof.policy),
    )


def _open_in(stdin: Stdin, opened: list[int]) -> bytes | int | None:
    if stdin is None or isinstance(stdin, bytes | int):
        return stdin
    fd = open_path(os.fspath(stdin), os.O_RDONLY, "stdin")  # no planted symlink followed
    opened.append(fd)
    return fd


def _open_out(out: Output, opened: list[int]) -> int | None:
    if out is None or isinstance(out, int):
        return out
    fd = open_path(os.fspath(out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "output")
    opened.append(fd)
    return fd


def _files(files: Mapping[str, FileContent] | None) -> tuple[tuple[str, FileContent], ...]:
    return tuple((files or {}).items())


@dataclass(frozen=True, slots=True)
class InteractiveResult:
    """Both sides of an interactive run and the answer."""

    solution: RunResult
    interactor: RunResult
    accepted: bool
    reason: str


class RunHandle:
    """A run in a background thread: pause/resume/cancel it, then wait for its result."""

    def __init__(self, sb: Sandbox, argv: Sequence[str], kwargs: Mapping[str, Any]) -> None:
        self.control = RunControl()
        self._result: RunResult | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._go, args=(sb, argv, dict(kwargs)), daemon=True, name="sandbox-run"
        )
        self._thread.start()

    def _go(self, sb: Sandbox, argv: Sequence[str], kwargs: dict[str, Any]) -> None:
        try:
            self._result = sb.run(argv, control=self.control, **kwargs)
        except BaseException as e:  # delivered to wait()
            self._error = e
        finally:
            self.control.finished.set()
            self.control.started.set()
            self._done.set()

    def started_or_done(self, timeout: float) -> None:
        """Block until the payload runs (or the run already ended or failed)."""
        self.control.started.wait(timeout)

    def done_first(self, other: RunHandle) -> bool:
        """Wait for either run to end; True when this one ended first."""
        while True:
            if self._done.wait(0.005):
                return True
            if other._done.is_set():
                return False

    def pause(self) -> None:
        """Freeze the run."""
        self.control.pause()

    def resume(self) -> None:
        """Thaw the run."""
        self.control.resume()

    def cancel(self, reason: KillReason = "cancel") -> None:
        """Kill the run: verdict CANCELLED (``reason="wall"``: WALL_TIME_LIMIT)."""
        self.control.cancel(reason)

    def wait(self, timeout: float | None = None) -> RunResult:
        """The run's result (re-raises the run's SandboxError)."""
        if not self._done.wait(timeout):
            raise TimeoutError("the run is still going")
        self.control.close()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


_default: Sandbox | None = None
_default_lock = threading.Lock()


def run(
    argv: Sequence[str], *, profile: str | os.PathLike[str] = "strict", **kwargs: Any
) -> RunResult:
    """One-shot run with a process-wide default :class:`Sandbox` (see :meth:`Sandbox.run`)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Sandbox("strict")
    return _default.run(argv, profile=profile, **kwargs)


__all__ = ["InteractiveResult", "Path", "RunHandle", "Sandbox", "run"]

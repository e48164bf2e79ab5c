"""The supervisor: one run from policy to verdict (parent side, STYLE B6).

Flat sequence: decide layers (fail closed) -> resolve the program -> take a run
lock and an id slot -> image, cgroup leaf, artifacts -> LaunchPlan -> spawn
through the fork server -> wait (errpipe, status, output caps, CPU polling,
wall clock) -> account -> classify -> clean up in reverse order. Cleanup
never raises over the primary result; the fork server removes what a killed
supervisor left.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import resource
import selectors
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox import enforce
from sandbox.errors import SandboxInternalError, SpawnError
from sandbox.fs import image as fsimage
from sandbox.fs.ops import MountPlan, plan_mounts
from sandbox.fs.resolve import Program, resolve
from sandbox.host import HostFacts
from sandbox.launcher.protocol import PayloadStatus, decode_failure
from sandbox.plan import LaunchPlan, Rlimit
from sandbox.policy.load import LoadedProfile
from sandbox.policy.model import Policy
from sandbox.runner import state
from sandbox.runner.client import ForkServerClient
from sandbox.runner.result import RunResult, Usage, Verdict
from sandbox.runner.verdict import KillReason, Observation, classify, exit_and_signal
from sandbox.syscalls.consts import CloneFlag

log = logging.getLogger(__name__)
POLL_INTERVAL = 0.005
STDIO_INHERIT = -1


@dataclass
class RunRequest:
    """One run: the command and where its standard streams go.

    ``stdin``: bytes to feed, an fd, or None for /dev/null. ``stdout``/``stderr``:
    an fd (passed through; ``STDIO_INHERIT`` for the caller's own), or None to
    capture into the result (capped by the policy's output limit).
    """

    argv: Sequence[str]
    profile: LoadedProfile
    stdin: bytes | int | None = None
    stdout: int | None = None
    stderr: int | None = None
    ablate: frozenset[str] = frozenset()
    cwd: str | None = None


@dataclass
class _Live:
    """Mutable state of the wait loop."""

    exec_at: float | None = None
    ended_at: float | None = None
    failure: bytes = b""
    errpipe_done: bool = False
    status: PayloadStatus | None = None
    status_done: bool = False
    killed_for: KillReason | None = None
    outs: dict[int, _Out] = field(default_factory=dict)  # by our read fd
    out_total: int = 0
    stdin_fd: int = -1
    stdin_data: memoryview | None = None

    def captured(self, stream: int) -> bytes | None:
        """Captured bytes of stream 1 or 2 (None when not captured)."""
        for o in self.outs.values():
            if o.stream == stream and o.forward_to is None:
                return bytes(o.buf)
        return None


@dataclass
class _Out:
    """One output pipe: captured into ``buf`` or forwarded to ``forward_to``, counted."""

    stream: int
    forward_to: int | None
    buf: bytearray = field(default_factory=bytearray)


def rlimits(policy: Policy) -> tuple[Rlimit, ...]:
    """RLIMIT_CORE=0 and the profile's limits; RLIMIT_CPU only as a backstop to polling."""
    lim = policy.limits
    out = [Rlimit(resource.RLIMIT_CORE, 0, 0)]
    pairs: list[tuple[int, int | None]] = [
        (resource.RLIMIT_NOFILE, lim.open_files),
        (resource.RLIMIT_NPROC, lim.processes),
        (resource.RLIMIT_FSIZE, lim.file_size),
        (resource.RLIMIT_STACK, lim.stack),
        (resource.RLIMIT_MEMLOCK, lim.memlock),
        (resource.RLIMIT_MSGQUEUE, lim.msgqueue),
        (resource.RLIMIT_SIGPENDING, lim.sigpending),
    ]
    out += [Rlimit(r, v, v) for r, v in pairs if v is not None]
    if lim.cpu_time is not None:
        soft = math.ceil(lim.cpu_time) + 1
        out.append(Rlimit(resource.RLIMIT_CPU, soft, soft + 1))
    return tuple(out)


def unshare_flags(policy: Policy, host: HostFacts) -> int:
    """CLONE_NEW* flags for the outer child (CLONE_NEWCGROUP comes later, in the payload)."""
    ns = policy.namespaces
    flags = CloneFlag.CLONE_NEWUSER
    for on, flag in (
        (ns.mount, CloneFlag.CLONE_NEWNS),
        (ns.pid, CloneFlag.CLONE_NEWPID),
        (ns.net, CloneFlag.CLONE_NEWNET),
        (ns.ipc, CloneFlag.CLONE_NEWIPC),
        (ns.uts, CloneFlag.CLONE_NEWUTS),
        (ns.time and host.time_ns, CloneFlag.CLONE_NEWTIME),
    ):
        if on:
            flags |= flag
    # The mount namespace is not optional: the overlay root lives in it.
    return int(flags | CloneFlag.CLONE_NEWNS)


# Builders for the per-layer artifacts, filled in by sandbox.runner.layers.
LayerBuilder = Callable[..., Any]


class Supervisor:
    """Runs requests through one fork server; safe to use from several threads."""

    def __init__(
        self, host: HostFacts, client: ForkServerClient, layers: Any | None = None
    ) -> None:
        self.host = host
        self.client = client
        if layers is None:
            from sandbox.runner.layers import LayerBuilders

            layers = LayerBuilders(host)
            layers.sweep()
        self.layers = layers

    # ------------------------------------------------------------ run ----
    def run(self, req: RunRequest) -> RunResult:
        """Run one request to its verdict. Raises SandboxError subclasses before spawning."""
        policy = req.profile.policy
        digest = req.profile.digest
        states = enforce.static_states(policy, self.host, req.ablate)
        enforce.check(
            policy, states, req.ablate, self.host, warn=False, pending=frozenset({"cgroups"})
        )
        with ExitStack() as stack:
            image_dir = None
            if not policy.filesystem.rootfs:
                image_dir, lock_fd = fsimage.ensure(
                    self.layers.image_spec(policy), state.state_dir()
                )
                stack.callback(os.close, lock_fd)
            mounts0 = plan_mounts(policy.filesystem, str(image_dir) if image_dir else None, None)
            program = resolve(req.argv[0], policy.env.path, mounts0.binds, mounts0.lowers, req.cwd)
            mounts = (
                replace(mounts0, program=(program.copy_from, os.path.basename(program.inside_path)))
                if program.copy_from
                else mounts0
            )
            run_id = state.new_run_id()
            lock = state.acquire_run_lock(run_id)
            stack.callback(lock.release)
            host_uid = stack.enter_context(state.id_slot())
            built = self.layers.build(policy, states, req.ablate, program, run_id, stack)
            enforce.check(policy, built.states, req.ablate, self.host)
            plan = self._plan(policy, digest, run_id, host_uid, mounts, program, req, built)
            return self._spawn_and_wait(req, plan, built, lock, digest)

    def _plan(
        self,
        policy: Policy,
        digest: str,
        run_id: str,
        host_uid: int,
        mounts: MountPlan,
        program: Program,
        req: RunRequest,
        built: Any,
    ) -> LaunchPlan:
        ablate = req.ablate
        return LaunchPlan(
            run_id=run_id,
            policy_digest=digest,
            inside_uid=policy.identity.uid,
            inside_gid=policy.identity.gid,
            host_uid=host_uid,
            host_gid=host_uid,
            id_mode="slot",
            hostname=policy.identity.hostname,
            unshare_flags=unshare_flags(policy, self.host),
            cgroupns=policy.namespaces.cgroup,
            nested_userns=policy.namespaces.nested_userns,
            mounts=mounts,
            exec_path=program.inside_path,
            argv=(program.inside_path if "/" in req.argv[0] else req.argv[0], *req.argv[1:]),
            env=tuple(sorted(policy.env.resolved().items())),
            workdir=policy.filesystem.workdir,
            apparmor_profile=built.apparmor_profile,
            no_new_privs="no_new_privs" not in ablate,
            drop_caps="capabilities" not in ablate,
            caps_keep=built.caps_keep,
            rlimits=rlimits(policy),
            landlock=built.landlock,
            seccomp=built.seccomp,
            join_cgroup=bool(built.cgroup_procs),
        )

    # ---------------------------------------------------------- spawn ----
    def _spawn_and_wait(
        self, req: RunRequest, plan: LaunchPlan, built: Any, lock: state.RunLock, digest: str
    ) -> RunResult:
        policy = req.profile.policy
        with ExitStack() as stack:
            mine: list[int] = []  # our ends, closed at the end
            theirs: list[tuple[str, int]] = []  # child ends, closed after the spawn
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            st_r, st_w = os.pipe2(os.O_CLOEXEC)
            mine += [err_r, st_r]
            live = _Live()
            stack.callback(lambda: live.stdin_fd >= 0 and os.close(live.stdin_fd))
            self._stdio(req, live, mine, theirs)
            theirs += [("errpipe", err_w), ("status", st_w)]
            theirs += [(f"cgroup{i}", fd) for i, fd in enumerate(built.cgroup_procs)]
            stack.callback(lambda: [os.close(fd) for fd in mine])
            cleanup = {"cgroup_dirs": built.cgroup_dirs, "files": [str(lock.path)]}
            q = self.client.spawn(plan, theirs, cleanup)
            for name, fd in theirs:
                if not name.startswith("cgroup"):
                    os.close(fd)
            stack.callback(self.client.send, "release", plan.run_id)
            reply = self._await(q, ("spawned", "failed", "server_died"))
            if reply["op"] != "spawned":
                raise SandboxInternalError(f"fork server: {reply.get('error', reply['op'])}")
            t_spawn = time.monotonic()
            self._wait(req, plan, built, live, err_r, st_r)
            wall_end = live.ended_at or time.monotonic()
            return self._result(req, plan, built, live, digest, policy, t_spawn, wall_end)

    def _stdio(
        self, req: RunRequest, live: _Live, mine: list[int], theirs: list[tuple[str, int]]
    ) -> None:
        """Child ends of stdin/stdout/stderr into ``theirs``; our ends into ``live``/``mine``."""
        if isinstance(req.stdin, bytes):
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(w, False)
            live.stdin_fd, live.stdin_data = w, memoryview(req.stdin)
            theirs.append(("stdin", r))
        elif isinstance(req.stdin, int):
            theirs.append(("stdin", os.dup(0 if req.stdin == STDIO_INHERIT else req.stdin)))
        else:
            theirs.append(("stdin", os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)))
        limit = req.profile.policy.limits.output
        for n, name, want in ((1, "stdout", req.stdout), (2, "stderr", req.stderr)):
            target = None if want is None else (n if want == STDIO_INHERIT else want)
            if target is None or limit is not None:
                # Captured, or forwarded through us so the output limit can be counted.
                r, w = os.pipe2(os.O_CLOEXEC)
                mine.append(r)
                live.outs[r] = _Out(n, target)
                theirs.append((name, w))
            else:
                theirs.append((name, os.dup(target)))

    @staticmethod
    def _await(
        q: queue.Queue[dict[str, Any]], ops: tuple[str, ...], timeout: float = 30.0
    ) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            try:
                msg = q.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty as e:
                raise SandboxInternalError(f"fork server did not answer ({ops})") from e
            if msg["op"] in ops:
                return msg

    # ----------------------------------------------------------- wait ----
    def _wait(
        self, req: RunRequest, plan: LaunchPlan, built: Any, live: _Live, err_r: int, st_r: int
    ) -> None:
        lim = req.profile.policy.limits
        sel = selectors.DefaultSelector()
        sel.register(err_r, selectors.EVENT_READ, "err")
        sel.register(st_r, selectors.EVENT_READ, "status")
        for fd in live.outs:
            sel.register(fd, selectors.EVENT_READ, "out")
        if live.stdin_fd >= 0:
            sel.register(live.stdin_fd, selectors.EVENT_WRITE, "in")
        status_buf = b""
        drain_until: float | None = None
        while True:
            now = time.monotonic()
            timeout = None
            if live.exec_at is not None and live.status is None:
                if lim.wall_time is not None:
                    timeout = max(0.0, live.exec_at + lim.wall_time - now)
                if lim.cpu_time is not None and built.cpu_usage is not None:
                    timeout = POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)
            if drain_until is not None:
                timeout = max(0.0, drain_until - now)
            if not sel.get_map():
                break
            for key, _ in sel.select(timeout):
                tag = key.data
                if tag == "err":
                    data = os.read(err_r, 4096)
                    if data:
                        live.failure += data
                    else:
                        sel.unregister(err_r)
                        live.errpipe_done = True
                        live.exec_at = time.monotonic()
                elif tag == "status":
                    data = os.read(st_r, 4096)
                    status_buf += data
                    if not data or len(status_buf) >= PayloadStatus.SIZE:
                        live.ended_at = time.monotonic()
                        if len(status_buf) >= PayloadStatus.SIZE:
                            live.status = PayloadStatus.decode(status_buf)
                        sel.unregister(st_r)
                        live.status_done = True
                        drain_until = time.monotonic() + 2.0
                elif tag == "in":
                    self._feed(sel, live)
                else:
                    self._read_output(sel, key.fd, live, lim.output, plan, built)
            if live.status_done and (
                drain_until is None
                or time.monotonic() >= drain_until
                or all(k.data == "in" for k in sel.get_map().values())
            ):
                break
            if live.exec_at is not None and live.status is None and live.killed_for is None:
                self._check_limits(plan, built, live, lim.wall_time, lim.cpu_time)
        sel.close()

    def _feed(self, sel: selectors.BaseSelector, live: _Live) -> None:
        data = live.stdin_data
        try:
            n = os.write(live.stdin_fd, data[:65536]) if data else 0
        except BrokenPipeError:
            n = len(data) if data else 0
        except BlockingIOError:
            n = 0
        live.stdin_data = data[n:] if data else None
        if not live.stdin_data:
            sel.unregister(live.stdin_fd)
            os.close(live.stdin_fd)  # EOF for the payload
            live.stdin_fd = -1

    def _read_output(
        self,
        sel: selectors.BaseSelector,
        fd: int,
        live: _Live,
        limit: int | None,
        plan: LaunchPlan,
        built: Any,
    ) -> None:
        data = os.read(fd, 65536)
        if not data:
            sel.unregister(fd)
            return
        live.out_total += len(data)
        if limit is not None and live.out_total > limit:
            data = data[: max(0, len(data) - (live.out_total - limit))]
            if live.killed_for is None:
                live.killed_for = "output"
                self._kill(plan, built)
        out = live.outs[fd]
        if out.forward_to is not None:
            os.write(out.forward_to, data)
        else:
            out.buf.extend(data)

    def _check_limits(
        self, plan: LaunchPlan, built: Any, live: _Live, wall: float | None, cpu: float | None
    ) -> None:
        assert live.exec_at is not None
        if wall is not None and time.monotonic() - live.exec_at >= wall:
            live.killed_for = "wall"
        elif cpu is not None and built.cpu_usage is not None and built.cpu_usage() >= cpu:
            live.killed_for = "time"
        if live.killed_for:
            self._kill(plan, built)

    def _kill(self, plan: LaunchPlan, built: Any) -> None:
        if built.kill is not None:
            built.kill()
        self.client.send("kill", plan.run_id)

    # --------------------------------------------------------- result ----
    def _result(
        self,
        req: RunRequest,
        plan: LaunchPlan,
        built: Any,
        live: _Live,
        digest: str,
        policy: Policy,
        t_spawn: float,
        t_end: float,
    ) -> RunResult:
        if live.failure:
            f = decode_failure(live.failure)
            err = SpawnError(f.step, f.errno, f.message)
            raise err
        st = live.status
        usage = built.usage(st, (t_end - live.exec_at) if live.exec_at else None)
        obs = Observation(
            status=st.status if st else None,
            killed_for=live.killed_for,
            oom_killed=usage.oom_killed,
            cpu_time=usage.cpu_time,
            cpu_limit=policy.limits.cpu_time,
        )
        verdict = classify(obs)
        code, sig = exit_and_signal(st.status if st else None)
        return RunResult(
            verdict=verdict,
            exit_code=code,
            signal=sig,
            policy_digest=digest,
            profile=policy.name,
            run_id=plan.run_id,
            host_uid=plan.host_uid,
            id_mode=plan.id_mode,
            enforcement=built.final_states(),
            usage=usage,
            message=_message(verdict, live),
            stdout=live.captured(1),
            stderr=live.captured(2),
        )


def _message(verdict: Verdict, live: _Live) -> str:
    if verdict == Verdict.INTERNAL_ERROR and live.status is None:
        return "the container's init ended without reporting the payload's status"
    return ""


def base_usage(st: PayloadStatus | None, wall: float | None) -> Usage:
    """Figures from wait4 alone (no cgroup)."""
    if st is None:
        return Usage(wall_time=wall)
    return Usage(
        cpu_time=st.utime + st.stime,
        cpu_user=st.utime,
        cpu_system=st.stime,
        wall_time=wall,
        max_rss=st.maxrss_kib * 1024,
        csw_voluntary=st.nvcsw,
        csw_forced=st.nivcsw,
    )

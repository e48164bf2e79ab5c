"""The supervisor: one run from policy to verdict (parent side, STYLE B6).

Flat sequence: decide layers (fail closed) -> resolve the program -> take a run
lock and an id slot -> image, cgroup leaf, artifacts -> LaunchPlan -> spawn
through the fork server -> watch (errpipe, status, streams, limits,
violations: ``sandbox.runner.watch``) -> account -> classify -> clean up in
reverse order. Cleanup never raises over the primary result; the fork
server removes what a killed supervisor left.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import resource
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox import enforce
from sandbox.errors import PolicyError, SandboxInternalError, SpawnError
from sandbox.fs.ops import MountPlan, plan_mounts
from sandbox.fs.resolve import Program, resolve
from sandbox.host import HostFacts
from sandbox.launcher.protocol import PayloadStatus, decode_failure
from sandbox.paths import runtime_dir, staging_dir
from sandbox.plan import LaunchPlan, Rlimit
from sandbox.policy.profile import LoadedProfile
from sandbox.runner import ablation, state
from sandbox.runner.client import ForkServerClient
from sandbox.runner.control import RunControl
from sandbox.runner.result import RunResult, Usage, Verdict, Violation
from sandbox.runner.verdict import KillReason, Observation, classify, exit_and_signal
from sandbox.runner.watch import Out, Watch, arch_name, syscall_name
from sandbox.seccomp.actions import errno_number
from sandbox.syscalls.consts import CloneFlag
from sandbox.syscalls.notify import KmsgReader, Notification, child_pids

if TYPE_CHECKING:
    from sandbox.policy.model import Policy

log = logging.getLogger(__name__)
# A library configures no handler; this one keeps Python's last-resort handler
# from printing our warnings on the caller's stderr. The CLI sets up its own.
logging.getLogger("sandbox").addHandler(logging.NullHandler())
STDIO_INHERIT = -1
_BOX_NAME = re.compile(r"^[A-Za-z0-9_.+-][A-Za-z0-9_.+/-]{0,254}$")
_NATIVE_ARCH = 0xC000003E


@dataclass
class RunRequest:
    """One run: the command, its standard streams, files in and out of /box.

    ``stdin``: bytes to feed, an fd, or None for /dev/null. ``stdout``/``stderr``:
    an fd (passed through; ``STDIO_INHERIT`` for the caller's own), or None to
    capture into the result (capped by the policy's output limit). ``files``:
    (name under /box, bytes or host path); ``collect``: names under /box
    returned in ``RunResult.files``.
    """

    argv: Sequence[str]
    profile: LoadedProfile
    stdin: bytes | int | None = None
    stdout: int | None = None
    stderr: int | None = None
    ablate: frozenset[str] = frozenset()
    cwd: str | None = None
    files: tuple[tuple[str, bytes | str], ...] = ()
    collect: tuple[str, ...] = ()
    control: RunControl | None = None
    # Learning mode: each seccomp notification goes to this handler (see Watch); a
    # Violation it returns stops the run as a security violation.
    on_notification: Callable[[Notification, int], Violation | None] | None = None


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
    flags = CloneFlag.CLONE_NEWUSER | CloneFlag.CLONE_NEWNS  # the overlay root lives there
    for on, flag in (
        (ns.pid, CloneFlag.CLONE_NEWPID),
        (ns.net, CloneFlag.CLONE_NEWNET),
        (ns.ipc, CloneFlag.CLONE_NEWIPC),
        (ns.uts, CloneFlag.CLONE_NEWUTS),
        (ns.time and host.time_ns, CloneFlag.CLONE_NEWTIME),
    ):
        if on:
            flags |= flag
    return int(flags)


def check_box_name(name: str) -> str:
    """A file name under /box: relative, no '..', no NUL.

    Raises:
        PolicyError: naming the bad name.
    """
    if not _BOX_NAME.match(name) or ".." in name.split("/") or "//" in name:
        raise PolicyError(f"file name {name!r} must be a relative path inside /box")
    return name


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
        ablation.check(req.ablate)
        states = enforce.static_states(policy, self.host, req.ablate)
        enforce.check(
            policy, states, req.ablate, self.host, warn=False, pending=frozenset({"cgroups"})
        )
        for name, _ in req.files:
            check_box_name(name)
        for name in req.collect:
            check_box_name(name)
        with ExitStack() as stack:
            image_dir = None
            if not policy.filesystem.rootfs:
                image_dir, lock_fd = self.layers.image(policy)
                stack.callback(os.close, lock_fd)
            mounts = plan_mounts(policy.filesystem, str(image_dir) if image_dir else None, None)
            program = resolve(req.argv[0], policy.env.path, mounts.binds, mounts.lowers, req.cwd)
            if program.copy_from:
                mounts = replace(
                    mounts, program=(program.copy_from, os.path.basename(program.inside_path))
                )
            run_id = state.new_run_id()
            lock = state.acquire_run_lock(run_id)
            stack.callback(lock.release)
            if req.files:
                mounts = replace(mounts, copy_in=self._stage_files(req, run_id, stack))
            rootless = not self.host.is_root
            mounts = replace(mounts, staging=str(staging_dir()), rootless=rootless)
            if rootless:  # the caller's own ids: one uid and one gid are all it may map
                host_ids = (os.geteuid(), os.getegid())
            else:  # a run slot of its own, never the caller's, never an identity map
                slot = stack.enter_context(state.id_slot())
                host_ids = (slot, slot)
            built = self.layers.build(policy, states, req.ablate, program, run_id, stack)
            enforce.check(policy, built.states, req.ablate, self.host)
            report = self.layers.verify(req.profile, built)
            plan = self._plan(policy, req, run_id, host_ids, mounts, program, built)
            if req.ablate:
                plan = ablation.apply(plan, req.ablate)
            result = self._spawn_and_watch(req, plan, built, lock, stack)
            return replace(result, verification=report.hash)

    def _stage_files(
        self, req: RunRequest, run_id: str, stack: ExitStack
    ) -> tuple[tuple[str, str], ...]:
        """Host paths of the files to copy into /box; bytes go through a private temp dir."""
        staged: list[tuple[str, str]] = []
        tmp = runtime_dir() / "runs" / f"{run_id}.files"
        for i, (name, content) in enumerate(req.files):
            if isinstance(content, bytes):
                tmp.mkdir(mode=0o700, exist_ok=True)
                path = tmp / str(i)
                path.write_bytes(content)
                staged.append((str(path), name))
            else:
                if not os.path.isfile(content):
                    raise PolicyError(f"file for /box/{name}: {content!r} is not a regular file")
                staged.append((os.path.abspath(content), name))
        stack.callback(shutil.rmtree, tmp, True)
        return tuple(staged)

    def _plan(
        self,
        policy: Policy,
        req: RunRequest,
        run_id: str,
        host_ids: tuple[int, int],
        mounts: MountPlan,
        program: Program,
        built: Any,
    ) -> LaunchPlan:
        return LaunchPlan(
            run_id=run_id,
            policy_digest=req.profile.digest,
            inside_uid=policy.identity.uid,
            inside_gid=policy.identity.gid,
            host_uid=host_ids[0],
            host_gid=host_ids[1],
            id_mode="rootless" if mounts.rootless else "slot",
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
            caps_keep=built.caps_keep,
            rlimits=rlimits(policy),
            landlock=built.landlock,
            seccomp=built.seccomp,
            join_cgroup=bool(built.cgroup_join),
            collect=tuple(req.collect),
        )

    # ---------------------------------------------------------- spawn ----
    def _spawn_and_watch(
        self, req: RunRequest, plan: LaunchPlan, built: Any, lock: state.RunLock, stack: ExitStack
    ) -> RunResult:
        policy = req.profile.policy
        mine: list[int] = []  # our ends, closed at the end
        theirs: list[tuple[str, int]] = []  # child ends, closed after the spawn
        stack.callback(lambda: [os.close(fd) for fd in mine])
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        st_r, st_w = os.pipe2(os.O_CLOEXEC)
        mine += [err_r, st_r]
        kmsg = KmsgReader()
        stack.callback(kmsg.close)
        c_pid: list[int] = []

        def kill(_reason: KillReason) -> None:
            # The payload and what it started, not its init: init then reports the
            # payload's status as usual and kills what is left in its namespace.
            if built.kill is not None:
                built.kill()
            else:
                pid = _payload_pid(c_pid[0] if c_pid else 0)
                if pid is None:
                    self.client.send("kill", plan.run_id)
                else:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

        def kill_launcher() -> None:
            self.client.send("kill", plan.run_id)  # PDEATHSIG takes init and its namespace

        watch = Watch(
            err_r=err_r,
            status_r=st_r,
            kill=kill,
            kill_launcher=kill_launcher,
            cpu_usage=built.cpu_usage,
            wall_limit=policy.limits.wall_time,
            cpu_limit=policy.limits.cpu_time,
            output_limit=policy.limits.output,
            deny_errno=_deny_errno(policy),
            payload_pid=lambda: _payload_pid(c_pid[0] if c_pid else 0),
            listener_by_rights=plan.id_mode == "rootless",
            control=req.control,
            on_notification=req.on_notification,
        )
        stack.callback(watch.close)
        self._stdio(req, watch, mine, theirs)
        theirs += [("errpipe", err_w), ("status", st_w)]
        if plan.seccomp is not None and plan.seccomp.notify:
            ours, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            watch.notify_fd = ours.detach()
            theirs.append(("notify", child.detach()))
        theirs += [(f"cgroup{i}", fd) for i, fd in enumerate(built.cgroup_join)]
        cleanup = {"cgroup_dirs": built.cgroup_dirs, "files": [str(lock.path)]}
        q = self.client.spawn(plan, theirs, cleanup)
        for name, fd in theirs:
            if not name.startswith("cgroup"):
                os.close(fd)
        stack.callback(self.client.send, "release", plan.run_id)
        reply = self._await(q, ("spawned", "failed", "server_died"))
        if reply["op"] != "spawned":
            raise SandboxInternalError(f"fork server: {reply.get('error', reply['op'])}")
        c_pid.append(int(reply["pid"]))
        if req.control is not None:
            req.control.attach(built.freeze, built.thaw)
        try:
            watch.run()
        finally:
            if req.control is not None:
                req.control.finished.set()
        if watch.failure:
            f = decode_failure(watch.failure)
            raise SpawnError(f.step, f.errno, f.message)
        return self._result(req, plan, built, watch, kmsg)

    def _stdio(
        self, req: RunRequest, watch: Watch, mine: list[int], theirs: list[tuple[str, int]]
    ) -> None:
        """Child ends of stdin/stdout/stderr into ``theirs``; our ends into ``watch``/``mine``."""
        if isinstance(req.stdin, bytes):
            r, w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(w, False)
            watch.stdin_fd, watch.stdin_data = w, memoryview(req.stdin)
            theirs.append(("stdin", r))
        elif isinstance(req.stdin, int):
            fd = 0 if req.stdin == STDIO_INHERIT else req.stdin
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                # A directory fd would hand the payload a handle on the host's tree.
                raise PolicyError("stdin is a directory: give a file, a pipe or a terminal")
            theirs.append(("stdin", os.dup(fd)))
        else:
            theirs.append(("stdin", os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)))
        limit = req.profile.policy.limits.output
        for n, name, want in ((1, "stdout", req.stdout), (2, "stderr", req.stderr)):
            target = None if want is None else (n if want == STDIO_INHERIT else want)
            if target is None or limit is not None:
                # Captured, or forwarded through us so the output limit can be counted
                # (through our own dup: the caller may close its fd once the run started).
                r, w = os.pipe2(os.O_CLOEXEC)
                mine.append(r)
                if target is not None:
                    target = os.dup(target)
                    mine.append(target)
                watch.outs[r] = Out(n, target)
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

    # --------------------------------------------------------- result ----
    def _result(
        self, req: RunRequest, plan: LaunchPlan, built: Any, watch: Watch, kmsg: KmsgReader
    ) -> RunResult:
        policy = req.profile.policy
        st = watch.status
        wall = (watch.ended_at or time.monotonic()) - watch.exec_at if watch.exec_at else None
        usage = built.usage(st, wall)
        violation = watch.violation
        code, sig = exit_and_signal(st.status if st else None)
        if violation is None and sig == signal.SIGSYS:
            violation = _kernel_kill(kmsg, plan.host_uid)
        obs = Observation(
            status=st.status if st else None,
            killed_for=watch.killed_for,
            violation=violation is not None,
            oom_killed=usage.oom_killed,
            cpu_time=usage.cpu_time,
            cpu_limit=policy.limits.cpu_time,
        )
        verdict = classify(obs)
        files = {k: v for k, v in watch.files.items() if isinstance(v, bytes)}
        return RunResult(
            verdict=verdict,
            exit_code=code,
            signal=sig,
            policy_digest=req.profile.digest,
            profile=policy.name,
            run_id=plan.run_id,
            host_uid=plan.host_uid,
            id_mode=plan.id_mode,
            enforcement=built.final_states(),
            usage=usage,
            violation=violation,
            denied=tuple(watch.denied),
            message=_message(verdict, watch, violation),
            stdout=watch.captured(1),
            stderr=watch.captured(2),
            files=files,
            notes=ablation.notes(req.ablate),
        )


def _deny_errno(policy: Policy) -> int | None:
    """errno for denials the supervisor answers (default action 'errno' compiled as notify)."""
    if policy.seccomp.default_action != "errno":
        return None
    return errno_number(policy.seccomp.default_errno)


def _payload_pid(outer: int) -> int | None:
    """Host pid of the payload: the child of the container's init, the outer's child."""
    for init in child_pids(outer):
        kids = child_pids(init)
        if kids:
            return kids[0]
    return None


def _kernel_kill(kmsg: KmsgReader, uid: int) -> Violation | None:
    """A seccomp kill the kernel logged for this run's host uid (foreign ABI or kill action)."""
    for k in kmsg.kills(uid):
        return Violation(syscall_name(k.nr, k.arch), k.nr, arch_name(k.arch, k.nr))
    return None


def _message(verdict: Verdict, watch: Watch, violation: Violation | None) -> str:
    if violation is not None:
        return f"denied syscall {violation.syscall} ({violation.arch})"
    if verdict == Verdict.INTERNAL_ERROR and watch.status is None:
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
        rchar=st.rchar if st.rchar >= 0 else None,
        wchar=st.wchar if st.wchar >= 0 else None,
    )


__all__ = ["STDIO_INHERIT", "Path", "RunRequest", "Supervisor", "base_usage", "rlimits"]

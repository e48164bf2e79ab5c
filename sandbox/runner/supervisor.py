"""The supervisor: one run from policy to verdict, as a straight pipeline (STYLE B6).

    compile -> verify -> acquire -> launch -> supervise -> release

- ``sandbox.compile``: policy + host facts + request -> every artifact and the
  LaunchPlan, as frozen data (nothing held, nothing loaded);
- ``sandbox.verify.cache.verify_run``: exactly those artifacts (the BPF bytes,
  the Landlock rules, the AppArmor text the kernel will get, the mount plan),
  cached by their digest; a blocking finding refuses the run;
- ``runner.acquire``: run lock, image pin, id slot, staged files, cgroup
  leaf, the fail-closed check with the leaf's state, the AppArmor load;
- ``runner.launch``: pipes and the spawn request to the launcher;
- ``runner.supervise``: the watch loop, accounting, the verdict;
- ``runner.release``: everything given back in reverse, never raising over
  the result; with ``background_release``, after the result went back to the
  caller (``runner.release.Releaser``).

With ``leaf_pool``, the acquire stage takes the run id, lock and cgroup leaf
from a pool made ahead for the same cgroup request (``runner.pool``).
:meth:`Supervisor.close` (or interpreter exit) finishes pending releases
and removes what is still pooled.

Every entry (the library, the CLI, ``learn``, the OCI runtime) builds a
:class:`RunRequest` and calls :meth:`Supervisor.run`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sandbox.compile import Artifacts, CompiledRun, Request, compile_run, staged_name
from sandbox.errors import SetupError, SpawnError
from sandbox.fs import hostpath
from sandbox.fs.exe import HEAD_SIZE
from sandbox.fs.staging import File, FileContent
from sandbox.host import HostFacts
from sandbox.policy.profile import LoadedProfile
from sandbox.runner.acquire import Acquirer, LeafPoolT, Resources
from sandbox.runner.control import RunControl
from sandbox.runner.launch import STDIO_INHERIT, Launched, LauncherClient, Stdio, launch
from sandbox.runner.pool import Foreground
from sandbox.runner.release import Releaser, release
from sandbox.runner.result import RunResult, Violation
from sandbox.runner.supervise import supervise
from sandbox.syscalls.consts import CloneFlag
from sandbox.syscalls.notify import Notification

log = logging.getLogger(__name__)
# A library configures no handler; this one keeps Python's last-resort handler
# from printing our warnings on the caller's stderr. The CLI sets up its own.
logging.getLogger("sandbox").addHandler(logging.NullHandler())


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
    files: tuple[tuple[str, FileContent], ...] = ()
    collect: tuple[str, ...] = ()
    control: RunControl | None = None
    slot: int | None = None  # a run slot the caller holds (isolate's boxes), see Acquirer
    # Learning mode: each seccomp notification goes to this handler (see Watch); a
    # Violation it returns stops the run as a security violation.
    on_notification: Callable[[Notification, int], Violation | None] | None = None

    def compile_request(self) -> Request:
        """What the compile stage needs of this request."""
        names = tuple(name for name, _ in self.files)
        return Request(
            argv=tuple(self.argv),
            cwd=self.cwd,
            files=names,
            collect=tuple(self.collect),
            ablate=self.ablate,
            program_head=self._program_head(names),
        )

    def _program_head(self, names: tuple[str, ...]) -> bytes:
        """The first bytes of PROGRAM when it names a staged file (see compile.staged_name).

        A host path is read as the acquire stage will stage it: no symlink a
        payload could have planted is followed (sandbox.fs.hostpath).
        """
        if not self.argv:
            return b""
        name = staged_name(self.argv[0], names)
        for staged, content in self.files:
            if staged != name:
                continue
            if isinstance(content, File):
                content = content.content
            if isinstance(content, bytes):
                return content[:HEAD_SIZE]
            if isinstance(content, str | os.PathLike):
                return hostpath.read_head(os.fspath(content), HEAD_SIZE)
        return b""


class Supervisor:
    """Runs requests through one launcher; safe to use from several threads.

    ``leaf_pool``: cgroup leaves kept ready per cgroup request (0: none; each
    is registered with the launcher, whose watchdog removes it should we be
    killed). ``background_release``: release after the result is returned;
    :meth:`close` waits for those (interpreter exit too).
    """

    def __init__(
        self,
        host: HostFacts,
        client: LauncherClient,
        *,
        artifacts: Artifacts | None = None,
        acquirer: Acquirer | None = None,
        leaf_pool: int = 0,
        background_release: bool = False,
    ) -> None:
        self.host = host
        self.client = client
        self.artifacts = artifacts or Artifacts(host)
        if acquirer is None:
            acquirer = Acquirer(host)
            acquirer.sweep()
        self.acquirer = acquirer
        # Background work (pool, releases) waits while a run is being set up.
        self.foreground = Foreground()
        self.pool: LeafPoolT | None = None
        if leaf_pool > 0:
            self.pool = acquirer.make_pool(
                client.hold,
                lambda run_id: client.send("release", run_id),
                leaf_pool,
                foreground=self.foreground,
            )
        self.releaser = Releaser(foreground=self.foreground) if background_release else None

    def close(self) -> None:
        """Finish pending releases, then remove the pooled leaves. Idempotent.

        Call it before closing the launcher client: its watchdog would remove
        them too, but a supervisor gives back its own.
        """
        if self.releaser is not None:
            self.releaser.close()
        if self.pool is not None:
            self.pool.close()

    def run(self, req: RunRequest) -> RunResult:
        """Run one request to its verdict.

        Raises:
            SandboxError: subclasses before the payload runs (bad policy or
                request, a failed verification, a layer that cannot be
                enforced, a resource that cannot be made, a spawn failure).
        """
        from sandbox.verify.cache import verify_run

        with self.foreground.busy():  # the background work waits for the run's setup
            compiled = compile_run(req.profile, self.host, req.compile_request(), self.artifacts)
            report = verify_run(compiled, self.host)
            res = self._acquire(compiled, req)
            launched = self._launch(compiled, res, req)
        done = False
        try:
            result = supervise(launched, compiled, res, req.control, report.hash)
            if res.leaf is not None and not res.plan.unshare_flags & CloneFlag.CLONE_NEWPID:
                # No task of the run outlives its result. With a pid namespace its
                # init's kill(-1) already did this before it reported the status.
                res.leaf.kill()
            done = True
        except SpawnError as e:
            e.enforcement = dict(res.states)  # what was in force when the child failed
            raise
        finally:
            # The accounting was read by supervise: the leaf may go after the result.
            if done and self.releaser is not None:
                self.releaser.submit(res)
            else:
                release(res)
        return result

    def _launch(self, compiled: CompiledRun, res: Resources, req: RunRequest) -> Launched:
        """The launch stage; on failure the run's resources are released at once."""
        try:
            return launch(
                compiled,
                res,
                Stdio(req.stdin, req.stdout, req.stderr),
                self.client,
                control=req.control,
                on_notification=req.on_notification,
            )
        except BaseException as e:
            if isinstance(e, SpawnError):
                e.enforcement = dict(res.states)
            release(res)
            raise

    def _acquire(self, compiled: CompiledRun, req: RunRequest) -> Resources:
        """The acquire stage; when it runs short, once more after pending releases."""
        try:
            return self.acquirer.acquire(compiled, req.files, req.slot, pool=self.pool)
        except SetupError:
            if self.releaser is None or not self.releaser.pending:
                raise
            self.releaser.drain()  # finished runs still hold slots, leaves, locks
            return self.acquirer.acquire(compiled, req.files, req.slot, pool=self.pool)


__all__ = ["STDIO_INHERIT", "RunRequest", "Supervisor"]

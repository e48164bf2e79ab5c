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
  the result.

Every entry (the library, the CLI, ``learn``, the OCI runtime) builds a
:class:`RunRequest` and calls :meth:`Supervisor.run`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from sandbox.compile import Artifacts, Request, compile_run, staged_name
from sandbox.errors import SpawnError
from sandbox.fs import hostpath
from sandbox.fs.exe import HEAD_SIZE
from sandbox.fs.staging import File, FileContent
from sandbox.host import HostFacts
from sandbox.policy.profile import LoadedProfile
from sandbox.runner.acquire import Acquirer
from sandbox.runner.control import RunControl
from sandbox.runner.launch import STDIO_INHERIT, LauncherClient, Stdio, launch
from sandbox.runner.release import release
from sandbox.runner.result import RunResult, Violation
from sandbox.runner.supervise import supervise
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
    """Runs requests through one launcher; safe to use from several threads."""

    def __init__(
        self,
        host: HostFacts,
        client: LauncherClient,
        *,
        artifacts: Artifacts | None = None,
        acquirer: Acquirer | None = None,
    ) -> None:
        self.host = host
        self.client = client
        self.artifacts = artifacts or Artifacts(host)
        if acquirer is None:
            acquirer = Acquirer(host)
            acquirer.sweep()
        self.acquirer = acquirer

    def run(self, req: RunRequest) -> RunResult:
        """Run one request to its verdict.

        Raises:
            SandboxError: subclasses before the payload runs (bad policy or
                request, a failed verification, a layer that cannot be
                enforced, a resource that cannot be made, a spawn failure).
        """
        from sandbox.verify.cache import verify_run

        compiled = compile_run(req.profile, self.host, req.compile_request(), self.artifacts)
        report = verify_run(compiled, self.host)
        res = self.acquirer.acquire(compiled, req.files, req.slot)
        try:
            launched = launch(
                compiled,
                res,
                Stdio(req.stdin, req.stdout, req.stderr),
                self.client,
                control=req.control,
                on_notification=req.on_notification,
            )
            result = supervise(launched, compiled, res, req.control)
        except SpawnError as e:
            e.enforcement = dict(res.states)  # what was in force when the child failed
            raise
        finally:
            release(res)
        return replace(result, verification=report.hash)


__all__ = ["STDIO_INHERIT", "RunRequest", "Supervisor"]

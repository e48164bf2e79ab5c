"""Running the program once: the ``Runner`` seam and its ``Outcome`` (supervisor side).

``SupervisorRunner`` runs through ``sandbox.runner.supervisor`` with one fork
server for every run of a learning session; tests use a scripted fake. An
``Outcome`` holds what behaviour comparisons look at: verdict, exit status,
stdout and stderr.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sandbox.host import HostFacts
from sandbox.policy.profile import LoadedProfile
from sandbox.runner.result import Violation
from sandbox.syscalls.notify import Notification

Handler = Callable[[Notification, int], Violation | None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run of one input ended: what behaviour comparisons look at."""

    verdict: str
    exit_code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    violation: str | None = None
    seconds: float = 0.0

    def key(self) -> tuple[object, ...]:
        """What must be identical: verdict, exit status and both outputs."""
        return (self.verdict, self.exit_code, self.signal, self.stdout, self.stderr)

    def describe(self) -> str:
        """One line: ``OK exit 0, 8 bytes out``."""
        how = f"signal {self.signal}" if self.signal is not None else f"exit {self.exit_code}"
        extra = f" ({self.violation})" if self.violation else ""
        return f"{self.verdict}{extra} {how}, {len(self.stdout)}+{len(self.stderr)} bytes out"


class Runner(Protocol):
    """Runs the program once (``SupervisorRunner`` on the real machinery; fakes in tests)."""

    def run(
        self,
        profile: LoadedProfile,
        stdin: bytes | None,
        *,
        ablate: frozenset[str] = frozenset(),
        on_notification: Handler | None = None,
    ) -> Outcome: ...


class SupervisorRunner:
    """``Runner`` through ``sandbox.runner.supervisor`` (one fork server for all runs)."""

    def __init__(
        self,
        argv: Sequence[str],
        files: Sequence[tuple[str, str]] = (),
        host: HostFacts | None = None,
    ) -> None:
        from sandbox.host import probe
        from sandbox.runner.client import ForkServerClient
        from sandbox.runner.supervisor import Supervisor

        self.argv = list(argv)
        self.files = tuple(files)
        self.host = host or probe()
        self.client = ForkServerClient(mode="fork")
        self.supervisor = Supervisor(self.host, self.client)

    def run(
        self,
        profile: LoadedProfile,
        stdin: bytes | None,
        *,
        ablate: frozenset[str] = frozenset(),
        on_notification: Handler | None = None,
    ) -> Outcome:
        from sandbox.errors import SpawnError
        from sandbox.runner.supervisor import RunRequest

        start = time.monotonic()
        try:
            r = self.supervisor.run(
                RunRequest(
                    argv=self.argv,
                    profile=profile,
                    stdin=stdin,
                    ablate=ablate,
                    files=self.files,
                    cwd=os.getcwd(),
                    on_notification=on_notification,
                )
            )
        except SpawnError as e:
            # e.g. a candidate without the exec rule for the program: a behaviour, not a bug
            msg = str(e).encode()
            return Outcome("SPAWN_ERROR", None, None, b"", msg, None, time.monotonic() - start)
        return Outcome(
            verdict=r.verdict.value,
            exit_code=r.exit_code,
            signal=r.signal,
            stdout=r.stdout or b"",
            stderr=r.stderr or b"",
            violation=r.violation.syscall if r.violation else None,
            seconds=time.monotonic() - start,
        )

    def close(self) -> None:
        """Stop the fork server."""
        self.client.close()


__all__ = ["Handler", "Outcome", "Runner", "SupervisorRunner"]

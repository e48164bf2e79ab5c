"""Exception hierarchy: every public API raises only SandboxError subclasses.

The CLI maps each class to an exit status (125 for the sandbox's own failures,
126/127 for a payload that cannot be executed or found).
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """Base of every error the library raises on purpose."""

    exit_status = 125


class PolicyError(SandboxError):
    """An invalid profile or policy: unknown key, bad value, unknown name."""

    def __init__(self, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ArtifactError(SandboxError):
    """Generating a layer's artifact failed."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(f"{layer}: {message}")
        self.layer = layer


class VerificationError(SandboxError):
    """The verification report holds blocking findings."""

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class UnsupportedError(SandboxError):
    """A required layer cannot be enforced on this host (fail closed)."""

    def __init__(self, layer: str, reason: str) -> None:
        super().__init__(f"layer {layer!r} is required but cannot be enforced here: {reason}")
        self.layer = layer
        self.reason = reason


class SetupError(SandboxError):
    """Supervisor-side resource setup failed (cgroup, run directory, id slot...)."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class SpawnError(SandboxError):
    """The child failed before the payload was executed."""

    def __init__(self, step: str, errno: int, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.errno = errno
        self.message = message
        # The layers' states when the child failed (set by the supervisor), for the record.
        self.enforcement: dict[str, Any] | None = None

    @property
    def exit_status(self) -> int:  # type: ignore[override]
        """127 when the program was not found, 126 when it cannot be executed."""
        import errno as e

        if self.step == "exec":
            return 127 if self.errno == e.ENOENT else 126
        return 125


class ProgramNotFound(SandboxError):
    """The program to run does not exist (on the host or on the inside PATH)."""

    exit_status = 127


class SandboxInternalError(SandboxError):
    """A bug or a protocol violation between supervisor and launcher."""

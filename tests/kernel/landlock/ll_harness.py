"""Fork-and-probe harness for Landlock kernel tests (youki's test_in_child_process).

``outcome(op, artifact)`` forks; the child sets no_new_privs (as the launcher
does at step 14), applies ``artifact`` with the real syscalls if one is given,
runs ``op`` and reports 0 or the errno ``op`` raised through a pipe. The same
op run with ``artifact=None`` is the control: it must succeed, so the test
proves that Landlock, not file modes or anything else, is what denies.

``Trees`` lays out directories like a container's: ``ro`` (image, read and
execute), ``rw`` (like /tmp: writable, not executable), ``rwx`` (like /box:
writable and executable) and ``outside`` (no rule), all owned by the caller
with ordinary modes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.landlock.restrict import apply_in_child
from sandbox.landlock.rules import LandlockArtifact, prepare
from sandbox.policy.model import Filesystem
from sandbox.syscalls.consts import Prctl
from sandbox.syscalls.linux import LinuxSyscalls

OK = 0


def outcome(op: Callable[[], object], artifact: LandlockArtifact | None) -> int:
    """Run ``op`` in a forked child (NNP, then Landlock if given); 0 or the errno it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = b"?"
        try:
            os.close(r)
            sc = LinuxSyscalls()
            sc.prctl(Prctl.PR_SET_NO_NEW_PRIVS, 1)
            if artifact is not None:
                apply_in_child(artifact, sc)
            try:
                op()
                status = b"0"
            except OSError as e:
                status = str(e.errno).encode()
        except BaseException as e:  # harness failure: report it, don't mistake it for a denial
            status = b"X" + repr(e).encode()
        finally:
            os.write(w, status)
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if not data or not data[:1].isdigit():
        raise AssertionError(f"child failed outside the operation: {data!r}")
    return int(data)


def denied_only_by_landlock(
    op: Callable[[], object], artifact: LandlockArtifact, expected: int
) -> None:
    """Assert ``op`` fails with ``expected`` under Landlock and succeeds without it.

    The Landlock half runs first, so the control's side effects cannot explain it.
    """
    got = outcome(op, artifact)
    assert got == expected, (
        f"with Landlock: {os.strerror(got) if got else 'success'}, "
        f"expected {os.strerror(expected) if expected else 'success'}"
    )
    control = outcome(op, None)
    assert control == OK, f"control without Landlock failed: {os.strerror(control)}"


@dataclass
class Trees:
    """A container-like layout in a temporary directory."""

    base: Path

    def __post_init__(self) -> None:
        for name in ("ro/sub", "rw/a", "rw/b", "rwx", "outside/dir"):
            (self.base / name).mkdir(parents=True, mode=0o755)
        for name in ("ro/file", "rw/file", "rw/a/f", "rwx/file", "outside/secret"):
            (self.base / name).write_text("data\n")
            (self.base / name).chmod(0o644)

    @property
    def ro(self) -> Path:
        return self.base / "ro"

    @property
    def rw(self) -> Path:
        return self.base / "rw"

    @property
    def rwx(self) -> Path:
        return self.base / "rwx"

    @property
    def outside(self) -> Path:
        return self.base / "outside"

    def artifact(self, abi: int, *, exec_extra: tuple[str, ...] = ()) -> LandlockArtifact:
        """ro: read+exec; rw: write; rwx: write+exec; outside: nothing."""
        fs = Filesystem(
            read_paths=[str(self.ro)],
            exec_paths=[str(self.ro), str(self.rwx), *exec_extra],
            writable=[str(self.rw), str(self.rwx)],
        )
        return prepare(fs, abi)

"""Container state under ``--root`` (light: stdlib only, imported by every command).

``<root>/<id>/`` (0700, root's) holds ``state.json`` (written atomically:
a temp file, fsync, rename), ``lock`` (flock'd by each command for the time
it reads or changes the container) and ``ctl.sock``, the control socket of
the container's supervisor (``oci.shim``). The payload can touch none of
it: the directory lives on the host, outside every mount of the container.

A container's status is what its supervisor last wrote, corrected by
whether that supervisor still lives (its pid *and* start time, so a reused
pid never reads as a live container): a dead supervisor means ``stopped``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re

# Not typing's: every runtime command imports this module, and typing, dataclasses
# and pathlib cost each of them milliseconds (podman calls four per container).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

DEFAULT_ROOT = "/run/sandbox-runtime"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
STATE_FILE = "state.json"


class StateError(Exception):
    """A command that cannot proceed (no such container, wrong state): one line, exit
    ``code`` (1; 127 for a program that does not exist, as runc)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def check_id(cid: str) -> str:
    """A container id safe as a directory name.

    Raises:
        StateError: naming the bad id.
    """
    if not _ID.match(cid):
        raise StateError(f"invalid container id {cid!r}")
    return cid


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if missing and check it is ours and not a symlink.

    Raises:
        StateError: when it is someone else's, a symlink or group/world-writable.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path):
        raise StateError(f"{path} is not a directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise StateError(f"{path} must be owned by uid {os.geteuid()} and not group/world-writable")
    return path


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields follow the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    return int(fields[19])


class Container:
    """One container's directory and state (paths kept as text; ``root``/``dir`` as Path)."""

    __slots__ = ("id", "path", "root_path")

    def __init__(self, root: str | os.PathLike[str], cid: str) -> None:
        self.root_path = os.fspath(root)
        self.id = cid
        self.path = os.path.join(self.root_path, cid)  # ``<root>/<id>``

    def __repr__(self) -> str:
        return f"Container({self.root_path!r}, {self.id!r})"

    @property
    def root(self) -> Path:
        """``--root``."""
        from pathlib import Path

        return Path(self.root_path)

    @property
    def dir(self) -> Path:
        """``<root>/<id>``."""
        from pathlib import Path

        return Path(self.path)

    @property
    def ctl_path(self) -> str:
        """The supervisor's control socket."""
        return os.path.join(self.path, "ctl.sock")

    def exists(self) -> bool:
        """True when the container's state exists."""
        return os.path.isfile(os.path.join(self.path, STATE_FILE))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the container's lock (exclusive) for the block."""
        fd = os.open(
            os.path.join(self.path, "lock"),
            os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
            0o600,
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> dict[str, Any]:
        """The state as written, with ``status`` corrected for a dead supervisor.

        Raises:
            StateError: the container does not exist or its state is unreadable.
        """
        try:
            fd = os.open(
                os.path.join(self.path, STATE_FILE), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
            )
        except FileNotFoundError:
            raise StateError(f"container {self.id!r} does not exist") from None
        with os.fdopen(fd, "rb") as f:
            try:
                st: dict[str, Any] = json.loads(f.read(1 << 20))
            except ValueError as e:
                raise StateError(f"container {self.id!r}: unreadable state: {e}") from None
        if st.get("status") != "stopped" and not self.supervisor_alive(st):
            st["status"] = "stopped"
        return st

    def supervisor_alive(self, st: dict[str, Any]) -> bool:
        """The supervisor recorded in ``st`` still runs (same pid, same start time)."""
        pid = st.get("pid") or 0
        return pid > 0 and start_time(pid) == st.get("supervisor_start")

    def write(self, st: dict[str, Any]) -> None:
        """Replace state.json atomically."""
        tmp = os.path.join(self.path, f".{STATE_FILE}.{os.getpid()}")
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(fd, "w") as f:
            json.dump(st, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.path, STATE_FILE))

    def update(self, **changes: Any) -> dict[str, Any]:
        """Read, change and write the state under the lock; returns the new state."""
        with self.locked():
            st = self.read_raw()
            st.update(changes)
            self.write(st)
            return st

    def read_raw(self) -> dict[str, Any]:
        """state.json exactly as written ({} when missing)."""
        try:
            with open(os.path.join(self.path, STATE_FILE), "rb") as f:
                data: dict[str, Any] = json.loads(f.read(1 << 20))
                return data
        except (OSError, ValueError):
            return {}


def oci_state(st: dict[str, Any]) -> dict[str, Any]:
    """The runtime-spec state object of a container (``state`` prints it)."""
    out = {
        "ociVersion": st.get("ociVersion", "1.0.2"),
        "id": st["id"],
        "status": st["status"],
        "pid": st.get("pid", 0) if st["status"] != "stopped" else 0,
        "bundle": st.get("bundle", ""),
        "annotations": st.get("annotations", {}),
    }
    # runc's extra fields, which podman and containerd's shim read.
    out["rootfs"] = st.get("rootfs", "")
    out["created"] = st.get("created", "")
    out["owner"] = ""
    return out

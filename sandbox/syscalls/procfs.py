"""The process tree as /proc shows it, read by the supervisor (no privilege needed).

Supervisor side: a run's init and payload below the launcher's outer process,
an OCI container's init below its outer process.
"""

from __future__ import annotations


def child_pids(pid: int) -> list[int]:
    """Children of ``pid`` (its main thread), from /proc/PID/task/PID/children."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []

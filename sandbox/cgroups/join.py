"""Joining a run's leaf: the one piece of the cgroup layer the payload runs (pure).

Kept apart from the backends so the launcher imports nothing else of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def join_with_fds(fds: Sequence[int], write: Callable[[int, bytes], object]) -> None:
    """Join the leaf: write ``0`` to each fd from ``Leaf.open_join_fds``.

    Called by the payload itself just before ``execve``, in the order given
    (the kill hierarchy first, so a task that joined anything is killable).
    The fds are v2's ``cgroup.procs`` and v1's ``tasks``: on v1 only the
    writing thread moves, which is the whole payload because it is
    single-threaded here (forked from the single-threaded launcher, no thread
    started before exec) and execve would reap any other thread anyway.
    ``0`` means "the writer" in every pid namespace, v1 and v2 alike (checked
    by the kernel tests), so the payload needs no getpid(). Permission is
    checked against the credentials of whoever *opened* the fd (since the
    CVE-2021-4197 fix), so a payload that already dropped privileges can
    still join through fds opened as root.
    """
    for fd in fds:
        write(fd, b"0")

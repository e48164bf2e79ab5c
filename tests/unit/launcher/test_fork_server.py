"""The fork server's event loop against a released run (real fork, no namespaces)."""

from __future__ import annotations

import os
import socket

from sandbox.launcher.server import ForkServer, _Run, recv_msg


def test_events_of_a_run_released_in_the_same_batch_are_skipped():
    """select() may return a run's release and its pidfd together: the pidfd
    is closed by the release, so handling it must not touch the selector."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = ForkServer(theirs)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    run = _Run("r1", pid, os.pidfd_open(pid), a, (1000, 1000), (61000, 61000))
    server.runs["r1"] = run
    server.sel.register(run.sync, 1, ("sync", run))
    server.sel.register(run.pidfd, 1, ("exit", run))
    server._handle({"op": "release", "run_id": "r1"}, [])
    assert run.forgotten and "r1" not in server.runs
    assert server._dispatch(("exit", run)) is True  # stale: skipped, no KeyError
    assert server._dispatch(("sync", run)) is True
    ours.setblocking(False)
    try:
        msg, _ = recv_msg(ours)
    except BlockingIOError:
        msg = None
    assert msg is None  # no "exited" message for a run the client already released
    for s in (ours, theirs, b):
        s.close()
    server.sel.close()

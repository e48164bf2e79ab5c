"""The fork server survives a run's release and its exit arriving in one batch of events."""

from __future__ import annotations

import os
import select
import selectors
import socket

from sandbox.launcher.server import ForkServer, _Run, send_msg


def test_release_then_exit_in_the_same_batch_does_not_kill_the_server() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # a "run" that has already exited when the server looks
        os._exit(0)
    server = ForkServer(theirs)
    run_sync, _peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    run = _Run("r1", pid, os.pidfd_open(pid), run_sync, (1000, 1000), (61000, 61000))
    server.runs[run.run_id] = run
    server.sel.register(run.sync, selectors.EVENT_READ, ("sync", run))
    exit_key = server.sel.register(run.pidfd, selectors.EVENT_READ, ("exit", run))
    select.select([run.pidfd], [], [], 10)
    send_msg(ours, {"op": "release", "run_id": "r1"})
    ours.shutdown(socket.SHUT_WR)  # EOF after the release: serve() returns then
    real_select = server.sel.select
    batches = 0

    def select_release_then_exit(timeout: float | None = None) -> list[object]:
        nonlocal batches
        batches += 1
        if batches > 1:
            return real_select(timeout)
        ctl_key = server.sel.get_key(theirs)
        return [(ctl_key, selectors.EVENT_READ), (exit_key, selectors.EVENT_READ)]

    server.sel.select = select_release_then_exit  # type: ignore[method-assign]
    server.serve()  # raised KeyError ("... is not registered") before the fix
    assert server.runs == {} and batches == 2
    ours.close()

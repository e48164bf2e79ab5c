"""The watch's violation channel (issue 13 item 4): a foreign-ABI notification is a
violation whatever the run's handler would do with it, learning included (a CONTINUE
would run the foreign call unfiltered), and errno profiles never answer it."""

from __future__ import annotations

import selectors

import pytest

from sandbox.runner import watch as watch_mod
from sandbox.runner.watch import Watch
from sandbox.syscalls.notify import Notification

X86_64, I386 = 0xC000003E, 0x40000003


def _deliver(monkeypatch, w: Watch, n: Notification) -> None:
    monkeypatch.setattr(watch_mod.notify, "hung_up", lambda fd: False)
    monkeypatch.setattr(watch_mod.notify, "recv", lambda fd: n)
    answered = []
    monkeypatch.setattr(watch_mod.notify, "answer_errno", lambda *a: answered.append(a))
    sel = selectors.DefaultSelector()
    try:
        w._on_notification(sel, 0)
    finally:
        sel.close()
    assert not answered, "a foreign call was answered instead of stopping the run"


@pytest.mark.parametrize(
    ("arch", "nr", "name", "abi"),
    [(I386, 20, "getpid", "i386"), (X86_64, 0x40000000 | 39, "getpid", "x32")],
)
@pytest.mark.parametrize("mode", ["learn", "errno", "violation"])
def test_foreign_abi_is_always_a_violation(monkeypatch, arch, nr, name, abi, mode):
    killed, handled = [], []
    w = Watch(err_r=-1, status_r=-1, kill=killed.append)
    if mode == "learn":
        w.on_notification = lambda n, fd: handled.append(n)
    elif mode == "errno":
        w.deny_errno = 1
    _deliver(monkeypatch, w, Notification(7, 100, nr, arch, 0, (0,) * 6))
    assert not handled
    assert killed == ["violation"]
    assert w.violation is not None and (w.violation.syscall, w.violation.arch) == (name, abi)


def test_native_notifications_still_go_to_the_handler(monkeypatch):
    killed, handled = [], []
    w = Watch(err_r=-1, status_r=-1, kill=killed.append)
    w.on_notification = lambda n, fd: handled.append(n)
    _deliver(monkeypatch, w, Notification(7, 100, 39, X86_64, 0, (0,) * 6))
    assert len(handled) == 1 and not killed and w.violation is None


def _errpipe(data: bytes) -> Watch:
    """A watch whose errpipe carried ``data`` and then reached EOF."""
    import os

    r, w = os.pipe()
    os.write(w, data)
    os.close(w)
    watch = Watch(err_r=r, status_r=-1, kill=lambda reason: None)
    sel = selectors.DefaultSelector()
    sel.register(r, selectors.EVENT_READ)
    try:
        while watch.exec_at is None and not watch.failure:
            watch._on_err(sel, r)
            if r not in sel.get_map():
                break
    finally:
        sel.close()
        os.close(r)
    return watch


def test_errpipe_ready_mark_alone_is_a_good_start():
    from sandbox.launcher.protocol import EXEC_READY

    w = _errpipe(EXEC_READY)
    assert w.exec_at is not None and not w.failure


def test_errpipe_eof_without_the_mark_is_a_failure_not_a_start():
    """The launcher died before execve without a word (issue 13 item 6: a closed
    errpipe was read as a good start, so the record said RUNTIME_ERROR)."""
    from sandbox.launcher.protocol import decode_failure

    w = _errpipe(b"")
    assert w.exec_at is None
    f = decode_failure(w.failure)
    assert f.step == "setup" and "before the payload's execve" in f.message


@pytest.mark.parametrize("ready", [False, True])
def test_errpipe_record_is_the_failure(ready):
    from sandbox.launcher.protocol import EXEC_READY, decode_failure, encode_failure

    rec = encode_failure("exec", 2, "execve('/box/x'): No such file or directory")
    w = _errpipe((EXEC_READY if ready else b"") + rec)
    assert w.exec_at is None and decode_failure(w.failure).step == "exec"

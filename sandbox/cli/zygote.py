"""The CLI's zygote: a warm process that forks one ``sandbox exec`` per call (STYLE B4).

A ``sandbox exec`` started from nothing spends most of its time importing
(the pipeline, the cgroup code, the launcher client): tens of milliseconds
before anything is isolated. The zygote has done those imports once; each
call of the thin client (``sandbox.cli.fast``) is a fork of it that runs
exactly the ordinary command (``sandbox.cli.main.main``) with the caller's
argv, working directory, environment, umask and standard descriptors, and
reports the exit status back. The fork is single-threaded (the zygote has no
threads), so everything a one-shot CLI may do, the child may do.

Identity: a zygote serves one key (``sandbox.cli.fast.key``): the caller's
uid, mount namespace, cgroup, rlimits, the sandbox's environment variables,
the interpreter and a fingerprint of the package's sources. A run is thus
placed in the caller's own cgroup and sees the caller's file system, and an
edited or upgraded package starts a new zygote. Its socket lives in a 0700
directory of the runtime directory, mode 0600. The key is only a name: a
peer is served only when /proc shows it with exactly the zygote's rights
(``sandbox.cli.fast.rights``: ids, groups, capability sets, no_new_privs,
seccomp, LSM label, cgroup, mount namespace), and the client checks the
same of the zygote, so a process of the same uid with fewer rights can
neither borrow a zygote's nor stand in for one. It exits after IDLE seconds without a call.

Per call, off the caller's path (issue 12): the fork is made ahead (a
*spare*, which accepts the next call on the listener itself and checks the
caller's rights as the zygote does: the fork's page-table copy, its pages'
copy-on-write and the zygote's own hop happen between calls), and the
zygote's readying for the next call (its caches for the last command line, a
native launcher server started ahead, the next spare) runs once the call's
fork has ended, never beside a run on a loaded machine. With several calls at
once, a call that finds no spare is forked for as before.

When the client goes away (SIGKILL, closed socket) the child gets SIGTERM
and tears its run down as the CLI does on a signal; signals the client
receives (SIGINT, SIGTERM, SIGHUP) are forwarded to the child.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import marshal
import os
import select
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.cli.fast import peer, rights
from sandbox.syscalls.fdpass import recv_fds, send_fds

IDLE = float(os.environ.get("SANDBOX_ZYGOTE_IDLE", "60"))  # seconds without a call
_OWN_RIGHTS: list[str] = []  # rights() of this zygote, read when it starts serving
MAX_MSG = 1 << 20
MAX_FDS = 8


@dataclass(eq=False)
class _Call:
    """One client's call: its connection (None once closed) and the forked child."""

    conn: socket.socket | None
    pid: int = 0
    pidfd: int = -1
    reaped: bool = False

    @property
    def over(self) -> bool:
        """Nothing of the call is left: connection closed, child (if any) reaped."""
        return self.conn is None and (self.pid == 0 or self.reaped)


@dataclass(eq=False)
class _Spare:
    """A fork made ahead that accepts the next call itself; ``sock``: its pair with us."""

    sock: socket.socket
    pid: int
    pidfd: int
    call: _Call | None = None  # the call it took, until it says it runs it


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds = recv_fds(sock, MAX_MSG, MAX_FDS)
    if not data:
        return None, []
    msg = marshal.loads(data)  # noqa: S302 - from a peer of our own uid only (checked at accept)
    if not isinstance(msg, dict):
        for fd in fds:
            os.close(fd)
        raise ValueError("not a request")
    return msg, fds


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.send(marshal.dumps(msg))


def _child(
    call: _Call, req: dict[str, Any], fds: list[int], listener: socket.socket | None
) -> None:
    """In the forked child: become the caller's ``sandbox exec`` and report its status."""
    status = 125
    gc.disable()  # a short-lived fork: collections would only copy shared pages
    assert call.conn is not None
    conn = call.conn
    try:
        if listener is not None:
            listener.close()
        # Anything the zygote's own buffers hold goes to its /dev/null, not the caller.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        # 0-2 in place (they are /dev/null in the zygote: nothing of ours lives
        # there); a --meta-fd stays where it arrived and argv is told its number,
        # so it can never land on a descriptor this process still uses.
        moved: dict[int, int] = {}
        for fd, target in zip(fds, req["fds"], strict=True):
            if target <= 2:
                if fd != target:
                    os.dup2(fd, target, inheritable=True)
                    os.close(fd)
            else:
                moved[target] = fd
        argv = _renumber_meta_fd(list(req["argv"]), moved)
        os.chdir(req["cwd"])
        os.umask(req["umask"])
        os.environb.clear()  # the client sends its environment as bytes (posix.environ)
        os.environb.update(req["env"])
        sys.argv = ["sandbox", *argv]
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        from sandbox.cli.main import main

        try:
            main(argv)
            status = 0
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        # Done: once the client has the status it hangs up, and the zygote then
        # signals whatever is still running under it; nothing of ours is.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    except BaseException as e:  # report, never return into the zygote's loop
        with contextlib.suppress(Exception):
            os.write(2, f"sandbox: zygote: {type(e).__name__}: {e}\n".encode())
    finally:
        _send(conn, {"status": status})
        os._exit(0)


def _renumber_meta_fd(argv: list[str], moved: dict[int, int]) -> list[str]:
    """``--meta-fd N`` rewritten to the descriptor the caller's N arrived as."""
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a == "--meta-fd" and i + 1 < len(argv) and argv[i + 1].isdigit():
            argv[i + 1] = str(moved.get(int(argv[i + 1]), argv[i + 1]))
        elif a.startswith("--meta-fd=") and a[10:].isdigit():
            argv[i] = f"--meta-fd={moved.get(int(a[10:]), a[10:])}"
    return argv


def _warm() -> None:
    """Import what a ``sandbox exec`` imports, so that every fork starts with it."""
    import importlib

    for name in (
        "sandbox.cli.main",
        "sandbox.compile",
        "sandbox.host",
        "sandbox.policy.cache",
        "sandbox.runner.launchers",
        "sandbox.runner.supervisor",
        "sandbox.verify.cache",
        "sandbox.launcher.native",
    ):
        importlib.import_module(name)
    from sandbox.cli.main import exec_state, parser
    from sandbox.verify.version import library_id

    library_id()  # the walk of the sources, once: the key already pins them
    parser("exec")
    exec_state()


_SERVERS: list[int] = []  # native launcher servers started ahead, reaped when they exit


def _prestart() -> None:
    """A native launcher server for the next fork (not when the Python one is chosen)."""
    from sandbox.launcher import native
    from sandbox.runner.launchers import launcher_name

    try:
        if launcher_name() == "native":
            _SERVERS.append(native.prestart())
    except Exception:  # noqa: S110 - the fork then starts its own and reports what fails
        pass


def _reap_servers() -> None:
    for pid in list(_SERVERS):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _SERVERS.remove(pid)


def _after_fork() -> None:
    """In the zygote, right after a fork: the fork holds the server started ahead now
    (it ends with the fork); the zygote's copy of its socket is closed."""
    from sandbox.launcher import native

    native.drop_prestarted()
    _reap_servers()


_PREWARMED: dict[str, Any] = {"line": None, "at": 0.0}  # the command line prewarmed last
PREWARM_AGAIN = 1.0  # seconds: the same command line is prewarmed again after this long


def _ready(last: dict[str, Any] | None) -> None:
    """In the zygote between calls: its caches for the last command line, a server.

    The command line just prewarmed is not prewarmed again within
    PREWARM_AGAIN seconds (back-to-back calls find their spare sooner); its
    caches are there, and a fork checks their inputs (profile files, host
    facts) itself. After that, a changed input is compiled here again."""
    from sandbox.cli.main import prewarm

    if last is not None:
        wanted = (list(last["argv"]), last["cwd"])
        now = time.monotonic()
        if wanted != _PREWARMED["line"] or now - _PREWARMED["at"] >= PREWARM_AGAIN:
            prewarm(last["argv"], last["cwd"])
            _PREWARMED.update(line=wanted, at=time.monotonic())
    _prestart()


def _spawn_spare(listener: socket.socket, key: str, inherited: list[int]) -> _Spare | None:
    """Fork the next call's process ahead (None where the fork fails: calls fork then).

    ``inherited``: the zygote's descriptors the spare must not keep (the selector,
    other calls' connections and pidfds): a spare lives long, and a connection
    it held open would keep that call's client from ever reading EOF.
    """
    try:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        ours.close()
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        _spare_wait(theirs, listener, key)  # never returns
    theirs.close()
    _after_fork()
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)  # not watchable: never used
        os.waitpid(pid, 0)
        ours.close()
        return None
    return _Spare(ours, pid, pidfd)


MADV_POPULATE_WRITE = 23  # Linux 5.14: fault a range in writable now (copy-on-write done)


def _prefault(pending: Callable[[], bool]) -> None:
    """In a spare: copy now every page of the zygote's it shares copy-on-write.

    A fork's call writes to ~1,300 of the zygote's pages (reference counts,
    the interpreter's own state), each a copy-on-write fault on the caller's
    path; a spare takes those copies while it waits. Best effort: a kernel
    without MADV_POPULATE_WRITE just leaves them to the call. It stops as soon as
    ``pending()`` says a call is waiting (back-to-back calls: the call's own faults
    are fewer than all the pages).
    """
    from sandbox.syscalls.linux import _libc

    madvise = _libc.madvise
    with open("/proc/self/maps") as f:
        ranges = [line.split(maxsplit=2)[:2] for line in f]
    for span, perms in ranges:
        if perms[1] == "w" and perms[3] == "p":
            if pending():
                return
            start, end = (int(x, 16) for x in span.split("-"))
            madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_POPULATE_WRITE)


def _spare_wait(sock: socket.socket, listener: socket.socket, key: str) -> None:
    """In a spare: take the next call from the listener itself, then serve it.

    The zygote is not on the call's path: the spare accepts, checks the
    caller's rights as the zygote does, tells the zygote which connection it
    took (``took``, so that it accepts the next calls and ends this one's run
    should the caller go away), reads the request and tells the zygote it
    runs (``started``: from then on the zygote reads the connection, for
    forwarded signals and the caller's hang-up). The zygote gone or dropping
    the spare (EOF on the pair) ends it; a call it took but could not announce
    is refused (the caller runs it itself).
    """
    try:
        _name(SPARE_NAME)  # not a call (yet): what leak checks tell apart from a run's
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(listener, select.POLLIN)
        with contextlib.suppress(Exception):
            _prefault(lambda: bool(poller.poll(0)))
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if sock.fileno() in ready:
                os._exit(0)  # dropped (EOF) or anything else from the zygote: leave
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                continue  # the zygote (no spare in its view) or another took it
            if _allowed(conn):
                break
            conn.close()
        listener.close()
        _name(CALL_NAME)
        conn.setblocking(True)
        try:
            send_fds(sock, marshal.dumps({"took": True}), [conn.fileno()])
        except OSError:
            _send(conn, {"refused": True})  # unannounced: the caller runs it itself
            os._exit(0)
        msg, fds = _recv(conn)
        if msg is None:
            os._exit(0)  # the caller left before asking
        if "argv" not in msg or msg.get("key") != key:
            _send(conn, {"refused": True})  # a name collision: the caller runs it itself
            os._exit(0)
        with contextlib.suppress(OSError):
            started = {"started": True, "argv": msg["argv"], "cwd": msg.get("cwd")}
            sock.send(marshal.dumps(started))
        sock.close()
    except BaseException:
        os._exit(0)
    _child(_Call(conn), msg, fds, None)


def _allowed(conn: socket.socket) -> bool:
    """Whether the peer is of our uid with exactly our rights (same uid is not enough:
    one that dropped capabilities or is under no_new_privs would borrow ours)."""
    try:
        pid, uid = peer(conn)
        return uid == os.geteuid() and rights(pid) == _OWN_RIGHTS
    except OSError:
        return False


SPARE_NAME = "sandbox-spare"  # /proc/PID/comm of a spare waiting for its call
CALL_NAME = "sandbox-call"  # ... and of one serving it


def _name(name: str) -> None:
    """Set this process's name (comm), as ps and /proc show it; best effort."""
    with contextlib.suppress(OSError), open("/proc/self/comm", "w") as f:
        f.write(name)


class _Zygote:
    """The serving loop's state: the listener, the calls in progress, the spare."""

    def __init__(self, listener: socket.socket, key: str) -> None:
        self.listener = listener
        self.key = key
        self.sel = selectors.DefaultSelector()
        self.sel.register(listener, selectors.EVENT_READ, None)
        self.calls: set[_Call] = set()
        self.spare: _Spare | None = None
        self.spare_for: object = ()  # the command line the spare's caches were readied for
        self.last: dict[str, Any] | None = None  # the last call's request (for prewarm)

    def ready(self) -> None:
        """Between calls: caches for the last command line, a server, a spare made after
        both (an older spare, readied for another command line, is replaced)."""
        wanted = None if self.last is None else (tuple(self.last["argv"]), self.last["cwd"])
        if self.spare is not None and self.spare_for == wanted:
            return
        self.drop_spare()
        _ready(self.last)
        # What readying made lives on: out of the collector's reach (see serve).
        gc.collect()
        gc.freeze()
        self.spare = _spawn_spare(self.listener, self.key, self.inherited())
        self.spare_for = wanted
        if self.spare is not None:
            # The spare accepts the next call: the zygote listens again once it took one.
            self.sel.unregister(self.listener)
            self.sel.register(self.spare.sock, selectors.EVENT_READ, ("spare", self.spare))

    def drop_spare(self) -> None:
        """End the spare (it reads EOF and exits) and reap it; a call it took meanwhile
        is its to refuse. The zygote listens again."""
        spare, self.spare = self.spare, None
        self.spare_for = ()
        if spare is None:
            return
        self.sel.unregister(spare.sock)
        self.sel.register(self.listener, selectors.EVENT_READ, None)
        spare.sock.close()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(spare.pid, 0)
        os.close(spare.pidfd)

    def on_spare(self, spare: _Spare) -> bool:
        """A message from a spare (or its end): the call it took, or that it runs it.
        True when the spare ended without a call (then the next is readied)."""
        try:
            data, fds = recv_fds(spare.sock, 4096, 1)
            msg = marshal.loads(data) if data else None  # noqa: S302 - our own fork
        except (OSError, ValueError, EOFError, TypeError):
            msg, fds = None, []
        if spare is self.spare:
            # Taken (or dead): no spare now; the zygote accepts the next calls itself.
            self.spare = None
            self.spare_for = ()
            self.sel.register(self.listener, selectors.EVENT_READ, None)
            if isinstance(msg, dict) and msg.get("took") and len(fds) == 1:
                call = _Call(socket.socket(fileno=fds[0]), spare.pid, spare.pidfd)
                self.calls.add(call)
                self.sel.register(spare.pidfd, selectors.EVENT_READ, ("exit", call))
                spare.call = call
                return False  # the pair stays open for its "started"
            for fd in fds:
                os.close(fd)
            self._end_pair(spare)
            # Not a call: reap the spare (it exits at once on anything else).
            with contextlib.suppress(ChildProcessError):
                os.waitpid(spare.pid, 0)
            os.close(spare.pidfd)
            return True
        for fd in fds:
            os.close(fd)
        taken = spare.call
        self._end_pair(spare)
        if taken is not None and isinstance(msg, dict) and msg.get("started"):
            if isinstance(msg.get("argv"), list) and isinstance(msg.get("cwd"), str):
                self.last = msg  # its command line: what readying prewarms
            if taken.conn is not None and not taken.reaped:
                self.sel.register(taken.conn, selectors.EVENT_READ, ("conn", taken))
        return False

    def _end_pair(self, spare: _Spare) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(spare.sock)
        spare.sock.close()

    def inherited(self, keep: _Call | None = None) -> list[int]:
        """Descriptors a fork must close: the selector's, other calls' ends."""
        fds = [self.sel.fileno()] if isinstance(self.sel, selectors.EpollSelector) else []
        for c in self.calls:
            if c is not keep:
                fds += [c.conn.fileno()] if c.conn is not None else []
                fds += [c.pidfd] if c.pidfd >= 0 else []
        return fds

    def running(self) -> bool:
        """Whether a call's fork is still at work."""
        return any(c.pid and not c.reaped for c in self.calls)


def serve(path: str, key: str) -> None:
    """Listen on ``path`` (inside a private directory) until IDLE seconds pass without a call."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o077)
    try:
        listener.bind(path)
    except OSError:
        return  # another zygote took the key first
    finally:
        os.umask(old)
    listener.listen(64)
    listener.setblocking(False)  # the spare accepts from it too: whoever is second waits
    _OWN_RIGHTS[:] = rights()
    _warm()
    # Everything made so far lives as long as the zygote: out of the collector's
    # reach, so that neither the zygote's collections nor a fork's touch (and
    # copy) those pages (gc.freeze's purpose, in the gc module's docs).
    gc.collect()
    gc.freeze()
    z = _Zygote(listener, key)
    z.ready()
    last = time.monotonic()
    try:
        while True:
            events = z.sel.select(timeout=IDLE)
            ended = False
            for event, _ in events:
                if event.data is None:
                    _accept(listener, z.sel, z.calls)
                    continue
                kind, call = event.data
                if kind == "spare":  # the spare took a call, runs it, or died
                    ended = z.on_spare(call) or ended
                    continue
                try:
                    if kind == "conn":
                        _on_conn(call, z)
                    else:
                        _on_exit(call, z.sel)
                        ended = True
                except Exception:  # one call's trouble never ends the others'
                    _close_conn(call, z.sel)
                    if kind == "exit":
                        call.reaped = True
                        with contextlib.suppress(Exception):
                            z.sel.unregister(call.pidfd)
                            os.close(call.pidfd)
                if call.over:
                    z.calls.discard(call)
            if ended and not z.running():
                with contextlib.suppress(Exception):  # a failed readying: calls fork then
                    z.ready()
            if z.calls or events:
                last = time.monotonic()
            elif time.monotonic() - last >= IDLE:
                return
    finally:
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(listener.fileno()).st_ino:
                os.unlink(path)
                os.unlink(path + ".lock")
        with contextlib.suppress(Exception):
            z.drop_spare()
        listener.close()


def _accept(listener: socket.socket, sel: selectors.BaseSelector, calls: set[_Call]) -> None:
    try:
        conn, _ = listener.accept()
    except BlockingIOError:
        return  # a spare took it
    if not _allowed(conn):
        conn.close()
        return
    call = _Call(conn)
    calls.add(call)
    sel.register(conn, selectors.EVENT_READ, ("conn", call))


def _close_conn(call: _Call, sel: selectors.BaseSelector) -> None:
    if call.conn is not None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(call.conn)
        call.conn.close()
        call.conn = None


def _on_conn(call: _Call, z: _Zygote) -> None:
    sel = z.sel
    if call.conn is None:
        return  # closed earlier in the same batch of events (its child's exit)
    try:
        msg, fds = _recv(call.conn)
    except (OSError, ValueError):
        msg, fds = None, []
    if msg is None:  # the client is gone: end its run as a signal to the CLI would
        if call.pid and not call.reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(call.pid, signal.SIGTERM)
        _close_conn(call, sel)
        return
    if "argv" in msg and not call.pid and msg.get("key") != z.key:
        _send(call.conn, {"refused": True})  # a name collision: the caller runs it itself
    elif "argv" in msg and not call.pid:
        z.last = msg
        inherited = z.inherited(keep=call)
        pid = os.fork()
        if pid == 0:
            for fd in inherited:
                with contextlib.suppress(OSError):
                    os.close(fd)
            _child(call, msg, fds, z.listener)
        _after_fork()
        call.pid = pid
        call.pidfd = os.pidfd_open(pid)
        for fd in fds:
            os.close(fd)
        sel.register(call.pidfd, selectors.EVENT_READ, ("exit", call))
    elif "signal" in msg and call.pid and not call.reaped:
        sig = int(msg["signal"])
        if sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(ProcessLookupError):
                os.kill(call.pid, sig)
    for fd in fds if call.pid == 0 else ():
        os.close(fd)


def _on_exit(call: _Call, sel: selectors.BaseSelector) -> None:
    """The child ended (it sent its status itself): reap it, close the connection."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(call.pid, 0)
    call.reaped = True
    sel.unregister(call.pidfd)
    os.close(call.pidfd)
    call.pidfd = -1
    _close_conn(call, sel)


def main() -> None:
    """``python -I -c ... zygote.main() PATH`` (key in $SANDBOX_ZYGOTE_KEY): serve PATH."""
    path, key = sys.argv[1], os.environ.pop("SANDBOX_ZYGOTE_KEY")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    serve(path, key)

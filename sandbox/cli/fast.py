"""Entry point of the ``sandbox`` command: ``exec`` through the zygote, the rest in-process.

``sandbox exec`` is what judges call thousands of times, so its path imports
almost nothing: it hands its argv, working directory, environment, umask and
standard descriptors to a warm zygote (``sandbox.cli.zygote``) of its own
key, which forks the ordinary command for it and sends back the exit status.
The zygote is started on first use and leaves after a minute without calls.
Where no zygote can be reached or started, or ``SANDBOX_ZYGOTE=0``, the
command runs in this process exactly as before; every other subcommand
always does.

Lean on purpose (issue 12: the whole call is measured against a bare
``python -I -S``): only modules built into the interpreter on the way to the
zygote (``_socket`` and ``_signal``, not ``socket`` and ``signal``, which
import ``enum``, ``selectors`` and more: ~6 ms of every start), this
process's own rights read from /proc once, and one message each way.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; signal imports enum (~4 ms)
import _socket
import marshal
import posix  # not os: with -S nothing has imported it, and it costs ~1.5 ms of CPU
import sys
import zlib

from sandbox.fingerprint import fingerprint


def _abspath(path: str) -> str:
    return path if path.startswith("/") else f"{posix.getcwd()}/{path}"


PACKAGE_DIR = _abspath(__file__).rsplit("/", 2)[0]  # .../sandbox (this file: sandbox/cli/)
START_TIMEOUT = 10.0
# The caller's environment that changes what a run does (paths, ids, launcher,
# cgroup parent, test hooks): part of the zygote's key.
KEY_ENV = ("HOME", "PATH", "XDG_RUNTIME_DIR")
_RIGHTS_FIELDS = ("Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:", "Seccomp:")
_S_IFMT, _S_IFDIR = 0o170000, 0o040000


def key(own: list[str] | None = None) -> str:
    """Which zygote may serve this caller (see ``sandbox.cli.zygote``), as text.

    The socket is named after a short checksum of it; the zygote compares the
    whole key and refuses a caller whose key differs (then it runs in-process).
    ``own``: this process's :func:`rights`, when the caller has read them already.
    """
    parts: list[object] = [
        posix.geteuid(),
        posix.getegid(),
        sys.executable,
        posix.stat("/proc/self/ns/mnt").st_ino,
        # Ids, groups, capability sets, no_new_privs, seccomp, LSM label, cgroup: a
        # zygote's rights are exactly its callers' (a root caller that dropped
        # capabilities gets its own). Checked again from /proc on both sides of
        # the socket (``rights``): a key is only a name, anyone can send one.
        rights() if own is None else own,
        # Every resource limit, soft and hard (the kernel's own table of them).
        _read("/proc/self/limits"),
        sorted((k, v) for k, v in _environ().items() if k.startswith("SANDBOX_") or k in KEY_ENV),
        fingerprint(PACKAGE_DIR),
    ]
    return repr(parts)


def rights(pid: int | str = "self") -> list[str]:
    """What a process may do, as /proc shows it: the same for a zygote and its callers.

    The zygote compares its callers' (by SO_PEERCRED's pid) with its own, and
    a caller the zygote's with its own: a process of the same uid with fewer
    rights (no capabilities, no_new_privs) can neither borrow a zygote's nor
    stand in for one.
    """
    lines = _read(f"/proc/{pid}/status").splitlines()
    status = [line for line in lines if line.startswith(_RIGHTS_FIELDS)]
    try:
        mnt = str(posix.stat(f"/proc/{pid}/ns/mnt").st_ino)
    except OSError:
        mnt = ""
    return [*status, _read(f"/proc/{pid}/attr/current"), _read(f"/proc/{pid}/cgroup"), mnt]


def _environ() -> dict[str, str]:
    """The environment as ``os.environ`` has it (names and values decoded alike)."""
    return {
        k.decode(errors="surrogateescape"): v.decode(errors="surrogateescape")
        for k, v in posix.environ.items()
    }


def runtime_path() -> str:
    """:func:`sandbox.paths.runtime_path` without importing os (the same rule)."""
    env = posix.environ
    if posix.geteuid() == 0:
        return env.get(b"SANDBOX_RUNTIME_DIR", b"/run/sandbox").decode(errors="surrogateescape")
    xdg = env.get(b"XDG_RUNTIME_DIR")
    if xdg:
        return xdg.decode(errors="surrogateescape").rstrip("/") + "/sandbox"
    return f"/tmp/sandbox-{posix.geteuid()}"


def peer(sock: _socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(raw[0:4], sys.byteorder), int.from_bytes(raw[4:8], sys.byteorder)


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _meta_fds(argv: list[str]) -> list[int]:
    """Descriptors named on the command line (``--meta-fd N``) the child must also hold."""
    out = []
    for i, a in enumerate(argv):
        value = argv[i + 1] if a == "--meta-fd" and i + 1 < len(argv) else None
        if a.startswith("--meta-fd="):
            value = a.split("=", 1)[1]
        if value is not None and value.isdigit():
            out.append(int(value))
        if a == "--":
            break
    return out


def _connect(path: str, own: list[str]) -> _socket.socket | None:
    """A connection to the socket at ``path``, only if a process of our own uid with
    exactly our rights (``own``) listens on it."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
        pid, uid = peer(sock)
        if uid != posix.geteuid() or rights(pid) != own:
            raise PermissionError("the socket's owner is not a zygote with our rights")
    except OSError:
        sock.close()
        return None
    return sock


def _private_dir(path: str, mask: int) -> bool:
    """Whether ``path`` is a real directory (no symlink) of ours, with no ``mask`` bit."""
    try:
        st = posix.lstat(path)
    except FileNotFoundError:
        try:
            posix.mkdir(path, 0o700)
            st = posix.lstat(path)
        except OSError:
            return False
    except OSError:
        return False
    return (
        st.st_mode & _S_IFMT == _S_IFDIR and st.st_uid == posix.geteuid() and not st.st_mode & mask
    )


def _restricted(own: list[str] | None = None) -> bool:
    """Whether this caller is held by no_new_privs or a seccomp filter (and so maybe by
    a Landlock domain, which no file shows): such a caller never borrows a zygote's
    rights, which may be wider than its own; it runs everything itself.
    ``own``: this process's :func:`rights` (its status lines), when read already."""
    lines = own[:-3] if own is not None else _read("/proc/self/status").splitlines()
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("NoNewPrivs", "Seccomp") and value.strip() not in ("", "0"):
            return True
    return False


def _background() -> bool:
    """Whether stdin is a terminal this process group does not own (a background job):
    in-process, reading it stops the job (SIGTTIN) as a shell expects; a zygote's fork,
    in a session of its own, would read the foreground's keystrokes instead."""
    try:
        return posix.isatty(0) and posix.tcgetpgrp(0) != posix.getpgrp()
    except OSError:
        return False


def _zygote(path: str, wanted: str, own: list[str]) -> _socket.socket | None:
    """A connection to the key's zygote, started if there is none."""
    sock = _connect(path, own)
    if sock is not None:
        return sock
    import fcntl
    import os
    import time

    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path, own)  # started by another caller while we waited
        if sock is not None:
            return sock
        if os.path.exists(path):
            os.unlink(path)  # a zygote that died left its socket
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); del sys.argv[1]; "
            "from sandbox.cli.zygote import main; main()"
        )
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-c", code, os.path.dirname(PACKAGE_DIR), path],
                # The key names the caller's cgroup, variables and paths: never in argv,
                # which every user of the host can read (/proc/PID/cmdline).
                {**os.environ, "SANDBOX_ZYGOTE_KEY": wanted},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, null, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(null)
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            sock = _connect(path, own)
            if sock is not None:
                return sock
            time.sleep(0.005)
        return None
    finally:
        os.close(lock)


def via_zygote(argv: list[str]) -> int | None:
    """Run ``sandbox exec`` in a fork of the zygote; its exit status, or None to run it here."""
    own = rights()  # read once: the key holds them, and the zygote's must equal them
    if _restricted(own) or _background():
        return None
    try:
        base = runtime_path()
        directory = base + "/zygote"
        # Ours alone, each level (another user who owns /tmp/sandbox-<uid> could swap
        # what is below it): never run through a socket others could own. The
        # zygote's peer credentials are checked at connect too.
        if not _private_dir(base, 0o022) or not _private_dir(directory, 0o077):
            return None
        wanted = key(own)
        name = f"{zlib.crc32(wanted.encode()):08x}{zlib.adler32(wanted.encode()):08x}"
        sock = _zygote(f"{directory}/{name}.sock", wanted, own)
        cwd = posix.getcwd()
    except OSError:
        return None
    if sock is None:
        return None
    targets = [fd for fd in (0, 1, 2, *_meta_fds(argv)) if _is_open(fd)]
    umask = posix.umask(0)
    posix.umask(umask)
    request = {
        "key": wanted,
        "argv": argv,
        "cwd": cwd,
        "env": dict(posix.environ),  # bytes, as the zygote's fork sets them (os.environb)
        "umask": umask,
        "fds": targets,
    }
    try:
        rights_msg = b"".join(fd.to_bytes(4, sys.byteorder) for fd in targets)
        anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights_msg)] if targets else []
        sock.sendmsg([marshal.dumps(request)], anc)
    except OSError:
        sock.close()
        return None  # nothing was started: run it here

    def forward(signum: int, _frame: object) -> None:
        try:
            sock.send(marshal.dumps({"signal": signum}))
        except OSError:
            pass

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(sig, forward)
    try:
        data = sock.recv(4096)
    except OSError:
        data = b""
    reply = marshal.loads(data) if data else {}  # noqa: S302 - our own zygote (0700 dir)
    if reply.get("refused"):
        return None  # another key under the same name: nothing was started
    if "status" not in reply:
        print("sandbox: the zygote ended without the run's status", file=sys.stderr)
        return 125
    return int(reply["status"])


def _is_open(fd: int) -> bool:
    try:
        posix.fstat(fd)
    except OSError:
        return False
    return True


def main() -> None:
    """Entry point of the ``sandbox`` command."""
    argv = sys.argv[1:]
    if argv[:1] == ["exec"] and posix.environ.get(b"SANDBOX_ZYGOTE", b"1") != b"0":
        status = via_zygote(argv)
        if status is not None:
            # Nothing of ours needs finalizing (no atexit, no buffered output once
            # flushed): skip the interpreter's teardown, as a C client would.
            sys.stdout.flush()
            sys.stderr.flush()
            posix._exit(status)
    if sys.flags.no_site:
        # bin/sandbox starts Python with -I -S and puts only this package on the path:
        # everything else (the full CLI's dependencies) as site would have found it.
        import site

        site.main()
    from sandbox.cli.main import main as full

    full(argv)


if __name__ == "__main__":
    main()

"""Opening host paths that a payload may have shaped, as the caller (supervisor side).

A judge's paths often lie in trees an earlier run could write (a writable
bind, a box directory kept between runs). A payload there can replace a file
or a directory by a symlink to anything on the host, which the supervisor
(often root) would then read or write for it (issue 13 item 2). The rule
here, for every such path the caller names (files to stage, the program to
copy, stdio and record files):

- the caller's own path is resolved once with :func:`sandbox.fs.ops.checked_source`
  rules: only symlinks that root put in directories only root may change are
  followed (``/bin -> usr/bin``, ``/var/run -> /run``); in rootless mode the
  payload's files are the caller's on the host, so the caller's own symlinks
  prove nothing and are not trusted either;
- the result is opened with ``openat2(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)``,
  so nothing swapped in after that check is followed either; the last
  component is never followed (a symlink there is reported, or staged as a
  symlink).

Hard links are the kernel's business: ``fs.protected_hardlinks = 1`` keeps
a payload from linking a file it could not read already.
"""

from __future__ import annotations

import errno
import os
import stat

from sandbox.errors import PolicyError
from sandbox.fs.ops import checked_source
from sandbox.fs.staging import BoxFile, check_link_target, check_mode
from sandbox.syscalls.consts import AT_FDCWD, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS

NO_LINKS = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
# The caller's own open streams, named the way shells spell them: never a
# payload's path, so they are the caller's fds, not files to resolve.
_OWN_FDS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def resolve(path: str, what: str, cwd: str | None = None) -> str:
    """Absolute path of ``path`` with its directories resolved by the trusted-symlink rule.

    The last component is kept as it is (not followed).

    Raises:
        PolicyError: a symlink on the way that the rule does not trust, or a
            directory that does not exist, named with ``what``.
    """
    full = os.path.normpath(os.path.join(cwd or os.getcwd(), os.fspath(path)))
    head, tail = os.path.split(full)
    real_head = checked_source(head, what=what)
    return os.path.join(real_head, tail) if tail else real_head


def _openat2(path: str, flags: int) -> int:
    from sandbox.syscalls.linux import LinuxSyscalls

    return LinuxSyscalls().openat2(AT_FDCWD, path, flags | os.O_CLOEXEC, NO_LINKS)


def open_path(path: str, flags: int, what: str, cwd: str | None = None) -> int:
    """Open a caller-named host path for a run's stdio or record, following no planted symlink.

    ``flags`` may include O_CREAT (mode 0644, through the umask). A symlink as
    the last component is refused (ELOOP), never followed. In a shared sticky
    directory (/tmp, or one a group shares) only a regular file of the caller's, or of the
    directory's owner, is written: another user's FIFO would block the
    caller, another user's file would receive the run's data (what the
    kernel's fs.protected_fifos/protected_regular refuse, off on some hosts).

    Raises:
        PolicyError: the path, or why it cannot be opened, in one line.
    """
    if os.fspath(path) in _OWN_FDS:
        return os.dup(_OWN_FDS[os.fspath(path)])
    real = resolve(path, what, cwd)
    try:
        if flags & os.O_CREAT:
            # openat2 takes the mode in its open_how; through the plain open the
            # same resolution is had by opening the parent beneath no symlink.
            parent = _openat2(os.path.dirname(real) or "/", os.O_PATH | os.O_DIRECTORY)
            try:
                pst = os.fstat(parent)
                # Sticky and writable by others than its owner (world or group):
                # what protected_regular=2 covers.
                shared = bool(pst.st_mode & stat.S_ISVTX and pst.st_mode & 0o022)
                extra = os.O_NONBLOCK if shared else 0
                fd = os.open(
                    os.path.basename(real),
                    (flags & ~os.O_TRUNC if shared else flags)
                    | extra
                    | os.O_NOFOLLOW
                    | os.O_CLOEXEC
                    | os.O_NOCTTY,
                    0o644,
                    dir_fd=parent,
                )
            finally:
                os.close(parent)
            if shared:
                _own_in_shared(fd, pst.st_uid, what, os.fspath(path))
                if flags & os.O_TRUNC:
                    os.ftruncate(fd, 0)
                os.set_blocking(fd, True)
            return fd
        return _openat2(real, flags | os.O_NOCTTY)
    except OSError as e:
        raise PolicyError(f"{what} {os.fspath(path)!r}: {_why(e)}") from None


def _own_in_shared(fd: int, dir_owner: int, what: str, path: str) -> None:
    """Refuse (closing ``fd``) a file in a sticky directory that is not a regular file of
    ours or of the directory's owner."""
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode) and st.st_uid in (os.geteuid(), dir_owner):
        return
    os.close(fd)
    kind = "a regular file" if stat.S_ISREG(st.st_mode) else "not a regular file"
    raise PolicyError(
        f"{what} {path!r}: {kind} of uid {st.st_uid} in a shared sticky directory: "
        "not written (name a path of your own)"
    )


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "a symlink on the way (not followed: name the real path)"
    if e.errno == errno.ENXIO:
        return "a FIFO nobody reads, in a shared sticky directory (not waited for)"
    return os.strerror(e.errno or 0)


def read_head(path: str, size: int, cwd: str | None = None) -> bytes:
    """The first ``size`` bytes of a caller-named regular file, read by the rule above;
    b"" for anything else (the acquire stage reports what is wrong with the path)."""
    try:
        fd = _openat2(resolve(path, "file", cwd), os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except (OSError, PolicyError):
        return b""
    try:
        return os.read(fd, size) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def stage_source(name: str, path: str, mode: int | None, cwd: str | None = None) -> BoxFile:
    """What a host path staged as /box/``name`` becomes: a copy of a regular file, or a symlink.

    Inspected through an O_PATH fd that follows nothing; the launcher opens
    the same resolved path again without following any symlink, so a file
    swapped for a symlink in between fails the run instead of being read.

    Raises:
        PolicyError: the path is missing, passes an untrusted symlink, or is
            neither a regular file nor a symlink.
    """
    what = f"file for /box/{name}"
    real = resolve(path, what, cwd)
    try:
        fd = _openat2(real, os.O_PATH | os.O_NOFOLLOW)
    except OSError as e:
        raise PolicyError(f"{what}: {os.fspath(path)!r}: {_why(e)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            # readlinkat(fd, "") reads the link an O_PATH|O_NOFOLLOW fd refers to.
            target = os.readlink("", dir_fd=fd)
            return BoxFile(name, link=check_link_target(name, target))
        if not stat.S_ISREG(st.st_mode):
            raise PolicyError(f"{what}: {os.fspath(path)!r} is not a regular file or a symlink")
        bits = stat.S_IMODE(st.st_mode) & 0o777 if mode is None else check_mode(name, mode)
        return BoxFile(name, source=real, mode=bits)
    finally:
        os.close(fd)

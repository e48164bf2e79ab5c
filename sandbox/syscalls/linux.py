"""LinuxSyscalls: the real kernel behind the Syscalls protocol (ctypes + os).

Runs in the launcher child. Every function is bound once at import, so the
child does no look-ups after it starts restricting itself. Failures raise
``OSError(errno, "<syscall as strace would print it>: <strerror>[; hint]")``;
hints for well-known errnos live in one table (bwrap's mount_strerror).
"""

from __future__ import annotations

import ctypes
import errno as E
import fcntl
import os
import resource
import signal
import socket
import stat
import struct
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from sandbox.syscalls import fdpass
from sandbox.syscalls.api import WaitResult
from sandbox.syscalls.consts import (
    AT_FDCWD,
    NR,
    RESOLVE_BENEATH,
    RESOLVE_NO_MAGICLINKS,
    RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
    SECCOMP_SET_MODE_FILTER,
    CloneFlag,
    FsconfigCmd,
    MountFlag,
    Prctl,
    UmountFlag,
)

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_mount = _libc.mount
_mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_umount2 = _libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_unshare = _libc.unshare
_unshare.argtypes = [ctypes.c_int]
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

# Hints added to errors, keyed by (syscall, errno).
HINTS: dict[tuple[str, int], str] = {
    ("unshare", E.EPERM): "user namespaces may be disabled (user.max_user_namespaces, "
    "kernel.apparmor_restrict_unprivileged_userns) or the caller is in a chroot",
    ("unshare", E.EINVAL): "unshare(CLONE_NEWUSER) fails in a multi-threaded process",
    ("unshare", E.ENOSPC): "namespace limit reached (/proc/sys/user/max_*_namespaces)",
    ("mount", E.ENOSPC): "mount limit exceeded, check fs.mount-max",
    ("mount", E.EPERM): "no CAP_SYS_ADMIN over this mount namespace, or /proc is masked "
    "(inside Docker/Kubernetes a fully visible /proc is needed to mount a new one)",
    ("fsopen", E.ENODEV): "filesystem type not available (is the module loaded?)",
    ("seccomp", E.EINVAL): "kernel lacks CONFIG_SECCOMP_FILTER or the filter is malformed",
    ("seccomp", E.EACCES): "no_new_privs must be set before loading a filter without CAP_SYS_ADMIN",
    ("landlock_create_ruleset", E.EOPNOTSUPP): "Landlock is built in but disabled (lsm=)",
    ("landlock_create_ruleset", E.ENOSYS): "kernel without Landlock",
    ("pivot_root", E.EINVAL): "new root must be a mount point in this mount namespace",
}


def _fail(
    call: str, desc: str | Callable[[], str], err: int | None = None, path: str | None = None
) -> NoReturn:
    err = ctypes.get_errno() if err is None else err
    msg = f"{desc() if callable(desc) else desc}: {os.strerror(err)}"
    hint = HINTS.get((call, err))
    if hint:
        msg += f"; {hint}"
    raise OSError(err, msg, path) if path else OSError(err, msg)


def _arg(a: object) -> object:
    if isinstance(a, int):
        return ctypes.c_long(a)
    if isinstance(a, str):
        return a.encode()
    return a


def _sys(name: str, desc: Callable[[], str], *args: object) -> int:
    r: int = _syscall(ctypes.c_long(NR[name]), *(_arg(a) for a in args))
    if r < 0:
        _fail(name, desc)
    return r


TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): (un)lock a pty's slave
TIOCGPTPEER = 0x5441  # _IO('T', 0x41): open the slave through its master (Linux 4.13+)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(_Iovec)),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


_sendmsg = _libc.sendmsg
_sendmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_sendmsg.restype = ctypes.c_ssize_t


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class LinuxSyscalls:
    """The real kernel. Stateless; safe to share within one process."""

    # --- process ---
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        r: int = _prctl(option, arg2, arg3, arg4, arg5)
        if r < 0:
            name = Prctl(option).name if option in Prctl._value2member_map_ else str(option)
            _fail("prctl", f"prctl({name}, {arg2})")
        return r

    def setsid(self) -> None:
        os.setsid()

    def fork(self) -> int:
        return os.fork()

    def wait4(self, pid: int, options: int = 0) -> WaitResult:
        p, status, ru = os.wait4(pid, options)
        return WaitResult(
            p, status, ru.ru_utime, ru.ru_stime, ru.ru_maxrss, ru.ru_nvcsw, ru.ru_nivcsw
        )

    def wait_exited(self, pid: int) -> None:
        # WNOWAIT: the child stays a zombie, so its /proc entry can still be read.
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)

    def kill(self, pid: int, sig: int) -> None:
        os.kill(pid, sig)

    def reset_signals(self) -> None:
        # An ignored signal stays ignored across execve: every one back to its
        # default, and an empty mask. Not only what CPython ignores at start-up
        # (SIGPIPE, SIGXFSZ): whatever the caller ignored reaches us too (a
        # judge under nohup ignores SIGHUP), as the native launcher resets.
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])

    def set_cmdline(self, title: bytes) -> None:
        # /proc/PID/cmdline is world-readable and shows the argv area of the
        # stack (arg_start..arg_end, fields 48-49 of /proc/self/stat): overwrite
        # it in place, as setproctitle does. Ends in NUL, so the kernel does not
        # read on into the environment.
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[48 - 3]), int(fields[49 - 3])
        size = end - start
        if size <= 0:
            return
        ctypes.memmove(start, title[: size - 1].ljust(size, b"\0"), size)

    def getpid(self) -> int:
        return os.getpid()

    def getppid(self) -> int:
        return os.getppid()

    def execve(self, path: str, argv: Sequence[str], env: Mapping[str, str]) -> NoReturn:
        os.execve(path, list(argv), dict(env))  # noqa: S606 - the payload, by design

    def exit(self, code: int) -> NoReturn:
        os._exit(code)

    # --- namespaces ---
    def unshare(self, flags: CloneFlag) -> None:
        if _unshare(int(flags)) < 0:
            _fail("unshare", f"unshare({CloneFlag(flags)!s})")

    def setns(self, fd: int, nstype: CloneFlag) -> None:
        if _setns(fd, int(nstype)) < 0:
            _fail("setns", f"setns({fd}, {CloneFlag(nstype)!s})")

    def sethostname(self, name: str) -> None:
        socket.sethostname(name)

    def loopback_up(self) -> None:
        # SIOCGIFFLAGS / SIOCSIFFLAGS on "lo": set IFF_UP|IFF_RUNNING (bwrap loopback_setup).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            ifr = struct.pack("16sH22x", b"lo", 0)
            flags = struct.unpack("16sH22x", fcntl.ioctl(s, 0x8913, ifr))[1]
            fcntl.ioctl(s, 0x8914, struct.pack("16sH22x", b"lo", flags | 0x1 | 0x40))

    # --- mounts ---
    def fsopen(self, fstype: str) -> int:
        return _sys("fsopen", lambda: f"fsopen({fstype!r}, FSOPEN_CLOEXEC)", fstype, 1)

    def fsconfig(
        self, fd: int, cmd: FsconfigCmd, key: str | None = None, value: str | None = None
    ) -> None:
        _sys(
            "fsconfig",
            lambda: f"fsconfig({fd}, {FsconfigCmd(cmd).name}, {key!r}, {value!r})",
            fd,
            int(cmd),
            key,
            value,
            0,
        )

    def fsmount(self, fd: int, attrs: int) -> int:
        return _sys("fsmount", lambda: f"fsmount({fd}, FSMOUNT_CLOEXEC, {attrs:#x})", fd, 1, attrs)

    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        return _sys(
            "open_tree", lambda: f"open_tree({dirfd}, {path!r}, {flags:#x})", dirfd, path, flags
        )

    def mount_setattr(
        self,
        fd: int,
        path: str,
        flags: int,
        attr_set: int,
        attr_clr: int = 0,
        userns_fd: int = 0,
    ) -> None:
        attr = struct.pack("QQQQ", attr_set, attr_clr, 0, userns_fd)
        buf = ctypes.create_string_buffer(attr, len(attr))
        _sys(
            "mount_setattr",
            lambda: f"mount_setattr({fd}, {path!r}, {flags:#x}, set={attr_set:#x})",
            fd,
            path,
            flags,
            buf,
            len(attr),
        )

    def move_mount(
        self, from_fd: int, from_path: str, to_dirfd: int, to_path: str, flags: int
    ) -> None:
        _sys(
            "move_mount",
            lambda: f"move_mount({from_fd}, {from_path!r}, {to_dirfd}, {to_path!r})",
            from_fd,
            from_path,
            to_dirfd,
            to_path,
            flags,
        )

    def mount(
        self,
        source: str | None,
        target: str,
        fstype: str | None,
        flags: MountFlag,
        data: str | None = None,
    ) -> None:
        r = _mount(
            source.encode() if source is not None else None,
            target.encode(),
            fstype.encode() if fstype is not None else None,
            int(flags),
            data.encode() if data is not None else None,
        )
        if r < 0:
            _fail(
                "mount",
                f"mount(src={source!r}, dst={target!r}, type={fstype!r}, "
                f"flags={MountFlag(flags)!s}, data={data!r})",
                path=target,
            )

    def umount2(self, target: str, flags: UmountFlag) -> None:
        if _umount2(target.encode(), int(flags)) < 0:
            _fail("umount2", f"umount2({target!r}, {UmountFlag(flags)!s})", path=target)

    def pivot_root(self, new_root: str, put_old: str) -> None:
        _sys("pivot_root", lambda: f"pivot_root({new_root!r}, {put_old!r})", new_root, put_old)

    def chdir(self, path: str) -> None:
        os.chdir(path)

    # --- files ---
    def openat(self, dirfd: int, path: str, flags: int, mode: int = 0) -> int:
        return os.open(path, flags, mode, dir_fd=None if dirfd == AT_FDCWD else dirfd)

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        how = struct.pack("QQQ", flags, mode, resolve)
        return _sys(
            "openat2",
            lambda: f"openat2({dirfd}, {path!r}, {flags:#x}, resolve={resolve:#x})",
            dirfd,
            path,
            ctypes.create_string_buffer(how, len(how)),
            len(how),
        )

    def mkdirat(self, dirfd: int, path: str, mode: int) -> None:
        os.mkdir(path, mode, dir_fd=None if dirfd == AT_FDCWD else dirfd)

    def mknodat(self, dirfd: int, path: str, mode: int, dev: int) -> None:
        os.mknod(path, mode, dev, dir_fd=None if dirfd == AT_FDCWD else dirfd)

    def symlinkat(self, target: str, dirfd: int, path: str) -> None:
        os.symlink(target, path, dir_fd=None if dirfd == AT_FDCWD else dirfd)

    def fchownat(self, dirfd: int, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid, dir_fd=None if dirfd == AT_FDCWD else dirfd, follow_symlinks=False)

    def fchmodat(self, dirfd: int, path: str, mode: int) -> None:
        os.chmod(path, mode, dir_fd=None if dirfd == AT_FDCWD else dirfd)

    def copy_into(
        self, src: str, dirfd: int, dst: str, mode: int, owner: tuple[int, int] | None = None
    ) -> None:
        # The source may have been shaped by a payload (a file in a writable bind
        # an earlier run had): no symlink or magic link is followed, and only a
        # regular file is read. The destination is created beneath dirfd (the
        # new /box) with nothing followed or crossed on the way.
        sfd = self.openat2(
            AT_FDCWD,
            src,
            os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC,
            RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        )
        try:
            if not stat.S_ISREG(os.fstat(sfd).st_mode):
                _fail("open", f"copy {src!r} into the sandbox: not a regular file", E.EINVAL)
            dfd = self.openat2(
                dirfd,
                dst,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
                mode,
            )
            try:
                size = os.fstat(sfd).st_size
                done = 0
                while done < size:  # sendfile: copy_file_range refuses to cross file systems
                    n = os.sendfile(dfd, sfd, None, size - done)
                    if n == 0:
                        break
                    done += n
                os.fchmod(dfd, mode)
                if owner is not None:
                    os.fchown(dfd, *owner)
            except OSError as e:
                raise OSError(e.errno, f"copy {src!r} into the sandbox: {e.strerror}") from None
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)

    def read(self, fd: int, n: int) -> bytes:
        return os.read(fd, n)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def fstat_path(self, path: str) -> os.stat_result:
        return os.lstat(path)

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def close(self, fd: int) -> None:
        os.close(fd)

    def send_fd(self, sock: int, fd: int, tag: bytes = b"F") -> None:
        # One raw sendmsg(2): this runs after the seccomp filter is loaded, so no
        # other syscall may be made (a Python socket object would getsockopt).
        data = ctypes.create_string_buffer(tag[:1], 1)
        iov = _Iovec(ctypes.cast(data, ctypes.c_void_p), 1)
        cmsg = ctypes.create_string_buffer(
            struct.pack("QiiI4x", 20, socket.SOL_SOCKET, socket.SCM_RIGHTS, fd), 24
        )
        msg = _Msghdr(None, 0, ctypes.pointer(iov), 1, ctypes.cast(cmsg, ctypes.c_void_p), 24, 0)
        if _sendmsg(sock, ctypes.byref(msg), 0) < 0:
            _fail("sendmsg", f"sendmsg({sock}, SCM_RIGHTS [{fd}])")

    def recv_fd(self, sock: int) -> tuple[bytes, int]:
        # One message and at most one fd; (b"", -1) at end-of-file. Extra fds close.
        s = socket.socket(fileno=os.dup(sock))
        try:
            data, fds = fdpass.recv_fds(s, 16, 2)
        finally:
            s.close()
        for extra in fds[1:]:
            os.close(extra)
        return data, fds[0] if fds else -1

    def unlockpt(self, master: int) -> None:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))

    def pty_peer(self, master: int, flags: int) -> int:
        return int(fcntl.ioctl(master, TIOCGPTPEER, flags))

    def set_controlling_tty(self, fd: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSCTTY, 0)

    def socketpair(self) -> tuple[int, int]:
        # AF_UNIX, SOCK_SEQPACKET, both ends CLOEXEC and blocking.
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return a.detach(), b.detach()

    def pidfd_getfd(self, pid: int, target_fd: int) -> int:
        pidfd = os.pidfd_open(pid)
        try:
            desc = lambda: f"pidfd_getfd({pid}, {target_fd}, 0)"  # noqa: E731
            return _sys("pidfd_getfd", desc, pidfd, target_fd, 0)
        finally:
            os.close(pidfd)

    def pipe(self, blocking: bool = False) -> tuple[int, int]:
        return os.pipe2(os.O_CLOEXEC | (0 if blocking else os.O_NONBLOCK))

    def dup2(self, fd: int, fd2: int) -> None:
        os.dup2(fd, fd2, inheritable=True)

    def listdir(self, path: str) -> list[str]:
        try:
            return os.listdir(path)
        except OSError as e:
            raise OSError(e.errno, f"getdents64({path!r}): {e.strerror}", path) from e

    def close_range(self, first: int, last: int, flags: int) -> None:
        _sys(
            "close_range",
            lambda: f"close_range({first}, {last:#x}, {flags:#x})",
            first,
            last,
            flags,
        )

    def write_file(self, path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    # --- credentials and limits ---
    def setgroups(self, gids: Sequence[int]) -> None:
        os.setgroups(list(gids))

    def setresgid(self, r: int, e: int, s: int) -> None:
        os.setresgid(r, e, s)

    def setresuid(self, r: int, e: int, s: int) -> None:
        os.setresuid(r, e, s)

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
        data = struct.pack(
            "IIIIII",
            effective & 0xFFFFFFFF,
            permitted & 0xFFFFFFFF,
            inheritable & 0xFFFFFFFF,
            effective >> 32,
            permitted >> 32,
            inheritable >> 32,
        )
        _sys(
            "capset",
            lambda: f"capset(eff={effective:#x}, prm={permitted:#x}, inh={inheritable:#x})",
            ctypes.create_string_buffer(hdr, len(hdr)),
            ctypes.create_string_buffer(data, len(data)),
        )

    def setrlimit(self, res: int, soft: int, hard: int) -> None:
        try:
            resource.setrlimit(res, (soft, hard))
        except (ValueError, OverflowError) as e:
            # CPython reports EPERM (raising a hard limit) and EINVAL as ValueError:
            # an OSError with the errno, like every other call here.
            err = E.EPERM if "not allowed" in str(e) else E.EINVAL
            raise OSError(err, f"setrlimit({res}, soft={soft}, hard={hard}): {e}") from None

    # --- seccomp and Landlock ---
    def seccomp_set_filter(self, bpf: bytes, flags: int) -> int:
        buf = ctypes.create_string_buffer(bpf, len(bpf))
        prog = _Fprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
        return _sys(
            "seccomp",
            lambda: f"seccomp(SECCOMP_SET_MODE_FILTER, {flags:#x}, {{len={len(bpf) // 8}}})",
            SECCOMP_SET_MODE_FILTER,
            flags,
            ctypes.byref(prog),
        )

    def landlock_create_ruleset(self, handled_fs: int, handled_net: int, scoped: int) -> int:
        attr = struct.pack("QQQ", handled_fs, handled_net, scoped)
        return _sys(
            "landlock_create_ruleset",
            lambda: (
                f"landlock_create_ruleset(fs={handled_fs:#x}, net={handled_net:#x}, "
                f"scoped={scoped:#x})"
            ),
            ctypes.create_string_buffer(attr, len(attr)),
            len(attr),
            0,
        )

    def landlock_add_path_rule(self, ruleset_fd: int, parent_fd: int, allowed: int) -> None:
        attr = struct.pack("=Qi", allowed, parent_fd)
        _sys(
            "landlock_add_rule",
            lambda: (
                f"landlock_add_rule({ruleset_fd}, PATH_BENEATH, "
                f"{{allowed={allowed:#x}, parent_fd={parent_fd}}})"
            ),
            ruleset_fd,
            1,
            ctypes.create_string_buffer(attr, len(attr)),
            0,
        )

    def landlock_add_net_rule(self, ruleset_fd: int, port: int, allowed: int) -> None:
        attr = struct.pack("QQ", allowed, port)
        _sys(
            "landlock_add_rule",
            lambda: (
                f"landlock_add_rule({ruleset_fd}, NET_PORT, {{allowed={allowed:#x}, port={port}}})"
            ),
            ruleset_fd,
            2,
            ctypes.create_string_buffer(attr, len(attr)),
            0,
        )

    def landlock_restrict_self(self, ruleset_fd: int) -> None:
        _sys(
            "landlock_restrict_self",
            lambda: f"landlock_restrict_self({ruleset_fd}, 0)",
            ruleset_fd,
            0,
        )

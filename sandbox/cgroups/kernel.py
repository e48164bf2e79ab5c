"""The cgroup layer's only door to the kernel: cgroupfs files, statfs, signals, bpf(2).

Runs in the supervisor. Everything else in ``sandbox.cgroups`` reaches the
kernel through a :class:`CgroupIO` object, so unit tests substitute a fake
that simulates cgroupfs on a tmpdir and records every write (youki's
``set_fixture`` plus its recording ``Syscall`` fake). Errors are ``OSError``
with the call written out as strace would show it.

Needs: write access to the delegated parent cgroup (root, or a delegated
subtree); ``CAP_SYS_ADMIN`` (or ``CAP_BPF`` + ``CAP_NET_ADMIN``) for the v2
device program.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import time
from collections.abc import Iterable

CGROUP_SUPER_MAGIC = 0x27E0EB
CGROUP2_SUPER_MAGIC = 0x63677270

_NR_BPF = 321  # x86_64; the only arch this layer attaches device programs on so far
_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
# ALLOW_MULTI: a parent's own device program (systemd DevicePolicy=) keeps
# running beside ours; both must allow. Attaching with 0 would fail with EPERM
# under such a parent, and with ALLOW_OVERRIDE ours would replace theirs.
BPF_F_ALLOW_MULTI = 2

_libc = ctypes.CDLL(None, use_errno=True)
log = logging.getLogger(__name__)

_NR_OPENAT2 = 437  # the same on x86_64 and aarch64 (the generic table)
# Walking an engine-given cgroup path: never leave the hierarchy's mount (a bind
# planted over a component), never follow a link.
_RESOLVE_NO_XDEV, _RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 1, 2, 4, 8
RESOLVE_CGROUP = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_XDEV


def openat2_dir(dirfd: int, name: str, resolve: int = RESOLVE_CGROUP) -> int:
    """``openat2(dirfd, name, O_RDONLY|O_DIRECTORY|O_CLOEXEC, resolve)``: a directory fd."""
    how = (ctypes.c_uint64 * 3)(os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, 0, resolve)
    fd = int(
        _libc.syscall(_NR_OPENAT2, dirfd, os.fsencode(name), ctypes.byref(how), ctypes.sizeof(how))
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(
            err, f"openat2({name!r}, RESOLVE_BENEATH|NO_SYMLINKS|NO_XDEV): {os.strerror(err)}", name
        )
    return fd


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def _fail(call: str, path: str | None = None) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}", path)


def statfs_magic(path: str) -> int:
    """``statfs(path).f_type``: tells cgroup (v1) from cgroup2 (nsjail detectCgroupv2)."""
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        raise _fail(f"statfs({path!r})", path)
    return int(buf.f_type) & 0xFFFFFFFF


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char], desc: str) -> int:
    ret = int(_libc.syscall(_NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
    if ret < 0:
        raise _fail(f"bpf({desc})")
    return ret


def bpf_load_device_program(insns: bytes, license_: bytes = b"Apache-2.0") -> int:
    """``bpf(BPF_PROG_LOAD)`` of a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd.

    Loads without a verifier log first (a log too small for the verifier's
    output fails the load with ENOSPC); on failure loads again with a log and
    attaches the verifier's explanation to the error.
    """
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license_)
    log = ctypes.create_string_buffer(1 << 16)

    def load(log_level: int) -> int:
        attr = ctypes.create_string_buffer(128)
        fields = [  # offsets in union bpf_attr's BPF_PROG_LOAD struct
            (0, ctypes.c_uint32, BPF_PROG_TYPE_CGROUP_DEVICE),
            (4, ctypes.c_uint32, len(insns) // 8),
            (8, ctypes.c_uint64, ctypes.addressof(code)),
            (16, ctypes.c_uint64, ctypes.addressof(lic)),
            (24, ctypes.c_uint32, log_level),
            (28, ctypes.c_uint32, len(log) if log_level else 0),
            (32, ctypes.c_uint64, ctypes.addressof(log) if log_level else 0),
        ]
        for offset, ctype, value in fields:
            ctype.from_buffer(attr, offset).value = value
        ctypes.memmove(ctypes.addressof(attr) + 48, b"sbx_dev", 7)  # prog_name (bpftool)
        return _bpf(_BPF_PROG_LOAD, attr, "BPF_PROG_LOAD, prog_type=CGROUP_DEVICE")

    try:
        return load(0)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.close(load(1))
        verifier = log.value.decode(errors="replace").strip()
        if verifier:
            exc.add_note(f"verifier log: {verifier[-2000:]}")
        raise


def bpf_prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int) -> None:
    """``bpf(BPF_PROG_ATTACH)``: attach ``prog_fd`` to the cgroup open at ``target_fd``."""
    attr = ctypes.create_string_buffer(32)
    for offset, value in enumerate((target_fd, prog_fd, attach_type, flags)):
        ctypes.c_uint32.from_buffer(attr, offset * 4).value = value
    _bpf(
        _BPF_PROG_ATTACH,
        attr,
        f"BPF_PROG_ATTACH, target_fd={target_fd}, "
        f"attach_bpf_fd={prog_fd}, attach_type={attach_type}, flags={flags}",
    )


class CgroupIO:
    """Real cgroupfs access. Subclass (or fake) it to test without a kernel.

    Paths are absolute filesystem paths; file contents are ASCII text.
    """

    def read(self, path: str) -> str:
        """Read a whole interface file (os-level: half the cost of a text file object,
        and the accounting reads several per run)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return self.pread_all(fd)
        finally:
            os.close(fd)

    def write(self, path: str, data: str) -> None:
        """One write(2) of ``data``: cgroupfs parses each write separately."""
        log.debug("write(%r, %r)", path, data)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data.encode())
        except OSError as exc:
            raise OSError(exc.errno, f"write({path!r}, {data!r}): {exc.strerror}", path) from None
        finally:
            os.close(fd)

    def mkdir(self, path: str) -> None:
        """Create a cgroup (the kernel fills in its interface files)."""
        log.debug("mkdir(%r)", path)
        os.mkdir(path, 0o755)

    def make_beneath(self, root: str, parts: Iterable[str]) -> list[str]:
        """Make ``root/parts...`` a directory, one component at a time, beneath ``root``.

        Each component is opened with openat2 RESOLVE_BENEATH|NO_SYMLINKS|
        NO_MAGICLINKS|NO_XDEV from its verified parent, so a symlink or a bind
        mount planted on the way is refused (ELOOP/EXDEV), never followed; a
        missing one is made (:meth:`mkdir`) and then opened the same way.
        Returns the directories made, outermost first. Raises OSError (after
        removing what it made).
        """
        made: list[str] = []
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        path = root
        try:
            for name in parts:
                path = os.path.join(path, name)
                try:
                    nfd = openat2_dir(fd, name)
                except FileNotFoundError:
                    try:
                        self.mkdir(path)
                        made.append(path)
                    except FileExistsError:
                        pass  # made meanwhile by a sibling container's runtime
                    nfd = openat2_dir(fd, name)
                os.close(fd)
                fd = nfd
        except OSError:
            for d in reversed(made):
                with contextlib.suppress(OSError):
                    self.rmdir(d)
            raise
        finally:
            os.close(fd)
        return made

    def rmdir(self, path: str) -> None:
        """Remove an empty cgroup."""
        log.debug("rmdir(%r)", path)
        os.rmdir(path)

    def listdir(self, path: str) -> list[str]:
        """Child cgroups (directories only)."""
        return [e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]

    def entries(self, path: str) -> list[str]:
        """Every name in a cgroup directory (interface files and children)."""
        return os.listdir(path)

    def exists(self, path: str) -> bool:
        """Whether a file or cgroup exists."""
        return os.path.exists(path)

    def writable(self, path: str) -> bool:
        """Whether this process may write ``path`` (create children in a directory)."""
        return os.access(path, os.W_OK)

    def open_write(self, path: str) -> int:
        """``open(path, O_WRONLY|O_CLOEXEC)``."""
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)

    def open_read(self, path: str) -> int:
        """``open(path, O_RDONLY|O_CLOEXEC)``, for repeated :meth:`pread`."""
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def pread(self, fd: int, size: int) -> str:
        """Re-read an open interface file from offset 0 (kernfs regenerates it)."""
        return os.pread(fd, size, 0).decode("ascii")

    def pread_all(self, fd: int) -> str:
        """Re-read a whole open interface file from offset 0, however long."""
        data = os.pread(fd, 65536, 0)
        while len(data) % 65536 == 0 and data:  # a full buffer: there may be more
            more = os.pread(fd, 65536, len(data))
            if not more:
                break
            data += more
        return data.decode("ascii")

    def close(self, fd: int) -> None:
        """Close an fd this object opened."""
        os.close(fd)

    def kill_listed(self, pids: Iterable[int], still_listed: str) -> int:
        """SIGKILL each pid that is still in ``still_listed`` (a cgroup.procs) after
        a pidfd pins it, so a reused pid outside the cgroup is never signalled.

        Returns how many were signalled.
        """
        pidfds: dict[int, int] = {}
        try:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    pidfds[pid] = os.pidfd_open(pid)
            listed = {int(p) for p in self.read(still_listed).split()}
            sent = 0
            for pid, pidfd in pidfds.items():
                if pid in listed:
                    log.debug("pidfd_send_signal(%d, SIGKILL)", pid)
                    with contextlib.suppress(ProcessLookupError):
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                        sent += 1
            return sent
        finally:
            for pidfd in pidfds.values():
                os.close(pidfd)

    def attach_device_program(self, cgroup_dir: str, insns: bytes) -> None:
        """Load ``insns`` as a cgroup device program and attach it to ``cgroup_dir``.

        The cgroup keeps the program alive; both fds are closed here.
        """
        log.debug(
            "bpf(BPF_PROG_LOAD+BPF_PROG_ATTACH, CGROUP_DEVICE, %d insns, %r)",
            len(insns) // 8,
            cgroup_dir,
        )
        prog = bpf_load_device_program(insns)
        try:
            dirfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                bpf_prog_attach(prog, dirfd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
            finally:
                os.close(dirfd)
        finally:
            os.close(prog)

    def statfs_magic(self, path: str) -> int:
        """See :func:`statfs_magic`."""
        return statfs_magic(path)

    def sleep(self, seconds: float) -> None:
        """Wait between polls (faked in tests)."""
        time.sleep(seconds)

    def monotonic(self) -> float:
        """Clock for deadlines (faked in tests)."""
        return time.monotonic()


def is_busy(exc: OSError) -> bool:
    """rmdir of a cgroup whose last tasks are still exiting fails with EBUSY."""
    return exc.errno == errno.EBUSY

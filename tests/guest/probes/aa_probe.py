"""Probe run under an AppArmor profile: turns kernel decisions into a JSON report.

Usage: aa_probe.py OP [OP...], each OP one of
  attr  read:PATH  write:PATH  deleted:PATH  exec:PATH  mmapx:PATH
  socket:FAMILY:TYPE  kill:PID  environ:PID  waitfor:PATH  fstat:FD  fdwrite:FD
and prints a JSON list of [OP, result]: 0 on success, the errno name on
failure, the label for ``attr``. Standard library only (it starts in about a
second under TCG); ``waitfor`` lets a test act while the probe runs.
"""

import errno
import json
import os
import socket
import sys
import time


def _err(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def do(op):
    kind, _, arg = op.partition(":")
    try:
        if kind == "attr":
            with open("/proc/self/attr/current") as f:
                return f.read().strip()
        if kind == "read":
            fd = os.open(arg, os.O_RDONLY)
            os.read(fd, 1)
            os.close(fd)
        elif kind == "write":
            fd = os.open(arg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
            os.write(fd, b"x")
            os.close(fd)
        elif kind == "exec":
            pid = os.fork()
            if pid == 0:
                try:
                    os.execv(arg, [arg])
                except OSError as e:
                    os._exit(e.errno)
            st = os.waitpid(pid, 0)[1]
            code = os.waitstatus_to_exitcode(st)
            return 0 if code == 0 else errno.errorcode.get(code, code)
        elif kind == "mmapx":
            import mmap

            with open(arg, "rb") as f:
                mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ | mmap.PROT_EXEC).close()
        elif kind == "socket":
            fam, _, typ = arg.partition(":")
            socket.socket(getattr(socket, fam), getattr(socket, typ)).close()
        elif kind == "kill":
            os.kill(int(arg), 0)
        elif kind == "environ":
            with open(f"/proc/{arg}/environ", "rb") as f:
                f.read(1)
        elif kind == "deleted":
            fd = os.open(arg, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.unlink(arg)
            os.write(fd, b"x")
            os.lseek(fd, 0, os.SEEK_SET)
            assert os.read(fd, 1) == b"x"
            os.close(fd)
        elif kind == "fstat":
            os.fstat(int(arg))
        elif kind == "fdwrite":
            os.write(int(arg), b"probe\n")
        elif kind == "waitfor":
            deadline = time.monotonic() + 60
            while not os.path.exists(arg) and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            return "unknown op"
    except OSError as e:
        return _err(e)
    return 0


if __name__ == "__main__":
    out = [[op, do(op)] for op in sys.argv[1:]]
    sys.stdout.write(json.dumps(out) + "\n")

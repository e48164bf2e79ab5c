"""Bare baseline from Python: N timed posix_spawn + waitpid of a command (ns per line).

    .venv/bin/python -I -S bench/pyspawn.py N PROG [ARGS...]

Run as its own ``python -I -S`` process so the bench's threads and imports do
not weigh on it.
"""

import os
import sys
import time


def main() -> None:
    n, argv = int(sys.argv[1]), sys.argv[2:]
    out = []
    for _ in range(n):
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(argv[0], argv, {})
        _, status = os.waitpid(pid, 0)
        out.append(time.monotonic_ns() - t0)
        if status != 0:
            sys.exit(f"{argv[0]}: status {status}")
    print("\n".join(map(str, out)))


main()

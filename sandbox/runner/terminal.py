"""The payload never holds the caller's terminal: its streams are relayed through pipes
(supervisor side).

A terminal is shared state that outlives the run: through an inherited tty
fd a payload could set its line discipline to N_NULL (TIOCSETD), turn echo
and canonical mode off (TCSETS), make it exclusive (TIOCEXCL) or push input
into it (TIOCSTI), and the caller's shell would keep the damage (issue 13
item 3; bubblewrap's CVE-2017-5226 is the TIOCSTI case). So when a standard
stream the caller gives is a terminal, the payload gets a pipe instead and
the supervisor relays: the run's output to the caller's terminal, the
caller's typed input (line by line, as its terminal hands it over; its ^D
ends the pipe) to the payload. The payload sees no terminal at all.

Why pipes and not a pty of the run's own (``script``'s way): a pty the
supervisor opens lives on the host's devpts, which is not mounted in the
container, so inside it is a disconnected path, and AppArmor refuses
``fstat`` on disconnected files (``cat`` then fails: "standard output:
Permission denied", seen on the guest kernel). Pipes are mediated by no
path. The cost: programs act as they do with a pipe (full buffering, no
prompts or colours).

The caller's terminal is read through a fresh open of it, non-blocking, so
the caller's own file description (shared with its shell) is never changed.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def is_terminal(fd: int | None) -> bool:
    """Whether ``fd`` is a terminal (None: no fd)."""
    return fd is not None and os.isatty(fd)


def reopen(fd: int) -> int:
    """The caller's terminal opened anew, non-blocking (its own description untouched).

    -1 when that is refused: the payload's stdin then reads end-of-file at
    once, never the caller's terminal itself, and never through a read that
    could block the supervisor's loop.
    """
    for flags in (os.O_RDWR, os.O_RDONLY):
        try:
            return os.open(
                f"/proc/self/fd/{fd}", flags | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
            )
        except OSError as e:
            err = e
    log.warning("stdin is a terminal that cannot be reopened (%s): the run gets no input", err)
    return -1

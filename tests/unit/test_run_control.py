"""RunControl's wake-up pipe is closed once: a run's handle may be waited on twice, and
another run's thread may own the same descriptor numbers by then."""

from __future__ import annotations

import os

from sandbox.runner.control import RunControl


def test_a_second_close_or_a_late_cancel_touches_no_reused_descriptor() -> None:
    c = RunControl()
    numbers = {c.wake_r, c._wake_w}
    c.close()
    r, w = os.pipe()  # the lowest free numbers: those the control just gave back
    try:
        assert {r, w} == numbers
        c.close()
        c.cancel()
        os.set_blocking(r, False)
        os.write(w, b"ok")
        assert os.read(r, 16) == b"ok"  # still open, and nothing of cancel() arrived
    finally:
        os.close(r)
        os.close(w)

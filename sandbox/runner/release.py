"""The release stage: give back what the acquire and launch stages took, in reverse.

Supervisor side. The order is the reverse of acquisition (the launcher's
record of the run, the run's fds, the AppArmor hold, the cgroup leaf: kill
what is left, rmdir; the id slot, the image pin, the run lock last, so a
sweeper never takes a live run's resources). Each step runs even when an
earlier one failed; failures are logged and never raised over the run's own
result or error (STYLE B6.9). What a killed supervisor never releases, the
launcher's watchdog and the next supervisor's sweep remove.
"""

from __future__ import annotations

import logging

from sandbox.runner.acquire import Resources

log = logging.getLogger(__name__)


def release(res: Resources) -> None:
    """Release every resource of the run; log what could not be released."""
    try:
        res.stack.close()
    except Exception as e:  # never over the primary result: logged, then dropped
        log.warning(
            "run %s: release: %s: %s",
            res.plan.run_id or "?",
            type(e).__name__,
            e,
            extra={"run_id": res.plan.run_id},
        )

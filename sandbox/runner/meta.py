"""ioi/isolate's meta-file format (``sandbox exec --meta-format isolate``), for judges that
parse it: the same rendering as the isolate front end's (``sandbox.isolate.meta``).

One ``key:value`` per line, as isolate writes them: ``time`` (CPU seconds),
``time-wall``, ``max-rss`` and ``cg-mem`` (KiB, the run's cgroup peak),
``csw-voluntary``, ``csw-forced``, ``exitcode`` or ``exitsig``, ``killed``,
``cg-oom-killed``, ``status`` (XX > TO > SG > RE) and ``message``. Our verdict
is added as ``verdict`` (isolate's parsers ignore keys they do not know).
"""

from __future__ import annotations

from typing import Any


def isolate_meta(record: dict[str, Any]) -> str:
    """The run record rendered as an isolate meta file."""
    from sandbox.isolate.meta import outcome

    return outcome(record).text()

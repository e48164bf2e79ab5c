"""ioi/isolate's meta-file format (``--meta-format isolate``), for judges that parse it.

One ``key:value`` per line, as isolate writes them: ``time`` (CPU seconds),
``time-wall``, ``max-rss`` and ``cg-mem`` (KiB), ``csw-voluntary``,
``csw-forced``, ``exitcode`` or ``exitsig``, ``killed``, ``cg-oom-killed``,
``status`` (RE, SG, TO, XX) and ``message``. Our verdict is added as
``verdict`` (isolate ignores keys it does not know).
"""

from __future__ import annotations

from typing import Any

_STATUS = {
    "RUNTIME_ERROR": "RE",
    "TIME_LIMIT": "TO",
    "WALL_TIME_LIMIT": "TO",
    "MEMORY_LIMIT": "SG",
    "OUTPUT_LIMIT": "SG",
    "SECURITY_VIOLATION": "SG",
    "SPAWN_ERROR": "XX",
    "INTERNAL_ERROR": "XX",
}


def isolate_meta(record: dict[str, Any]) -> str:
    """The run record rendered as an isolate meta file."""
    lines: list[tuple[str, Any]] = []

    def put(key: str, value: Any) -> None:
        if value is not None:
            lines.append((key, value))

    cpu, wall = record.get("cpu_time"), record.get("wall_time")
    put("time", f"{cpu:.3f}" if cpu is not None else None)
    put("time-wall", f"{wall:.3f}" if wall is not None else None)
    # max-rss: the run's memory peak (cgroup), not wait4's figure (see Usage).
    peak = record["memory_peak"] // 1024 if record.get("memory_peak") is not None else None
    put("max-rss", peak)
    put("cg-mem", peak)
    put("csw-voluntary", record.get("csw_voluntary"))
    put("csw-forced", record.get("csw_forced"))
    if record.get("signal") is not None:
        put("exitsig", record["signal"])
    else:
        put("exitcode", record.get("exit_code"))
    verdict = record.get("verdict", "INTERNAL_ERROR")
    if verdict in (
        "TIME_LIMIT",
        "WALL_TIME_LIMIT",
        "OUTPUT_LIMIT",
        "SECURITY_VIOLATION",
        "MEMORY_LIMIT",
    ):
        put("killed", 1)
    if record.get("oom_killed"):
        put("cg-oom-killed", 1)
    status = _STATUS.get(verdict)
    if status == "RE" and record.get("signal") is not None:
        status = "SG"
    put("status", status)
    message = record.get("message") or {
        "TIME_LIMIT": "Time limit exceeded",
        "WALL_TIME_LIMIT": "Time limit exceeded (wall clock)",
        "MEMORY_LIMIT": "Memory limit exceeded",
        "OUTPUT_LIMIT": "Output limit exceeded",
        "RUNTIME_ERROR": f"Exited with error status {record.get('exit_code')}",
    }.get(verdict)
    if verdict == "RUNTIME_ERROR" and record.get("signal") is not None:
        message = f"Caught fatal signal {record['signal']}"
    put("message", message)
    put("verdict", verdict)
    return "".join(f"{k}:{v}\n" for k, v in lines)

"""Every numeric limit, from a profile or the command line: finite, in range, or refused.

Issue 13 item 6: ``nan``, ``inf``, ``1e309``, ``0`` (tmpfs ``size=0`` is
unlimited) and values the kernel reads as "no limit" (``memory.max`` above
``PAGE_COUNTER_MAX`` pages) went through, or raised a traceback later. The
property: whatever number (or text) a key gets, loading either refuses it
with a one-line PolicyError naming the key, or yields a value the kernel
interface behind that key takes as a real limit, and what the run derives
from it (rlimits, cgroup limits, the epoll timeout) is computable.
"""

from __future__ import annotations

import math
import types
import typing

from hypothesis import event, given
from hypothesis import strategies as st
from strategies import BUDGET

from sandbox.cgroups import CgroupLimits
from sandbox.compile import rlimits
from sandbox.errors import PolicyError
from sandbox.policy import model
from sandbox.policy.load import load_profile

# key path -> the largest value the kernel takes as a limit there
BOUNDS: dict[tuple[str, ...], float] = {
    ("limits", "cpu_time"): model.MAX_SECONDS,
    ("limits", "wall_time"): model.MAX_SECONDS,
    ("limits", "memory"): model.MAX_BYTES,
    ("limits", "processes"): model.MAX_TASKS,
    ("limits", "output"): model.MAX_BYTES,
    ("limits", "file_size"): model.MAX_BYTES,
    ("limits", "open_files"): model.MAX_NOFILE,
    ("limits", "stack"): model.MAX_BYTES,
    ("limits", "address_space"): model.MAX_BYTES,
    ("limits", "memlock"): model.MAX_BYTES,
    ("limits", "msgqueue"): model.MAX_BYTES,
    ("limits", "sigpending"): model.MAX_RLIMIT,
    ("limits", "cpu_quota"): model.MAX_CPUS,
    ("limits", "io_read_bps", "/dev/null"): model.MAX_BYTES,
    ("limits", "io_write_bps", "/dev/null"): model.MAX_BYTES,
    ("limits", "io_read_iops", "/dev/null"): model.MAX_IOPS,
    ("limits", "io_write_iops", "/dev/null"): model.MAX_IOPS,
    ("limits", "hugetlb", "2MB"): model.MAX_BYTES,
    ("limits", "net_classid"): model.MAX_U32,
    ("limits", "net_prio", "lo"): model.MAX_U32,
    ("filesystem", "disk"): model.MAX_BYTES,
    ("filesystem", "disk_inodes"): model.MAX_INODES,
    ("filesystem", "tmpfs", 0, "size"): model.MAX_BYTES,
}
PAGE_COUNTER_MAX_BYTES = ((1 << 63) - 1) // 4096 * 4096  # above: memory.max reads "max"
RLIM_INFINITY = (1 << 64) - 1
EPOLL_MAX_MS = (1 << 31) - 1

numbers = st.one_of(
    st.integers(-(1 << 70), 1 << 70),
    st.sampled_from([0, -1, 1, 1 << 60, (1 << 60) + 1, 1 << 63, 1 << 64, 10**23]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e309, 1e23, 0.0, -0.0, 5e-324]),
    st.from_regex(r"\A-?[0-9]{1,25}\s?[KMGTkmgt]?(i?B)?\Z"),
    st.text(max_size=8),
)


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or args:
        return any(_numeric(a) for a in args)
    return annotation in (int, float)


def _fields(cls: type[model._Model], where: tuple[str, ...]) -> set[tuple[str, ...]]:
    return {(*where, n) for n, f in cls.model_fields.items() if _numeric(f.annotation)}


def test_the_table_covers_every_numeric_limit() -> None:
    """A new numeric key must be added to BOUNDS (and so to this property)."""
    keys = {k[:2] if k[1] != "tmpfs" else k for k in BOUNDS}
    found = _fields(model.Limits, ("limits",)) | _fields(model.Filesystem, ("filesystem",))
    found |= {("filesystem", "tmpfs", 0, n[-1]) for n in _fields(model.Tmpfs, ())}
    assert found == keys


def _table(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    if path[-2:-1] == (0,):  # filesystem.tmpfs[0].size
        return {"filesystem": {"tmpfs": [{"target": "/scratch", path[-1]: value}]}}
    out: dict[str, object] = {path[-1]: value}  # type: ignore[dict-item]
    for key in reversed(path[:-1]):
        out = {key: out}  # type: ignore[dict-item]
    return out


def _get(policy: model.Policy, path: tuple[str | int, ...]) -> object:
    node: object = policy
    for key in path:
        node = node[key] if isinstance(key, int) or isinstance(node, dict) else getattr(node, key)
    return node


@BUDGET
@given(st.sampled_from(sorted(BOUNDS, key=str)), numbers)
def test_a_limit_is_in_range_or_refused(path: tuple[str | int, ...], value: object) -> None:
    try:
        policy = load_profile("strict", _table(path, value)).policy
    except PolicyError as e:
        message = str(e)
        assert "\n" not in message
        assert message.startswith("command line: ") and str(path[1]) in message, message
        event("refused")
        return
    got = _get(policy, path)
    if got in model.STACK_WORDS:  # "memory" / "unlimited": the stack's words, not numbers
        event("stack word")
        return
    assert isinstance(got, int | float) and not isinstance(got, bool)
    assert math.isfinite(got) and 0 < got <= BOUNDS[path], (path, value, got)
    # What the run derives from it is computable and is still a limit.
    for r in rlimits(policy):
        assert 0 <= r.soft <= r.hard < RLIM_INFINITY
    lim = policy.limits
    CgroupLimits(memory=lim.memory, pids=lim.processes, cpu_quota=lim.cpu_quota)
    if lim.memory is not None:
        assert lim.memory <= PAGE_COUNTER_MAX_BYTES
    for seconds in (lim.wall_time, lim.cpu_time):
        if seconds is not None:
            assert math.ceil(seconds * 1000) <= EPOLL_MAX_MS
    assert policy.filesystem.disk > 0 and policy.filesystem.disk_inodes > 0  # 0: unlimited
    event("accepted")


def test_the_named_values_of_the_issue_are_refused(tmp_path) -> None:
    for path, value in [
        (("limits", "wall_time"), math.nan),
        (("limits", "wall_time"), math.inf),
        (("limits", "cpu_time"), math.nan),
        (("limits", "cpu_time"), math.inf),
        (("filesystem", "disk"), "0"),
        (("filesystem", "disk_inodes"), 0),
        (("limits", "memory"), str(10**23)),
        (("limits", "open_files"), 99999999999),
    ]:
        try:
            load_profile("strict", _table(path, value))
        except PolicyError as e:
            assert path[-1] in str(e)
        else:
            raise AssertionError(f"{path} = {value!r} was accepted")
    p = tmp_path / "p.toml"
    p.write_text('extends = "strict"\n[limits]\ncpu_time = 1e309\n')
    try:
        load_profile(str(p))
    except PolicyError as e:
        assert f"{p}:3: limits.cpu_time" in str(e)
    else:
        raise AssertionError("cpu_time = 1e309 was accepted")

"""Cost of the run path's verification (``verify.cache.cached_check``) on this machine.

    .venv/bin/python bench/verify_bench.py

Prints, for ``strict``: the first call in a process (library fingerprint,
full check, entry written), a memory hit, a disk hit (fresh memory, as in a
new supervisor process), and a miss (``no_cache``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from sandbox.host import probe
from sandbox.policy.load import load_profile
from sandbox.seccomp.build import prepare
from sandbox.verify import cache


def _times(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _show(label: str, times: list[float]) -> None:
    med = statistics.median(times) * 1e6
    p95 = sorted(times)[int(len(times) * 0.95) - 1] * 1e6
    print(f"{label:<34} median {med:9.1f} us   p95 {p95:9.1f} us   (n={len(times)})")


def main() -> None:
    host = probe()
    prof = load_profile("strict")
    art = prepare(prof.policy.seccomp, host.arch)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "verified"

        def call(**kw: object) -> None:
            cache.cached_check(prof, host, seccomp=art, cache_dir=d, **kw)

        _show("first call (fingerprint + check)", _times(call, 1))
        _show("hit, in memory", _times(call, 5000))

        def disk() -> None:
            with cache._LOCK:
                cache._MEMORY.clear()
            call()

        _show("hit, from disk (fresh memory)", _times(disk, 1000))
        _show("miss (no_cache: full check)", _times(lambda: call(no_cache=True), 5))


if __name__ == "__main__":
    main()

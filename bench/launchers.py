"""Library warm run of /bin/true under strict through both launchers, beside bwrap and bare.

Interleaved round by round (a burst of load hits every subject): the bare
fork+exec+wait C loop and bwrap from bench/c/forkexec.c, then
``Sandbox("strict", launcher=...)`` warm, native and Python. Prints medians,
p90 and p99, the ratios to bare and to bwrap, and the load seen.

    .venv/bin/python -m bench.launchers [--rounds 10] [--pool-off]

``--pool-off`` adds the row ``native-sync``: the same native Sandbox with its
leaf pool and its background release turned off (the run path before issue
12's leaf pool), in the same rounds.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from typing import Any

from bench.common import build_c, run_forkexec
from bench.latency import BWRAP_USR


def _lib(sb: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.monotonic()
        r = sb.run(["/bin/true"])
        out.append(time.monotonic() - t)
        if r.verdict.value != "OK":
            raise RuntimeError(f"library run: {r.verdict} {r.message}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--pool-off", action="store_true", help="also native without pool/bg release")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from sandbox import Sandbox

    exe = build_c()["forkexec"]
    load0 = os.getloadavg()
    res: dict[str, list[float]] = {"bare": [], "bwrap": [], "native": [], "python": []}
    sbs = {name: Sandbox("strict", launcher=name) for name in ("native", "python")}
    if args.pool_off:
        res["native-sync"] = []
        sbs["native-sync"] = sync = Sandbox("strict", launcher="native")
        sup = sync._supervisor
        assert sup.pool is not None and sup.releaser is not None
        sup.pool.close()
        sup.pool = sup.releaser = None  # leaf made and removed on the run's path
    try:
        for sb in sbs.values():
            _lib(sb, 5)
        for _ in range(args.rounds):
            res["bare"] += run_forkexec(exe, ["/bin/true"], 100)
            res["native"] += _lib(sbs["native"], 15)
            res["bwrap"] += run_forkexec(exe, BWRAP_USR, 20)
            res["python"] += _lib(sbs["python"], 15)
            if args.pool_off:
                res["native-sync"] += _lib(sbs["native-sync"], 15)
    finally:
        for sb in sbs.values():
            sb.close()
    med = {k: statistics.median(v) for k, v in res.items()}
    head = ("subject", "median", "p90", "p99", "n", "x bare", "x bwrap")
    print("{:8s} {:>8s} {:>8s} {:>8s} {:>5s} {:>7s} {:>7s}".format(*head))
    for k, v in res.items():
        v.sort()

        def q(p: float, v: list[float] = v) -> float:
            return v[min(len(v) - 1, int(p * len(v)))] * 1e3

        print(
            f"{k:8s} {med[k] * 1e3:8.2f} {q(0.9):8.2f} {q(0.99):8.2f} {len(v):5d} "
            f"{med[k] / med['bare']:7.2f} {med[k] / med['bwrap']:7.2f}"
        )
    print(f"load before {load0}, after {os.getloadavg()} (ms; 2 cores)")


if __name__ == "__main__":
    main()

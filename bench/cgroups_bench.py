"""Cost of the cgroup layer on this machine: create+remove of a leaf, cpu_usage_ns(), stats().

Run as root from the project root (host), or in the guest:
    python3 ../shared/tools/kvm-run -- .venv/bin/python bench/cgroups_bench.py
In the guest the runner first moves itself into /sbxbench/runner and names
/sbxbench as the delegated parent (cgroup v2's no-internal-processes rule).
"""

from __future__ import annotations

import os
import statistics
import time

from sandbox.cgroups import CgroupLimits, create, detect

LIMITS = CgroupLimits(memory=256 << 20, pids=64, cpu_quota=1.0)


def _v2_guest_parent() -> str | None:
    if os.environ.get("KVM_RUN") != "1":
        return None
    os.makedirs("/sys/fs/cgroup/sbxbench/runner", exist_ok=True)
    with open("/sys/fs/cgroup/sbxbench/runner/cgroup.procs", "w") as f:
        f.write(str(os.getpid()))
    return "/sbxbench"


def main() -> None:
    parent = _v2_guest_parent()
    layout = detect(parent=parent, env={})
    print(f"mode {layout.mode}, kernel {os.uname().release}")
    creates, removes = [], []
    for i in range(50):
        t0 = time.perf_counter()
        leaf = create(layout, f"bench{os.getpid()}-{i}", LIMITS)
        t1 = time.perf_counter()
        leaf.remove()
        creates.append(t1 - t0)
        removes.append(time.perf_counter() - t1)
    leaf = create(layout, f"bench{os.getpid()}-poll", LIMITS)
    try:
        n = 20000
        leaf.cpu_usage_ns()
        t0 = time.perf_counter()
        for _ in range(n):
            leaf.cpu_usage_ns()
        poll = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for _ in range(200):
            leaf.stats()
        stats = (time.perf_counter() - t0) / 200
    finally:
        leaf.remove()
    med = statistics.median
    print(
        f"leaves in {len(leaf.dirs)} hierarchies; median create {med(creates) * 1e3:.2f} ms, "
        f"remove {med(removes) * 1e3:.2f} ms, create+remove "
        f"{med([a + b for a, b in zip(creates, removes, strict=True)]) * 1e3:.2f} ms"
    )
    print(f"cpu_usage_ns {poll * 1e6:.2f} us/call, stats {stats * 1e6:.0f} us/call")
    if parent:
        with open("/sys/fs/cgroup/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        os.rmdir("/sys/fs/cgroup/sbxbench/runner")
        os.rmdir("/sys/fs/cgroup/sbxbench")


if __name__ == "__main__":
    main()

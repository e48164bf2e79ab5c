"""Seccomp overhead: a syscall-bound loop under ``strict``'s filter vs a one-instruction filter.

``bench/c/seccomp_loop.c`` sets no_new_privs, loads raw BPF bytes with
``seccomp(SECCOMP_SET_MODE_FILTER, 0)`` and times getppid() and
open("/dev/null")+close() loops. Subjects, each a fresh process, pinned to
one CPU and interleaved round by round: no filter, the allow-all filter
(``RET ALLOW``, one instruction: the kernel's floor for any filter), the
same again (noise), and strict's filter as ``sandbox.seccomp.build.prepare``
compiles it. Flags are 0 for every filter (strict's run uses
NEW_LISTENER, which changes what happens on a denial, not the cost of an
allowed call). Target: strict within 3% of allow-all.
"""

from __future__ import annotations

import statistics
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Series, Target, header, interleave, table

ALLOW_ALL = struct.pack("<HBBI", 0x06, 0, 0, 0x7FFF0000)  # BPF_RET|BPF_K, SECCOMP_RET_ALLOW
AUDIT_ARCH_X86_64 = 0xC000003E
LOOP_SYSCALLS = {"getppid": 110, "openat": 257, "close": 3}  # x86_64 numbers


def paired_pct(a: Series, b: Series) -> float:
    """Median over rounds of a's sample over b's from the same round, as a % change.

    Both ran back to back in each round, so the machine's drift between
    rounds (load, frequency) cancels; the ratio of the two series' medians
    kept it and swung by +-5% from run to run on this VM.
    """
    return 100 * (statistics.median(x / y for x, y in zip(a.samples, b.samples, strict=True)) - 1)


def kernel_cached(bpf: bytes, nr: int, arch: int = AUDIT_ARCH_X86_64) -> bool:
    """Would the kernel's action cache skip this filter for ``nr``? (allow, args unread)

    A transcription of kernel/seccomp.c ``seccomp_is_const_allow`` (5.11+):
    the filter is emulated knowing only the syscall number and the arch; a
    load of anything else (arguments, instruction pointer) or an unknown
    opcode means "not constant", and the filter then runs at every call.
    """
    insns = [struct.unpack_from("<HBBI", bpf, i) for i in range(0, len(bpf), 8)]
    pc, reg = 0, 0
    while pc < len(insns):
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # BPF_LD|BPF_W|BPF_ABS
            if k == 0:
                reg = nr
            elif k == 4:
                reg = arch
            else:
                return False
        elif code == 0x06:  # BPF_RET|BPF_K
            return k == 0x7FFF0000
        elif code == 0x05:  # BPF_JMP|BPF_JA
            pc += k
        elif code in (0x15, 0x35, 0x25, 0x45):  # JEQ, JGE, JGT, JSET with K
            op = {0x15: reg == k, 0x35: reg >= k, 0x25: reg > k, 0x45: bool(reg & k)}[code]
            pc += jt if op else jf
        elif code == 0x54:  # BPF_ALU|BPF_AND|BPF_K
            reg &= k
        else:
            return False
    return False


def _loop(exe: Path, bpf: str, iters: int, cpu: int) -> dict[str, float]:
    p = subprocess.run(
        [str(exe), bpf, str(iters), *([str(cpu)] if cpu >= 0 else [])],
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise RuntimeError(f"seccomp_loop {bpf}: status {p.returncode}: {p.stderr.strip()}")
    return {k: float(v) for k, v in (line.split() for line in p.stdout.splitlines())}


def run(
    exe: dict[str, Path],
    rounds: int,
    iters: int,
    cpu: int,
    targets: list[Target],
    results: dict[str, Any],
) -> None:
    from sandbox.policy.load import load_profile
    from sandbox.seccomp.build import prepare

    art = prepare(load_profile("strict").policy.seccomp)
    header(
        f"seccomp overhead: {iters} getppid, {iters // 10} open+close per process, "
        f"pinned to CPU {cpu}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="sbxbench-"))
    try:
        (tmp / "allow.bpf").write_bytes(ALLOW_ALL)
        (tmp / "strict.bpf").write_bytes(art.bpf)
        names = {
            "none": "no filter",
            str(tmp / "allow.bpf"): "allow-all (1 instruction)",
            str(tmp / "allow.bpf") + "#2": "allow-all again (noise)",
            str(tmp / "strict.bpf"): f"strict ({art.instructions} instructions)",
        }
        series = {k: (Series(v + " getppid"), Series(v + " open+close")) for k, v in names.items()}

        def batch(key: str) -> list[float]:
            out = _loop(exe["seccomp_loop"], key.split("#")[0], iters, cpu)
            series[key][1].samples.append(out["openclose_ns"])
            return [out["getppid_ns"]]

        interleave(
            [(series[k][0], (lambda k=k: batch(k))) for k in names],
            rounds,
        )
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    allow_g, allow_o = series[str(tmp / "allow.bpf")]
    rows = []
    for key, name in names.items():
        g, o = series[key]
        rows.append(
            (
                name,
                g.median,
                1 + paired_pct(g, allow_g) / 100,
                o.median,
                1 + paired_pct(o, allow_o) / 100,
            )
        )
    print(
        table(
            ("filter", "getppid ns", "x allow-all*", "open+close ns", "x allow-all*"),
            rows,
        )
    )
    g2, o2 = series[str(tmp / "allow.bpf") + "#2"]
    noise_g, noise_o = paired_pct(g2, allow_g), paired_pct(o2, allow_o)
    print(
        f"noise: allow-all vs allow-all: getppid {noise_g:+.1f}%, open+close {noise_o:+.1f}%; "
        f"{rounds} processes per filter; *: medians of per-round ratios (as the target)"
    )
    cached = ", ".join(
        f"{name} {'yes' if kernel_cached(art.bpf, nr) else 'NO (filter runs at each call)'}"
        for name, nr in LOOP_SYSCALLS.items()
    )
    print(f"kernel action cache (constant allow) under strict: {cached}")
    from sandbox.seccomp.tables import table as syscalls

    nrs = syscalls("x86_64")
    runs_for = [
        n
        for n in sorted(art.allowed)
        if (nr := nrs.nr(n)) is not None and not kernel_cached(art.bpf, nr)
    ]
    print(
        f"allowed syscalls the filter still runs for (argument rules): {', '.join(runs_for)}; "
        "every other allowed call costs the same as under allow-all"
    )
    sg, so = series[str(tmp / "strict.bpf")]
    gp, oc = paired_pct(sg, allow_g), paired_pct(so, allow_o)
    results["seccomp"] = {
        name: {"getppid_ns": series[k][0].median, "openclose_ns": series[k][1].median}
        for k, name in names.items()
    }
    # The target bounds what the filter costs: a strict loop faster than allow-all
    # is not a miss, but faster by more than 3% plus the noise means this run's
    # noise is larger than it measured (no filter makes a syscall cheaper).
    within = gp <= 3 and oc <= 3
    too_noisy = min(gp + abs(noise_g), oc + abs(noise_o)) < -3
    # Outside 3% but no further from allow-all than allow-all is from itself
    # (plus the 3%): this run cannot tell, say so rather than fail or pass.
    undecided = too_noisy or (not within and gp <= 3 + abs(noise_g) and oc <= 3 + abs(noise_o))
    why = "faster than allow-all beyond the noise: run again" if too_noisy else "within noise"
    if not undecided:
        why = "n/a"
    targets.append(
        Target(
            "seccomp strict vs allow-all",
            "within 3%",
            f"getppid {gp:+.1f}%, open+close {oc:+.1f}%",
            None if undecided else within,
            f"noise {noise_g:+.1f}% / {noise_o:+.1f}%",
            why,
        )
    )

"""Reference model: what a filter built from a spec must return, computed without libseccomp.

Pure; runs in the supervisor (``verify.simulate``) and in the tests. It reads
the spec and the repository's syscall tables and nothing else, so a
mistake in libseccomp, in our use of it or in the bytes handed to the kernel
shows up as a disagreement with the interpreter instead of being reproduced.

ABI handling (``tables`` explains the three x86 ABIs):

- a filter is built for one target ABI; any other ``seccomp_data.arch``
  gets the bad-arch action (USER_NOTIF: the supervisor records and kills);
- on an x86_64 filter, numbers with the x32 bit are another ABI and get the
  bad-arch action too, except ``-1`` (``0xffffffff``: a tracer skipping the
  syscall), which is just an unknown number;
- on an x32 filter, numbers below the bit are the foreign ABI (numbers at
  or above it are x32's, known or not: the split libseccomp makes too);
- an unknown number on the right ABI gets the default action;
- on i386, ``socketcall(N)`` and ``ipc(N)`` are the multiplexed forms of the
  socket and SysV IPC calls and get the treatment of call ``N`` (the builder
  refuses specs where that cannot be expressed: argument rules on those
  calls, or naming the multiplexers themselves).
"""

from __future__ import annotations

from collections.abc import Sequence

from sandbox.seccomp.actions import SECCOMP_RET_ALLOW, SECCOMP_RET_LOG, errno_ret
from sandbox.seccomp.spec import SeccompSpec
from sandbox.seccomp.tables import I386_MULTIPLEXED, X32_SYSCALL_BIT, arch_info, table

_U32 = 0xFFFFFFFF


def syscall_ret(spec: SeccompSpec, name: str, args: Sequence[int], word_bits: int = 64) -> int:
    """The return value for syscall ``name`` with ``args`` (spec precedence)."""
    if name in spec.deny:
        return spec.deny_ret
    number = spec.errno_of(name)
    if number is not None:
        return errno_ret(number)
    rule = spec.rule_for(name)
    if rule is not None:
        return spec.outcome_ret(rule.outcome(args, word_bits))
    if name in spec.allow:
        return SECCOMP_RET_ALLOW
    return spec.default_ret


def expected(spec: SeccompSpec, target: str, arch: int, nr: int, args: Sequence[int] = ()) -> int:
    """What a filter for ABI ``target`` must return for this ``seccomp_data``.

    Raises:
        KeyError: for a target ABI we keep no table for.
    """
    info = arch_info(target)
    nr &= _U32
    if arch & _U32 != info.audit_arch:
        return spec.bad_arch_ret
    if info.nr_bit and nr < info.nr_bit:
        return spec.bad_arch_ret
    if target == "x86_64" and X32_SYSCALL_BIT <= nr < _U32:
        return spec.bad_arch_ret
    name = table(target).name(nr)
    if name is None:
        return spec.default_ret
    if target == "i386" and name in ("socketcall", "ipc"):
        call = (args[0] if args else 0) & _U32
        for member, mux in I386_MULTIPLEXED.items():
            if mux == (name, call):
                return syscall_ret(spec, member, (), info.word_bits)
    return syscall_ret(spec, name, args, info.word_bits)


def runnable(spec: SeccompSpec, target: str) -> frozenset[str]:
    """Syscalls of ``target`` that run (ALLOW or LOG) for at least some arguments."""
    runs = {SECCOMP_RET_ALLOW, SECCOMP_RET_LOG}
    out = set()
    for name in table(target).by_name:
        rule = spec.rule_for(name)
        if rule is not None and name not in spec.deny and spec.errno_of(name) is None:
            rets = {spec.outcome_ret(rule.match), spec.outcome_ret(rule.otherwise)}
        else:
            rets = {syscall_ret(spec, name, ())}
        if rets & runs:
            out.add(name)
    if target == "i386":
        out |= {mux for m, (mux, _) in I386_MULTIPLEXED.items() if syscall_ret(spec, m, ()) in runs}
    return frozenset(out)

"""The attack matrix: run one attack with every combination that shows which layers stop it.

An attack names the layers that stop it *each on its own* (its stoppers),
with the exit status the probe reports when that layer alone stands (an
errno, or 159 for a seccomp kill). It then runs:

- ``all-on``: nothing switched off; the attack fails;
- ``only-L`` for each stopper L: every other stopper switched off through
  ``--test-ablate``; the attack still fails, with L's status, so L alone
  suffices (with a single stopper this is the same run as ``all-on``);
- ``all-off``: every stopper switched off; the attack must succeed. Without
  this half a test proves nothing: file modes, the user namespace or nodev
  could be what stops it.

Each run's record is checked too: the ablated layers say ``off`` (ablated),
the stoppers left on say ``full``.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from sbxtest import CliResult, run_cli

# "Seccomp stopped it": strict's filter hands a denied native syscall to the
# supervisor, which records a SECURITY_VIOLATION and kills the run (SIGKILL);
# foreign-ABI calls are killed by the filter itself (SIGSYS). Both count as this.
KILLED = 128 + signal.SIGSYS
LAYERS = ("namespaces", "overlay", "capabilities", "no_new_privs", "landlock", "seccomp", "cgroups")
KNOBS = (
    "nosuid",
    "rlimit_nproc",
    "proc_masks",
)  # test-only knobs that are not layers of the record
E = errno  # short alias for the stopper tables


def matrix(*stoppers: str) -> Callable[[Any], Any]:
    """Parametrize a test's ``ablate`` over the runs described above.

    A Landlock stopper needs Landlock on the host (finer ABI needs are marked
    on the tests themselves).
    """
    full = frozenset(stoppers)
    cases = [pytest.param(frozenset(), id="all-on")]
    if len(stoppers) > 1:
        cases += [pytest.param(full - {s}, id=f"only-{s}") for s in stoppers]
    cases.append(pytest.param(full, id="all-off"))

    def mark(test: Any) -> Any:
        test = pytest.mark.parametrize("ablate", cases)(test)
        if "landlock" in full:
            test = pytest.mark.requires("landlock>=1")(test)
        return test

    return mark


def attack(
    probe: Path | str,
    args: Iterable[str],
    ablate: frozenset[str],
    tmp: Path,
    *,
    options: Iterable[str] = (),
    stdin: int | None = None,
) -> CliResult:
    """``sandbox exec [--test-ablate X]... OPTIONS -- PROBE ARGS`` under strict (or --profile)."""
    opts = list(options)
    if "--profile" not in opts:
        opts = ["--profile", "strict", *opts]
    for layer in sorted(ablate):
        opts += ["--test-ablate", layer]
    return run_cli(["exec", *opts, "--", str(probe), *args], tmp=tmp, stdin=stdin)


def judge(r: CliResult, ablate: frozenset[str], stoppers: dict[str, int]) -> bool:
    """Assert the outcome the matrix predicts; True when the attack must have worked."""
    assert r.record is not None, f"no run record (status {r.rc}): {r.err}"
    states = r.record["enforcement"]
    for layer in ablate:
        if layer in LAYERS:
            assert states[layer]["state"] == "off", (layer, states[layer])
            assert "ablated" in states[layer]["detail"], (layer, states[layer])
        else:
            assert any(f"--test-ablate {layer}" in n for n in r.record["notes"]), r.record["notes"]
    standing = [s for s in stoppers if s not in ablate]
    for layer in standing:
        if layer in LAYERS:
            assert states[layer]["state"] == "full", (layer, states[layer])
    if not standing:
        assert r.rc == 0, f"the attack failed with every stopper off (status {r.rc}): {r.err}"
        return True
    expected = {stoppers[s] for s in standing}
    status = KILLED if r.record.get("verdict") == "SECURITY_VIOLATION" else r.rc
    assert status in expected, (
        f"status {r.rc} ({_name(status)}), expected {sorted(_name(x) for x in expected)} "
        f"with {standing} on: {r.err}"
    )
    return False


def _name(status: int) -> str:
    if status == KILLED:
        return "seccomp kill / violation"
    return errno.errorcode.get(status, str(status))

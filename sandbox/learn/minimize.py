"""Minimisation: drop the rules no input needs (pure; the runs come in as a callback).

A rule is kept only when some input's exit status or output changes without
it. The search removes chunks of rules and re-runs every input under the
profile without them (``same``): a chunk whose removal changes nothing is
dropped and the next chunk is twice as large; when a removal changes
something, the chunk is halved and tried again at the same place, down to a
single rule, which is then kept. So a list of rules that are all needed
costs one trial per rule (what "one at a time" costs), and long runs of
unneeded rules go by bisection in a logarithmic number of trials. The result
is 1-minimal for the order given: removing any single kept rule changes some
input's behaviour, as observed in these runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sandbox.learn.rules import Unit

MAX_CHUNK = 16


@dataclass
class Minimized:
    """What minimisation kept and removed, and what it cost."""

    kept: list[Unit]
    removed: list[Unit] = field(default_factory=list)
    trials: int = 0  # candidate profiles tried
    runs: int = 0  # program runs (a trial stops at the first input that differs)


def minimize(
    units: Sequence[Unit], same: Callable[[frozenset[Unit]], tuple[bool, int]]
) -> Minimized:
    """Drop every unit whose removal leaves all inputs' behaviour unchanged.

    Args:
        units: the rules, in the order to try them.
        same: runs every input under a profile granting exactly the given units;
            returns (behaviour identical to the learning runs, program runs used).
    """
    result = Minimized(kept=list(units))
    i, size = 0, 1
    while i < len(result.kept):
        chunk = result.kept[i : i + size]
        candidate = result.kept[:i] + result.kept[i + size :]
        identical, runs = same(frozenset(candidate))
        result.trials += 1
        result.runs += runs
        if identical:
            result.removed += chunk
            result.kept = candidate
            size = min(size * 2, MAX_CHUNK)
        elif size > 1:
            size //= 2
        else:
            i += 1
    return result


__all__ = ["MAX_CHUNK", "Minimized", "minimize"]

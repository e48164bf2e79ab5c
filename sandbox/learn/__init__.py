"""``sandbox learn``: learn a per-program profile from what a program does.

Public API::

    from sandbox.learn import LearnOptions, SupervisorRunner, learn
    runner = SupervisorRunner(["/bin/cat", "/etc/hostname"])
    result = learn(LearnOptions(argv=("/bin/cat", "/etc/hostname"), minimize=True,
                                name="cat"), runner, runner.host)
    Path("cat.toml").write_text(result.text)   # result.ok: complete, verified, identical

Modules: ``record`` (what was seen), ``decode`` (a syscall's paths and
addresses), ``capinfer`` (capabilities from EPERM), ``observe`` (the
notification handler), ``rules`` (units, path collapsing), ``generate`` (the
TOML), ``minimize``, ``checks`` (verification), ``runs`` (running the program
once), ``result`` (options, result, report), ``session`` (the sequence).
"""

from sandbox.learn.generate import units_of
from sandbox.learn.result import LearnOptions, LearnResult, report
from sandbox.learn.rules import Unit
from sandbox.learn.runs import Outcome, Runner, SupervisorRunner
from sandbox.learn.session import learn

__all__ = [
    "LearnOptions",
    "LearnResult",
    "Outcome",
    "Runner",
    "SupervisorRunner",
    "Unit",
    "learn",
    "report",
    "units_of",
]

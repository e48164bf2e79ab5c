"""The judge profiles: after the payload's first execve, nothing else runs.

Landlock grants execute on the program and its ELF loader only; a shell, or a
binary the payload writes into /box, is refused with EACCES, and runs with
Landlock switched off. (Running the loader itself on another file is refused
by AppArmor, not Landlock: tests/guest/test_judge_guest.py.)
"""

from __future__ import annotations

import pytest
from escape_kit import E, attack, judge, matrix

pytestmark = [pytest.mark.requires("root", "gcc"), pytest.mark.usefixtures("no_leftovers")]


@pytest.mark.parametrize("profile", ["judge", "judge-python", "judge-java"])
@pytest.mark.parametrize("what", ["exec-sh", "exec-copy"])
@matrix("landlock")
def test_no_exec_after_the_first(probes, tmp_path, ablate, what, profile):
    r = attack(probes["judgeexec"], [what], ablate, tmp_path, options=["--profile", profile])
    judge(r, ablate, {"landlock": E.EACCES})


def test_the_running_program_cannot_be_rewritten(probes, tmp_path):
    """Else it could rewrite its own (executable) inode and exec it again."""
    r = attack(
        probes["judgeexec"], ["rewrite-self"], frozenset(), tmp_path, options=["--profile", "judge"]
    )
    assert r.rc in (E.EACCES, E.ETXTBSY), r.err

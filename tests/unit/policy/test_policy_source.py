"""policy.source: where a key or name stands in a profile file (one ``locate`` for all)."""

from __future__ import annotations

from pathlib import Path

from sandbox.policy.source import locate


def test_locate_skips_comments_but_not_hashes_in_strings(tmp_path: Path) -> None:
    """The copy seccomp.groups had matched a name in a comment; the shared one does not."""
    p = tmp_path / "p.toml"
    p.write_text('# "getppid" was here\n[seccomp]\nallow = ["a#b", "getppid"]  # "x"\n')
    assert locate(str(p), "getppid") == f"{p}:3"
    assert locate(str(p), "x") == str(p)
    assert locate(str(p), "a#b") == f"{p}:3"

"""Extending path lists is the obvious way, replacing is explicit (issue 15 item 4);
a loaded profile takes a caller's overrides instead of dropping them (item 3); the
names the README uses resolve (item 15)."""

from __future__ import annotations

import pytest

from sandbox.errors import PolicyError
from sandbox.policy.load import load_profile, with_overrides

DEFAULT_READ = ["/usr", "/etc", "/box", "/tmp", "/dev", "/proc"]


def test_an_override_adding_a_read_path_keeps_the_defaults():
    p = load_profile("strict", {"filesystem": {"read_paths": ["/data"]}}).policy
    assert p.filesystem.read_paths == [*DEFAULT_READ, "/data"]
    assert p.filesystem.exec_paths == ["/usr", "/box"]


def test_a_profile_without_extends_extends_the_default_lists(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('[filesystem]\nexec_paths = ["/opt/tools"]\nread_paths = ["/opt/tools"]\n')
    p = load_profile(str(f)).policy
    assert p.filesystem.exec_paths == ["/usr", "/box", "/opt/tools"]
    assert p.filesystem.read_paths == [*DEFAULT_READ, "/opt/tools"]
    assert p.filesystem.writable == ["/box", "/tmp"]


def test_replacing_is_explicit_in_a_profile_and_in_overrides(tmp_path):
    f = tmp_path / "narrow.toml"
    f.write_text('replace = ["filesystem.read_paths"]\n[filesystem]\nread_paths = ["/usr"]\n')
    assert load_profile(str(f)).policy.filesystem.read_paths == ["/usr"]
    over = {"replace": ["filesystem.exec_paths"], "filesystem": {"exec_paths": ["/box"]}}
    assert load_profile("strict", over).policy.filesystem.exec_paths == ["/box"]


def test_overrides_cannot_replace_a_deny_list():
    with pytest.raises(PolicyError, match="deny lists accumulate"):
        load_profile("strict", {"replace": ["seccomp.deny"], "seccomp": {"deny": []}})


def test_a_loaded_profile_takes_limits_and_env():
    base = load_profile("strict")
    got = with_overrides(base, {"limits": {"cpu_time": 0.5}, "env": {"vars": {"K": "v"}}})
    assert got.policy.limits.cpu_time == 0.5
    assert got.policy.limits.memory == base.policy.limits.memory
    assert got.policy.env.vars == {"K": "v"}
    assert got.digest != base.digest
    assert with_overrides(base, {}) is base


def test_a_loaded_profile_refuses_a_bad_override_instead_of_dropping_it():
    with pytest.raises(PolicyError, match="cpu_time"):
        with_overrides(load_profile("strict"), {"limits": {"cpu_time": -1}})


@pytest.mark.parametrize("name", ["learned/sh", "learned/python3", "strict", "interp"])
def test_shipped_names_resolve(name):
    prof = load_profile(name)
    assert prof.source.endswith(f"profiles/{name}.toml")


def test_a_bad_or_missing_name_is_a_one_line_error():
    with pytest.raises(PolicyError, match="not found"):
        load_profile("learned/nothing")
    with pytest.raises(PolicyError, match="bad profile name"):
        load_profile("no such")


def test_schema_md_names_every_key_of_every_table_and_array_of_tables():
    """Issue 15 item 15: SCHEMA.md left out the keys of binds, tmpfs and seccomp rules."""
    import typing
    from pathlib import Path

    from pydantic import BaseModel

    from sandbox.policy.model import Policy

    text = (Path(__file__).resolve().parents[3] / "profiles" / "SCHEMA.md").read_text()
    sections = {s.split("`")[1]: s for s in text.split("\n## ")[1:]}
    todo: list[tuple[type[BaseModel], str]] = [(Policy, "(top level)")]
    while todo:
        model, key = todo.pop()
        assert key in sections, key
        for name, f in model.model_fields.items():
            assert f"| `{name}` |" in sections[key], (key, name)
            where = name if key == "(top level)" else f"{key.strip('[]')}.{name}"
            tp = f.annotation
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                todo.append((tp, f"[{where}]"))
            elif typing.get_origin(tp) is list:
                (item,) = typing.get_args(tp)
                if isinstance(item, type) and issubclass(item, BaseModel):
                    todo.append((item, f"[[{where}]]"))
    for key in ("[[filesystem.binds]]", "[[filesystem.tmpfs]]", "[[seccomp.rules]]"):
        assert key in sections

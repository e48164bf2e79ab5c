"""Units, path collapsing, profile text and its round trip, minimisation (pure)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from sandbox.learn.generate import Meta, comment, render, toml_string, units_of
from sandbox.learn.minimize import minimize
from sandbox.learn.record import Record
from sandbox.learn.rules import Unit, anchor, collapse, derive, rule_for
from sandbox.policy.load import load_profile


def test_unit_labels_round_trip():
    for u in (Unit("syscall", "openat"), Unit("value", "ioctl", 0x5401), Unit("read", "/a b")):
        assert Unit.parse(u.label()) == u
    with pytest.raises(ValueError):
        Unit.parse("grant everything")


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/etc/hostname", "/etc/hostname"),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ("/usr/lib/python3.11/encodings/utf_8.py", "/usr/lib/python3.11"),
        ("/usr/lib/locale/C.utf8/LC_CTYPE", "/usr/lib/locale"),
        ("/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo"),
        ("/opt/app/lib/x.so", "/opt/app"),
    ],
)
def test_anchor_never_a_shared_tree(path: str, want: str):
    assert anchor(path) == want


def record_with(files: dict[str, set[str]]) -> Record:
    rec = Record()
    for path, accesses in files.items():
        for a in accesses:
            rec.file(path, a, 1, via="openat")  # type: ignore[arg-type]
    return rec


def test_collapse_groups_trees_keeps_files_and_drops_covered():
    py = "/usr/lib/python3.11"
    rec = record_with(
        {
            "/etc/hostname": {"read"},
            "/etc/passwd": {"missing"},
            f"{py}/os.py": {"read"},
            f"{py}/abc.py": {"read"},
            f"{py}/encodings/utf_8.py": {"read"},
            f"{py}/lib-dynload": {"list"},
            "/usr/bin/python3.11": {"exec"},
            "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13": {"read", "map_exec"},
            "/box/script.py": {"read", "write"},
            "/box/a.out": {"exec"},
            "/proc/7/status": {"read"},
            "/dev/null": {"read", "write"},
            "/usr/bin": {"list"},
            "/etc/shadow-ish": {"write"},
        }
    )
    units, notes = collapse(rec, ["/box", "/tmp"])
    assert set(units) == {
        Unit("read", "/etc/hostname"),
        Unit("read", py),
        Unit("exec", "/usr/bin/python3.11"),
        Unit("exec", "/box/a.out"),
        Unit("exec", "/usr/lib/x86_64-linux-gnu/libz.so.1.*"),  # any minor version
        Unit("read", "/proc"),
        Unit("list", "/usr/bin"),
    }
    assert any("writable trees" in n for n in notes)
    assert any("1 paths written" in n and "/etc/shadow-ish" in n for n in notes)


def test_two_files_stay_files():
    rec = record_with({"/usr/share/x/a": {"read"}, "/usr/share/x/b": {"read"}})
    units, _ = collapse(rec, [])
    assert units.keys() == {Unit("read", "/usr/share/x/a"), Unit("read", "/usr/share/x/b")}


def test_derive_units_for_syscalls_values_and_errno():
    rec = Record()
    rec.syscall("read", 1, "allowed")  # the launcher's: fixed, not a unit
    rec.syscall("getpid", 1, "allowed")
    rec.syscall("splice", 2, "beyond")
    rec.syscall("clone3", 1, "errno", 38)
    rec.syscall("ioctl", 1, "allowed")
    rec.value("ioctl", 1, 0x5401)
    d = derive(rec, "strict", ["/box"], {"CAP_CHOWN": "inferred"})
    assert d.units == [
        Unit("value", "ioctl", 0x5401),
        Unit("cap", "CAP_CHOWN"),
        Unit("syscall", "getpid"),
        Unit("syscall", "splice"),
    ]
    assert "not allowed by strict" in d.why[Unit("syscall", "splice")]
    assert d.errno == {"clone3": ("ENOSYS", "answered ENOSYS by strict (run 1)")}
    assert d.otherwise == {"ioctl": "ENOTTY"}


def test_rule_falls_back_to_default_when_the_errno_cover_is_too_big():
    assert rule_for("ioctl", [0x5401], "ENOTTY") == ("allow", "ENOTTY")
    many = [0x10000 * i + 0x5401 for i in range(40)]
    assert rule_for("ioctl", many, "ENOTTY") == ("allow", "default")
    assert rule_for("ioctl", [], "ENOTTY") is None


def sample() -> tuple[object, list[Unit]]:
    rec = Record()
    for name in ("getpid", "exit_group", "execve"):
        rec.syscall(name, 1, "allowed")
    rec.syscall("openat", 1, "allowed")  # tracked: its mode's set-id bits
    rec.value("openat", 1, 0)
    rec.syscall("clone3", 1, "errno", 38)
    rec.syscall("ioctl", 1, "allowed")
    rec.value("ioctl", 1, 0x5401)
    rec.syscall("clone", 1, "allowed")
    rec.value("clone", 1, 0x01200011)
    rec.file("/etc/hostname", "read", 1, via="openat")
    rec.file("/usr/bin/cat", "exec", 1, asked="/bin/cat", via="execve")
    d = derive(rec, "strict", ["/box", "/tmp"])
    return d, d.units


def meta(**kw: object) -> Meta:
    args: dict[str, object] = {"command": ("/bin/cat",)} | kw
    return Meta(name="t", extends="strict", base_name="strict", **args)  # type: ignore[arg-type]


def test_rendered_profile_loads_and_round_trips(tmp_path: Path):
    d, units = sample()
    removed = (Unit("read", "/etc/ld.so.cache"),)
    text = render(d, units, meta(removed=removed, minimize_runs=7))  # type: ignore[arg-type]
    path = tmp_path / "t.toml"
    path.write_text(text)
    pol = load_profile(str(path)).policy
    assert pol.seccomp.groups == [] and "ptrace" in pol.seccomp.deny
    assert set(pol.seccomp.allow) == {"read", "write", "getpid", "exit_group", "execve"}
    assert pol.seccomp.errno == {"clone3": "ENOSYS"}
    assert {r.syscall for r in pol.seccomp.rules} == {"clone", "ioctl", "openat"}
    (opens,) = [r for r in pol.seccomp.rules if r.syscall == "openat"]
    assert (opens.arg, opens.mask, opens.values, opens.otherwise) == (3, 0o6000, [0], "EPERM")
    assert pol.filesystem.read_paths == ["/etc/hostname"]
    assert pol.filesystem.exec_paths == ["/usr/bin/cat"]
    assert pol.limits.memory == 256 << 20  # the rest comes from strict
    granted, gone = units_of(text)
    assert granted - {Unit("syscall", "read"), Unit("syscall", "write")} == set(units)
    assert gone == set(removed)


def test_a_dropped_value_set_becomes_an_errno_answer():
    d, units = sample()
    kept = [u for u in units if u.kind != "value" or u.key != "ioctl"]
    raw = tomllib.loads(render(d, kept, meta()))  # type: ignore[arg-type]
    assert raw["seccomp"]["errno"]["ioctl"] == "ENOTTY"
    assert [r["syscall"] for r in raw["seccomp"]["rules"]] == ["clone", "openat"]


def test_hostile_strings_cannot_add_lines(tmp_path: Path):
    rec = Record()
    evil = '/box/x\n[capabilities]\nkeep = ["CAP_SYS_ADMIN"]\n#'
    rec.file('/opt/q"uote\n[x]', "read", 1, asked=evil, via="openat")
    rec.syscall("openat", 1, "allowed")
    d = derive(rec, "strict", [])
    text = render(d, d.units, meta(command=("/bin/cat", evil)))
    raw = tomllib.loads(text)
    assert raw["capabilities"]["keep"] == []
    assert raw["filesystem"]["read_paths"] == ['/opt/q"uote\n[x]']
    assert "\n" not in comment("a\nb") and toml_string("\x7f") == '"\\u007f"'


def test_minimize_keeps_exactly_what_is_needed():
    units = [Unit("syscall", f"s{i}") for i in range(20)]
    needed = {units[3], units[4], units[17]}

    def same(cand: frozenset[Unit]) -> tuple[bool, int]:
        return needed <= cand, 2

    m = minimize(units, same)
    assert set(m.kept) == needed
    assert set(m.removed) == set(units) - needed
    assert m.runs == 2 * m.trials and m.trials < 2 * len(units)


def test_minimize_all_needed_costs_one_trial_each():
    units = [Unit("read", f"/f{i}") for i in range(10)]
    m = minimize(units, lambda cand: (len(cand) == len(units), 1))
    assert m.kept == units and m.trials == len(units)


def test_minimize_all_removable_goes_by_bisection():
    units = [Unit("read", f"/f{i}") for i in range(64)]
    m = minimize(units, lambda cand: (True, 1))
    assert m.kept == [] and m.trials <= 8


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/usr/lib/x86_64-linux-gnu/libz.so.1.2.13", "/usr/lib/x86_64-linux-gnu/libz.so.1.*"),
        (
            "/usr/lib/x86_64-linux-gnu/libexpat.so.1.8.10",
            "/usr/lib/x86_64-linux-gnu/libexpat.so.1.*",
        ),
        ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
        ("/usr/bin/python3.11", "/usr/bin/python3.11"),
        ("/box/data.so.1.2", "/box/data.so.1.2"),  # not lib*.so.N.M
    ],
)
def test_version_glob(path: str, want: str):
    from sandbox.learn.rules import version_glob

    assert version_glob(path) == want


def test_programs_copied_into_writable_trees_keep_their_exec_rule():
    units, _ = collapse(record_with({"/box/a.out": {"exec"}, "/box/in.txt": {"read"}}), ["/box"])
    assert set(units) == {Unit("exec", "/box/a.out")}

"""Rendering of the per-program AppArmor profile (pure; no AppArmor needed).

The compile checks run the installed ``apparmor_parser -Q`` against the ABI
file, which works on hosts whose kernel has no AppArmor.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.apparmor import parser
from sandbox.apparmor.parser import ParserFeatures
from sandbox.apparmor.render import NAME_RE, check_extra_rule, prepare, quote_path
from sandbox.errors import ArtifactError
from sandbox.policy.load import policy_digest
from sandbox.policy.model import Policy

AA3 = ParserFeatures(version=(3, 0, 8), abi="3.0", rules=frozenset())
AA4 = ParserFeatures(version=(4, 0, 1), abi="4.0", rules=frozenset({"userns", "io_uring"}))
HAS_PARSER = shutil.which("apparmor_parser") is not None
needs_parser = pytest.mark.skipif(not HAS_PARSER, reason="apparmor_parser not installed")


def policy(**kw: Any) -> Policy:
    return Policy.model_validate({"name": "t", **kw})


def render(p: Policy | None = None, features: ParserFeatures = AA3, **kw: Any):
    args = {"program": "/box/prog", "interpreter": None} | kw
    return prepare(p or policy(), parser_features=features, **args)


def rules(text: str) -> list[str]:
    """Rule lines of the profile body, comments and blank lines dropped."""
    body = text[text.index("{") + 1 : text.rindex("}")]
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]


# --- header, name, key -------------------------------------------------------


def test_header_carries_policy_digest_and_do_not_edit() -> None:
    p = policy()
    head = render(p).text.splitlines()[:4]
    assert "do not edit" in head[0] and "Generated" in head[0]
    assert f"sha256:{policy_digest(p)}" in head[1]
    assert any("'/box/prog'" in ln for ln in head)


def test_text_starts_with_the_abi_and_names_the_profile() -> None:
    art = render()
    assert NAME_RE.match(art.name)
    assert "abi <abi/3.0>," in art.text
    assert f"profile {art.name} {{" in art.text
    assert f"signal (send, receive) peer={art.name}," in art.text
    assert "@@" not in art.text


def test_name_is_the_hash_of_the_text_without_header_and_name() -> None:
    art = render()
    body = art.text[art.text.index("abi <abi/") :].replace(art.name, "@@PROFILE_NAME@@")
    assert art.key == hashlib.sha256(body.encode()).hexdigest()
    assert art.name == "sbx_" + art.key[:32]


@pytest.mark.parametrize(
    "change",
    [
        {"filesystem": {"read_paths": ["/usr", "/etc"]}},
        {"filesystem": {"writable": ["/box"]}},
        {"filesystem": {"exec_paths": ["/usr"]}},
        {"capabilities": {"keep": ["CAP_CHOWN"]}},
        {"network": {"mode": "none"}},
        {"namespaces": {"nested_userns": True}},
        {"apparmor": {"extra_rules": ["/opt/x r,"]}},
    ],
)
def test_a_change_the_profile_sees_gives_a_new_name(change: dict[str, Any]) -> None:
    assert render(policy(**change)).name != render().name


def test_program_and_interpreter_are_part_of_the_name() -> None:
    base = render().name
    assert render(program="/box/other").name != base
    assert render(interpreter="/usr/bin/python3.11").name != base


def test_a_change_outside_apparmor_shares_the_profile_but_not_the_header() -> None:
    # Limits and seccomp do not change the rules: one loaded profile serves both.
    a = render(policy())
    b = render(policy(limits={"memory": "64M"}, seccomp={"allow": ["read"]}))
    assert a.name == b.name and a.key == b.key
    assert a.text != b.text  # the header names each policy's digest


def test_rendering_is_deterministic_under_list_order() -> None:
    a = policy(filesystem={"read_paths": ["/usr", "/etc", "/proc"]})
    b = policy(filesystem={"read_paths": ["/proc", "/usr", "/etc", "/usr"]})
    assert render(a).name == render(b).name


# --- what the rules grant ----------------------------------------------------

EXEC_MODE = re.compile(r"\b[a-zA-Z]*x\b")


def _exec_modes(text: str) -> set[str]:
    modes = set()
    for rule in rules(text):
        if rule.startswith(("deny ", "signal", "network", "capability")):
            continue
        perms = rule.rsplit(None, 1)[-1].rstrip(",")
        if "x" in perms:
            modes.add(perms)
    return modes


def test_exec_is_only_ix_and_never_ux_px_cx() -> None:
    text = render(
        policy(apparmor={"extra_rules": ["/opt/tool rix,"]}), interpreter="/usr/bin/sh"
    ).text
    for perms in _exec_modes(text):
        assert "ix" in perms and perms.count("x") == 1, perms
        assert not set(perms) & set("uUpPcC"), perms
    assert not re.search(r"\b[uUpPcC]i?x\b", text)


def test_program_interpreter_and_exec_trees_are_executable() -> None:
    r = rules(render(interpreter="/usr/bin/python3.11").text)
    assert '"/box/prog" mrix,' in r
    assert '"/usr/bin/python3.11" mrix,' in r
    assert '"/usr{,/**}" mix,' in r and '"/box{,/**}" mix,' in r


def test_exec_paths_are_readable_too_as_under_landlock() -> None:
    r = rules(render(policy(filesystem={"read_paths": [], "exec_paths": ["/opt/tools"]})).text)
    assert '"/opt/tools{,/,/**}" r,' in r and '"/opt/tools{,/**}" mix,' in r


def test_write_only_on_writable_trees() -> None:
    r = rules(render(policy(filesystem={"writable": ["/box"]})).text)
    writers = [x for x in r if not x.startswith("deny") and re.search(r" [a-z]*w[a-z]*,$", x)]
    assert writers == [
        '"/box{,/,/**}" rwlk,',
        '"/dev/null" rw,',
        '"/dev/zero" rw,',
        '"/dev/full" rw,',
    ]


def test_binds_and_tmpfs_get_what_landlock_grants_them() -> None:
    fs = {
        "binds": [
            {"source": "/srv/a", "target": "/data"},
            {"source": "/srv/b", "target": "/out", "writable": True, "exec": False},
        ],
        "tmpfs": [{"target": "/scratch"}],
    }
    r = rules(render(policy(filesystem=fs)).text)
    assert '"/data{,/,/**}" r,' in r and '"/data{,/**}" mix,' in r
    assert '"/out{,/,/**}" rwlk,' in r and not any(x.startswith('"/out') and "x" in x for x in r)
    assert '"/scratch{,/,/**}" rwlk,' in r


def test_read_paths_cover_files_and_trees() -> None:
    r = rules(render(policy(filesystem={"read_paths": ["/etc/passwd", "/"]})).text)
    assert '"/etc/passwd{,/,/**}" r,' in r
    assert '"/{,**}" r,' in r


def test_no_capability_by_default_and_kept_ones_listed() -> None:
    assert "deny capability," in rules(render().text)
    r = rules(
        render(
            policy(capabilities={"keep": ["chown", "CAP_SETUID", "kill"], "deny": ["kill"]})
        ).text
    )
    assert "capability chown setuid," in r
    assert "deny capability," not in r


def test_unknown_capability_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="unknown capability 'CAP_FLY'"):
        render(policy(capabilities={"keep": ["CAP_FLY"]}))


def test_network_none_denies_every_socket_and_loopback_allows_unix_and_inet() -> None:
    assert "deny network," in rules(render(policy(network={"mode": "none"})).text)
    r = rules(render(policy(network={"mode": "loopback"})).text)
    assert {"network unix,", "network inet stream,", "network inet6 dgram,"} <= set(r)
    assert {"deny network raw,", "deny network packet,"} <= set(r)
    assert "network," not in r


def test_always_denied() -> None:
    r = set(rules(render().text))
    assert {
        "deny ptrace,",
        "deny mount,",
        "deny umount,",
        "deny pivot_root,",
        "deny change_profile,",
    } <= r
    assert "signal (receive) peer=unconfined," in r


# --- rules the parser does not know --------------------------------------------


def test_aa4_rules_are_left_out_with_a_reason_on_an_aa3_parser() -> None:
    art = render(features=AA3)
    assert not any("userns" in r or "io_uring" in r for r in rules(art.text))
    assert len(art.skipped_rules) == 2
    userns = next(s for s in art.skipped_rules if "userns" in s)
    assert userns.startswith("deny userns, (") and "3.0.8" in userns and "AppArmor 4" in userns
    assert "# left out: deny userns," in art.text


def test_aa4_rules_are_emitted_when_the_parser_knows_them() -> None:
    art = render(features=AA4)
    assert art.skipped_rules == ()
    assert {"deny userns,", "deny io_uring,"} <= set(rules(art.text))
    assert "abi <abi/4.0>," in art.text
    assert "userns," in rules(render(policy(namespaces={"nested_userns": True}), AA4).text)


# --- paths and extra rules -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "quoted"),
    [
        ("/box/a b", '"/box/a b"'),
        ("/x/a*b?[c]", r'"/x/a\*b\?\[c\]"'),
        ("/x/{a,b}", r'"/x/\{a\,b\}"'),
        ('/x/"q"#@=^\\y', r'"/x/\"q\"\#\@\=\^\\y"'),
        # A trailing backslash becomes a class: the parser's lexer would read
        # the closing quote as escaped.
        ("/x/y\\", r'"/x/y[\\]"'),
    ],
)
def test_quote_path_escapes_every_glob_and_syntax_character(path: str, quoted: str) -> None:
    assert quote_path(path) == quoted


@pytest.mark.parametrize("bad", ["relative/prog", "/box/new\nline", "/box/\x7f", ""])
def test_bad_program_paths_are_refused(bad: str) -> None:
    with pytest.raises(ArtifactError):
        render(program=bad)


@pytest.mark.parametrize(
    "rule",
    [
        "/opt/data r,",
        "/opt/data/** rwk",
        "owner /home/x/** rw,",
        "rw /srv/x,",
        "/opt/tool ix,",
        "deny /etc/shadow r,",
        "audit deny network inet,",
        "deny signal (send, receive) peer=foo,",
        '"/opt/a b" mr,',
    ],
)
def test_accepted_extra_rules(rule: str) -> None:
    assert check_extra_rule(rule).endswith(",")


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        ("/usr/bin/** ux,", "only exec mode"),
        ("/usr/bin/** Px,", "only exec mode"),
        ("/srv/x rwz,", "rwalkm"),
        ("/usr/bin/** pix,", "only exec mode"),
        ("/usr/bin/x cx -> child,", "'->'"),
        ("capability sys_admin,", "only file rules"),
        ("network inet,", "only file rules"),
        ("mount,", "only file rules"),
        ("ptrace,", "only file rules"),
        ("change_profile -> **,", "change_profile"),
        ("/a r, capability,", "one rule"),
        ("} profile evil flags=(unconfined) {", "one rule"),
        ("/a r, # comment", "'#'"),
        ("include <abstractions/base>", "include"),
        ("/a r,\n/b w,", "control characters"),
        ("file,", "only file rules"),
    ],
)
def test_refused_extra_rules(rule: str, why: str) -> None:
    with pytest.raises(ArtifactError, match="refused") as e:
        check_extra_rule(rule)
    assert why in str(e.value)
    with pytest.raises(ArtifactError):
        render(policy(apparmor={"extra_rules": [rule]}))


# --- the real parser -------------------------------------------------------------

SEVERAL = [
    {},
    {"network": {"mode": "none"}, "filesystem": {"writable": []}},
    {"capabilities": {"keep": ["CAP_SETUID", "CAP_SETGID", "net_bind_service"]}},
    {"filesystem": {"read_paths": ["/", "/weird dir/*{a,b}[c]?#@=^\"'"], "exec_paths": []}},
    {
        "filesystem": {
            "binds": [{"source": "/srv", "target": "/data", "writable": True}],
            "tmpfs": [{"target": "/scratch"}],
        }
    },
    {
        "namespaces": {"nested_userns": True},
        "apparmor": {"extra_rules": ["/srv/** rwk,", "deny /srv/secret/** rw,"]},
    },
]


@needs_parser
@pytest.mark.parametrize("kw", SEVERAL)
def test_compile_check_passes_for_several_policies(kw: dict[str, Any]) -> None:
    features = parser.probe_parser()
    art = render(policy(**kw), features, interpreter="/usr/bin/python3.11")
    result = parser.compile_check(art.text, features_file=features.abi_file)
    assert result.ok, result.message


@needs_parser
def test_compile_check_fails_with_the_parsers_message_on_a_broken_rule() -> None:
    features = parser.probe_parser()
    art = render(features=features)
    broken = art.text.replace("deny ptrace,", "deny ptrace (bogus),")
    result = parser.compile_check(broken, features_file=features.abi_file)
    assert not result.ok and result.returncode != 0
    assert "AppArmor parser error" in result.message and "line" in result.message
    assert "Cache read/write disabled" not in result.message


# Printable characters, Latin-1 and beyond included; control characters are
# refused by quote_path (tested above). '*' is a glob in policy paths (last
# component only), so literal paths here never contain one.
_path_chars = st.characters(
    min_codepoint=0x20,
    max_codepoint=0x2FF,
    exclude_categories=("Cc", "Cs"),
    exclude_characters="/*",
)
_segment = st.text(_path_chars, min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))


@needs_parser
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.lists(
        st.lists(_segment, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
        min_size=1,
        max_size=4,
    )
)
def test_any_policy_path_renders_to_a_profile_that_compiles(paths: list[str]) -> None:
    features = parser.probe_parser()
    p = policy(filesystem={"read_paths": paths, "writable": paths[:1], "exec_paths": paths[-1:]})
    art = render(p, features, program=paths[0])
    result = parser.compile_check(art.text, features_file=features.abi_file)
    assert result.ok, (paths, result.message)


def test_list_paths_allow_the_directory_itself_only() -> None:
    fs = {"read_paths": ["/etc/hostname"], "list_paths": ["/usr/bin"]}
    got = rules(render(policy(filesystem=fs)).text)
    assert '"/usr/bin/" r,' in got
    assert '"/etc/hostname{,/,/**}" r,' in got
    assert not any(r.startswith('"/usr/bin{') for r in got)


def test_a_glob_path_keeps_its_star_and_escapes_the_rest() -> None:
    fs = {"exec_paths": ["/usr/lib/libz.so.1.*"], "read_paths": ["/opt/{a}/x*"]}
    got = rules(render(policy(filesystem=fs)).text)
    assert '"/usr/lib/libz.so.1.*" mix,' in got
    assert '"/opt/\\{a\\}/x*" r,' in got

"""Property tests on whole policies (STYLE C7, issue 5), hypothesis under a fixed budget.

1. Loading random input (tables, TOML text) raises nothing but PolicyError.
2. Generating every layer's artifact for any valid policy succeeds or raises
   ArtifactError/PolicyError, never anything else.
3. The compiled BPF of any valid policy, run by the interpreter, equals the
   reference model for random (arch, nr, args) (the seccomp-only version
   is ``test_seccomp_props``; this one draws whole policies).
4. Adding a grant never removes a danger-class lint finding.
5. policy -> JSON -> policy and policy -> TOML -> policy are the identity.
6. Overlay option escaping round-trips any paths through a reference of the
   kernel's option parser (the whole option string, not only lowerdir).
"""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

from hypothesis import assume, event, given
from hypothesis import strategies as st
from strategies import BUDGET, grants, policies, profile_texts, raw_tables
from test_seccomp_props import agree, seccomp_data

from sandbox.apparmor.parser import ParserFeatures
from sandbox.apparmor.render import prepare as render
from sandbox.cgroups import CgroupLimits
from sandbox.errors import ArtifactError, PolicyError
from sandbox.fs.mountopts import escape, join_lowerdirs, split_lowerdirs
from sandbox.fs.ops import plan_mounts
from sandbox.landlock.rules import prepare as landlock_prepare
from sandbox.policy.dump import policy_toml
from sandbox.policy.load import load_profile, validate
from sandbox.policy.model import Policy
from sandbox.seccomp.build import compile_spec
from sandbox.seccomp.groups import resolve
from sandbox.seccomp.tables import ARCHES
from sandbox.verify import lint
from sandbox.verify.mountflags import trace

AA3 = ParserFeatures(version=(3, 0, 8), abi="3.0", rules=frozenset())


@BUDGET
@given(raw_tables())
def test_validating_random_tables_raises_only_policy_error(raw: dict) -> None:
    try:
        validate(raw)
    except PolicyError:
        event("refused")


@BUDGET
@given(st.one_of(profile_texts().map(str.encode), st.binary(max_size=200)))
def test_loading_random_profiles_raises_only_policy_error(tmp_path_factory, data: bytes) -> None:
    path = Path(tmp_path_factory.mktemp("p")) / "p.toml"
    path.write_bytes(data)
    try:
        load_profile(str(path))
        event("loaded")
    except PolicyError as e:
        assert str(path) in str(e) or "extends" in str(e) or "not found" in str(e)
        event("refused")


@BUDGET
@given(policies(names_ok=False), st.integers(0, 7))
def test_generation_raises_only_documented_errors(policy: Policy, abi: int) -> None:
    steps = [
        lambda: [compile_spec(resolve(policy.seccomp), a) for a in ARCHES],
        lambda: landlock_prepare(policy.filesystem, abi),
        lambda: render(policy, program="/box/prog", interpreter=None, parser_features=AA3),
        lambda: trace(plan_mounts(policy.filesystem, "/", None)),
        lambda: CgroupLimits(
            memory=policy.limits.memory,
            pids=policy.limits.processes,
            cpu_quota=policy.limits.cpu_quota,
            cpuset=policy.limits.cpuset,
        ),
    ]
    for step in steps:
        try:
            step()
        except (ArtifactError, PolicyError) as e:
            event(type(e).__name__)


@BUDGET
@given(policies(), st.sampled_from(sorted(ARCHES)), st.lists(seccomp_data(), max_size=40))
def test_compiled_policy_matches_the_reference(policy: Policy, arch: str, cases: list) -> None:
    try:
        spec = resolve(policy.seccomp)
    except PolicyError:
        event("seccomp section refused")
        return
    agree(spec, arch, cases)


def _danger(policy: Policy) -> set[tuple[str, str]] | None:
    try:
        spec = resolve(policy.seccomp)
        mounts = trace(plan_mounts(policy.filesystem, "/", None))
    except PolicyError:
        return None
    text = None
    with contextlib.suppress(ArtifactError):
        text = render(policy, program="/box/prog", interpreter=None, parser_features=AA3).text
    ctx = lint.context(policy, spec, apparmor_text=text, mounts=mounts)
    return {(f.id, f.subject) for f in lint.run(ctx, lint.ids("danger"))}


@BUDGET
@given(st.data())
def test_a_grant_never_removes_a_danger_finding(data: st.DataObject) -> None:
    policy = data.draw(policies())
    before = _danger(policy)
    assume(before is not None)
    granted = data.draw(grants(policy))
    after = _danger(granted)
    assume(after is not None)  # the grant made the policy invalid (e.g. allow vs a group rule)
    event(f"{len(after - before)} new danger findings" if after != before else "no change")
    assert before <= after, sorted(before - after)


@BUDGET
@given(policies(names_ok=False))
def test_json_and_toml_round_trips(policy: Policy) -> None:
    assert Policy.model_validate_json(policy.model_dump_json()) == policy
    assert Policy.model_validate(tomllib.loads(policy_toml(policy))) == policy


def kernel_overlay_options(opts: str) -> dict[str, list[str]]:
    """Reference of overlayfs's legacy option parsing (kernels < 6.5).

    The whole string is split on commas not escaped by a backslash (the
    backslash is kept); ``lowerdir`` is then split on unescaped colons and
    unescaped; other values are unescaped.
    """
    parts, cur, escaped = [], [], False
    for c in opts:
        if escaped:
            cur.append(c)
            escaped = False
        elif c == "\\":
            cur.append(c)
            escaped = True
        elif c == ",":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    out: dict[str, list[str]] = {}
    for part in parts:
        key, _, value = part.partition("=")
        out[key] = split_lowerdirs(value) if key == "lowerdir" else [_unescape(value)]
    return out


def _unescape(value: str) -> str:
    out, it = [], iter(value)
    for c in it:
        out.append(next(it, "") if c == "\\" else c)
    return "".join(out)


paths = st.text(st.characters(blacklist_characters="\0"), min_size=1, max_size=20)


@BUDGET
@given(st.lists(paths, min_size=1, max_size=4), paths, paths)
def test_overlay_options_round_trip_any_path(lowers: list[str], upper: str, work: str) -> None:
    opts = f"lowerdir={join_lowerdirs(lowers)},upperdir={escape(upper)},workdir={escape(work)}"
    parsed = kernel_overlay_options(opts)
    assert parsed == {"lowerdir": lowers, "upperdir": [upper], "workdir": [work]}

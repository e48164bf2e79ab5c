"""Hypothesis strategies for whole policies, profile text, and grants (fuzz/, STYLE C7).

- ``policies()``: valid ``Policy`` objects drawn from every section, with
  real group, syscall and capability names (``names_ok=False`` mixes in
  invented ones, for the error paths);
- ``raw_tables()`` / ``profile_texts()``: arbitrary nested tables and TOML
  text, mostly near-misses of real profiles, for the loader;
- ``grants(policy)``: the same policy with more granted (a capability, a
  syscall or group, a deny entry removed, a writable bind, a shared
  namespace, an extra AppArmor rule...), for lint's monotonicity. A group
  is a grant only under a refusing default action: under ``allow``/``log``
  its errno answers and argument rules restrict (basic_io's ioctl rule
  takes TIOCSTI away), which the property test found.

Budget: every test here runs under ``BUDGET`` (derandomized, fixed number
of examples) so CI is reproducible; ``SANDBOX_FUZZ_EXAMPLES`` and
``SANDBOX_FUZZ_RANDOM=1`` widen the search by hand.
"""

from __future__ import annotations

import os
import string
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from sandbox.caps.names import CAPS
from sandbox.policy.model import LAYERS, Policy
from sandbox.seccomp.actions import ACTION_RET
from sandbox.seccomp.groups import load_groups
from sandbox.seccomp.tables import all_names

BUDGET = settings(
    max_examples=int(os.environ.get("SANDBOX_FUZZ_EXAMPLES", "100")),
    derandomize=not os.environ.get("SANDBOX_FUZZ_RANDOM"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SYSCALLS = sorted(all_names())
GROUPS = sorted(load_groups())
CAP_NAMES = sorted(CAPS)
NAMESPACES = ["pid", "net", "ipc", "uts", "cgroup", "time", "nested_userns"]
ERRNOS = ["EPERM", "EACCES", "ENOSYS", "EIO", "ENOENT", "EAFNOSUPPORT", "EINVAL"]
# Inside paths the container has, and some it has not.
INSIDE = ["/usr", "/etc", "/box", "/tmp", "/dev", "/proc", "/usr/share", "/opt", "/srv/x", "/"]
# Host paths that exist on any Debian machine (bind sources).
HOST = ["/usr/share", "/etc", "/var", "/tmp", "/usr/lib"]

_segment = st.text(string.ascii_lowercase + string.digits + "_-.,:\\ ", min_size=1, max_size=8)
abs_paths = st.one_of(
    st.sampled_from(INSIDE),
    st.lists(_segment, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
).filter(lambda p: all(s not in (".", "..") for s in p.split("/")))
sizes = st.one_of(
    st.integers(1, 1 << 34), st.sampled_from(["64M", "1G", "512K", "4096", "16 M", "2T"])
)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def _seccomp(draw: st.DrawFn, names_ok: bool) -> dict[str, Any]:
    name = st.sampled_from(SYSCALLS)
    if not names_ok:
        name = st.one_of(name, st.from_regex(r"[a-z_0-9]{1,10}", fullmatch=True))
    allow = draw(st.lists(name, max_size=8))
    return {
        "default_action": draw(st.sampled_from(sorted(ACTION_RET))),
        "default_errno": draw(st.sampled_from(ERRNOS)),
        "groups": draw(st.lists(st.sampled_from(GROUPS), max_size=6, unique=True)),
        "allow": allow,
        # deny and errno drawn apart from allow, so most draws resolve
        "deny": draw(st.lists(name.filter(lambda n: n not in allow), max_size=6)),
        "errno": draw(
            st.dictionaries(
                name.filter(lambda n: n not in allow), st.sampled_from(ERRNOS), max_size=3
            )
        ),
    }


@st.composite
def policy_tables(draw: st.DrawFn, names_ok: bool = True) -> dict[str, Any]:
    """Raw tables a profile could contain after ``extends`` resolution."""
    cap = st.sampled_from(CAP_NAMES)
    if not names_ok:
        cap = st.one_of(cap, st.from_regex(r"(CAP_)?[A-Z_]{1,10}", fullmatch=True))
    return {
        "name": draw(st.from_regex(r"[A-Za-z0-9_.-]{1,16}", fullmatch=True)),
        "layers": {
            layer: draw(st.sampled_from(["required", "degradable", "disabled"]))
            for layer in draw(st.lists(st.sampled_from(LAYERS), max_size=3, unique=True))
        }
        | {"file_mediation": draw(st.booleans())},
        "namespaces": {
            ns: draw(st.booleans())
            for ns in draw(
                st.lists(
                    st.sampled_from(NAMESPACES),
                    max_size=2,
                    unique=True,
                )
            )
        },
        "identity": {"hostname": draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))},
        "filesystem": {
            "read_paths": draw(st.lists(abs_paths, max_size=4)),
            "exec_paths": draw(st.lists(abs_paths, max_size=3)),
            "writable": draw(
                st.lists(
                    st.sampled_from(["/box", "/tmp", "/work"]), min_size=1, max_size=2, unique=True
                )
            ),
            "binds": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "source": st.sampled_from(HOST),
                            "target": st.sampled_from(["/data", "/in", "/srv/out", "/mnt/a"]),
                            "writable": st.booleans(),
                            "exec": st.booleans(),
                        }
                    ),
                    max_size=2,
                    unique_by=lambda b: b["target"],
                )
            ),
            "tmpfs": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"target": st.sampled_from(["/scratch", "/cache"]), "size": sizes}
                    ),
                    max_size=1,
                )
            ),
            "disk": draw(sizes),
            "proc": draw(st.sampled_from(["pid", "full"])),
        },
        "limits": {
            "cpu_time": draw(_opt(st.floats(0.01, 1e4))),
            "memory": draw(_opt(sizes)),
            "processes": draw(_opt(st.integers(1, 1 << 16))),
            "open_files": draw(_opt(st.integers(1, 1 << 20))),
            "cpuset": draw(_opt(st.sampled_from(["0", "0-1", "0,2-3"]))),
            "cpu_quota": draw(_opt(st.floats(0.01, 64))),
        },
        "seccomp": draw(_seccomp(names_ok)),
        "capabilities": {
            "keep": draw(st.lists(cap, max_size=3)),
            "deny": draw(st.lists(cap, max_size=2)),
        },
        "network": {"mode": draw(st.sampled_from(["none", "loopback"]))},
        "apparmor": {
            "extra_rules": draw(
                st.lists(
                    st.sampled_from(
                        ["/opt/** r,", "deny /etc/shadow r,", "/srv/** rw,", "/opt/tool ix,"]
                    ),
                    max_size=2,
                    unique=True,
                )
            )
        },
        "env": {
            "vars": draw(
                st.dictionaries(
                    st.from_regex(r"[A-Z]{1,6}", fullmatch=True), st.text(max_size=8), max_size=2
                )
            )
        },
    }


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def policies(names_ok: bool = True) -> st.SearchStrategy[Policy]:
    """Valid policies (tables the model rejects are filtered out)."""

    def build(raw: dict[str, Any]) -> Policy | None:
        from pydantic import ValidationError

        try:
            return Policy.model_validate(_drop_none(raw))
        except ValidationError:
            return None

    return policy_tables(names_ok).map(build).filter(lambda p: p is not None)  # type: ignore[return-value]


# Anything TOML can hold, shaped like profiles with typos and wrong types.
_keys = st.one_of(
    st.sampled_from(
        [
            "seccomp",
            "limits",
            "filesystem",
            "capabilities",
            "layers",
            "name",
            "extends",
            "allow",
            "deny",
            "keep",
            "memory",
            "binds",
            "groups",
            "errno",
        ]
    ),
    st.text(string.ascii_letters + "_", min_size=1, max_size=8),
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["strict", "64M", "-1", "ptrace", "CAP_SYS_ADMIN"]),
)
raw_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=20,
)


def raw_tables() -> st.SearchStrategy[dict[str, Any]]:
    """Arbitrary nested tables (for ``load.validate``)."""
    return st.one_of(
        st.dictionaries(_keys, raw_values, max_size=6),
        policy_tables(names_ok=False),
    )


def profile_texts() -> st.SearchStrategy[str]:
    """TOML-ish text: valid profiles, mangled ones and noise (for ``load_profile``)."""
    from sandbox.policy.dump import to_toml

    valid = policy_tables(names_ok=False).map(lambda t: to_toml(_drop_none(t)))
    mangled = st.tuples(valid, st.integers(0, 400), st.text(max_size=6)).map(
        lambda x: x[0][: x[1]] + x[2] + x[0][x[1] :]
    )
    return st.one_of(valid, mangled, st.text(max_size=200))


@st.composite
def grants(draw: st.DrawFn, policy: Policy) -> Policy:
    """``policy`` with one or more things granted on top (never taken away)."""
    raw = policy.model_dump(mode="json")
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["cap", "allow", "group", "undeny", "bind", "share", "nested", "aa", "default"]
            )
        )
        sc, fs = raw["seccomp"], raw["filesystem"]
        if kind == "cap":
            raw["capabilities"]["keep"].append(draw(st.sampled_from(CAP_NAMES)))
        elif kind == "allow":
            sc["allow"].append(draw(st.sampled_from(SYSCALLS)))
        elif kind == "group" and sc["default_action"] not in ("allow", "log"):
            sc["groups"].append(draw(st.sampled_from(GROUPS)))
        elif kind == "undeny" and sc["deny"]:
            sc["deny"].remove(draw(st.sampled_from(sc["deny"])))
        elif kind == "bind":
            fs["binds"].append({"source": "/etc", "target": "/grant", "writable": True})
        elif kind == "share":
            raw["namespaces"][draw(st.sampled_from(["net", "pid", "ipc", "uts", "cgroup"]))] = False
        elif kind == "nested":
            raw["namespaces"]["nested_userns"] = True
        elif kind == "aa":
            raw["apparmor"]["extra_rules"].append(
                draw(st.sampled_from(["/opt/** ux,", "ptrace,", "capability,", "mount,"]))
            )
        elif kind == "default":
            sc["default_action"] = draw(st.sampled_from(["allow", "log"]))
    return Policy.model_validate(raw)

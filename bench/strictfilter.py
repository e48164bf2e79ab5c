"""strict's seccomp filter in the forms the peers and the floor harness take.

Exported once per bench run through the public CLI (``sandbox seccomp
export``), so that the peers enforce the same allow-list as strict:

- ``oci``: the OCI ``linux.seccomp`` section for runc/crun; strict's default
  action (hand the call to the supervisor, SECCOMP_RET_USER_NOTIF) needs a
  listener those runtimes would not serve, so it becomes ERRNO(EPERM), as in
  Docker's and Podman's profiles: runc's own Go init keeps running after it
  loads the filter (epoll_ctl, ...), so a killing default kills runc itself;
- ``kafel``: the same rules as a kafel policy for nsjail (syscalls by number,
  argument rules as masked compares, default KILL_PROCESS);
- ``bpf``: the exact bytes a strict run loads (for the floor harness);
- ``numbers``: the syscall numbers strict allows, for the floor's synthetic
  linear and binary-tree filters.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import VENV_SANDBOX

_OPS = {
    "SCMP_CMP_EQ": "==",
    "SCMP_CMP_NE": "!=",
    "SCMP_CMP_LT": "<",
    "SCMP_CMP_LE": "<=",
    "SCMP_CMP_GT": ">",
    "SCMP_CMP_GE": ">=",
}


@dataclass(frozen=True)
class StrictFilter:
    """strict's filter, exported; paths lie in the bench's temporary directory."""

    oci: dict[str, Any]
    bpf: Path
    numbers: Path
    kafel: Path
    allowed: int  # syscalls allowed (unconditionally or under argument rules)

    def oci_for_runtime(self) -> dict[str, Any]:
        """The OCI section with a default action a runtime can enforce on its own."""
        doc: dict[str, Any] = json.loads(json.dumps(self.oci))
        doc["defaultAction"] = "SCMP_ACT_ERRNO"
        doc["defaultErrnoRet"] = 1
        return doc


def _kafel_cond(arg: dict[str, Any]) -> str:
    a = f"a{arg['index']}"
    op = arg["op"]
    if op == "SCMP_CMP_MASKED_EQ":
        return f"({a} & {arg['value']:#x}) == {arg['valueTwo']:#x}"
    return f"{a} {_OPS[op]} {arg['value']:#x}"


def _kafel(doc: dict[str, Any], nr: dict[str, int]) -> str:
    """A kafel policy with the OCI document's rules (first match wins; ours are disjoint)."""
    groups: dict[str, list[str]] = {}
    for entry in doc["syscalls"]:
        action = entry["action"]
        if action == "SCMP_ACT_ALLOW":
            target = "ALLOW"
        elif action == "SCMP_ACT_ERRNO":
            target = f"ERRNO({entry.get('errnoRet', 1)})"
        elif action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
            target = "KILL"
        else:
            target = "KILL_PROCESS"
        for name in entry["names"]:
            if name not in nr:
                continue
            spec = f"SYSCALL[{nr[name]}]"
            args = entry.get("args") or []
            if args:
                spec += "(a0, a1, a2, a3, a4, a5) { " + " && ".join(map(_kafel_cond, args)) + " }"
            groups.setdefault(target, []).append(spec)
    body = ",\n".join(f"  {t} {{\n    " + ",\n    ".join(s) + "\n  }" for t, s in groups.items())
    return f"POLICY strict {{\n{body}\n}}\nUSE strict DEFAULT KILL_PROCESS\n"


def export(tmp: Path) -> StrictFilter | str:
    """strict's filter in every form, or why it could not be exported."""
    from sandbox.seccomp.tables import table

    sandbox = str(VENV_SANDBOX)
    bpf = tmp / "strict.bpf"
    try:
        p = subprocess.run(
            [sandbox, "seccomp", "export", "strict"], capture_output=True, text=True, timeout=120
        )
        if p.returncode != 0:
            return f"sandbox seccomp export: {p.stderr.strip()}"
        doc = json.loads(p.stdout)
        p = subprocess.run(
            [sandbox, "seccomp", "export", "--format", "bpf", "-o", str(bpf), "strict"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if p.returncode != 0:
            return f"sandbox seccomp export --format bpf: {p.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        return f"sandbox seccomp export: {e}"
    nr = dict(table("x86_64").by_name)
    allowed = sorted(
        {nr[n] for e in doc["syscalls"] if e["action"] == "SCMP_ACT_ALLOW" for n in e["names"]}
    )
    numbers = tmp / "strict.nrs"
    numbers.write_text("\n".join(map(str, allowed)) + "\n")
    kafel = tmp / "strict.kafel"
    kafel.write_text(_kafel(doc, nr))
    return StrictFilter(doc, bpf, numbers, kafel, len(allowed))

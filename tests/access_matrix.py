"""The access matrix: the same accesses under AppArmor alone, Landlock alone, both and neither.

Shared by tests/integration/test_access_matrix_host.py (Landlock, this host's
ABI) and tests/guest/test_access_matrix_guest.py (AppArmor and Landlock ABI 2
in the kvm-run guest). One run of the probe (tests/probes/fsops.c) performs
every access in order under a profile that extends strict with a read-only
bind (/data), a writable one (/out), a tmpfs (/scratch), one AppArmor deny
rule inside the read-only bind, and a read path (/tmp/ro) inside the writable
/tmp (both layers let it be written: allows add up in both).

``EXPECTED`` is the policy's decision for every access, which AppArmor alone
must make (checked in the guest). Landlock alone must make the same decision
except for the accesses that show a difference that
``sandbox.apparmor.compare.differences(policy, abi)`` lists; for those it must
differ (so the list is neither incomplete nor stale). ``BASELINE`` is what the
mounts, modes and namespaces decide with both file layers ablated: an access
the policy denies but the baseline allows is denied by the layer itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LDSO_FAIL = "EXIT127"  # ld.so: "failed to map segment from shared object"


@dataclass(frozen=True)
class Access:
    """One access: its name, the probe operation, the policy's and the baseline's result."""

    name: str
    op: str
    expected: int | str  # 0 (allowed) or the errno name
    baseline: int | str = 0


def accesses(outside: str) -> list[Access]:
    """Every access of the matrix, in the order the probe performs them.

    ``outside`` is a host path that exists on the host but not in the image.
    """
    a = Access
    return [
        a("read a file in a read-only tree", "read:/etc/passwd", 0),
        a("read a file inside an allowed directory", "read:/etc/hostname", 0),
        a("list a directory of the image no rule grants", "list:/var", "EACCES"),
        a("read /proc of the payload", "read:/proc/self/status", 0),
        a("write a writable file in a read-only tree", "write:/proc/self/comm", "EACCES"),
        a("truncate a file in a read-only tree", "truncate:/proc/self/comm", "EACCES"),
        a("create a file in a writable tree", "create:/tmp/new", 0),
        a("create a file on the read-only root", "create:/etc/new", "EROFS", "EROFS"),
        a("read a file created during the run", "read:/tmp/new", 0),
        a("write a file created during the run", "write:/tmp/new", 0),
        a("truncate a file created during the run", "truncate:/tmp/new", 0),
        a("copy a program into a writable tree", "copy:/usr/bin/true:/tmp/t", 0),
        a("execute a file written to a non-exec tree", "exec:/tmp/t", "EACCES"),
        a("mmap PROT_EXEC a file of a non-exec tree", "mmapx:/tmp/t", "EACCES"),
        a("run a non-exec file through ld.so", "ldso:/tmp/t", LDSO_FAIL),
        a("execute from an exec tree", "exec:/usr/bin/true", 0),
        a("copy a program into the exec tree /box", "copy:/usr/bin/true:/box/t", 0),
        a("execute a file created during the run in /box", "exec:/box/t", 0),
        a("mkdir in a writable tree", "mkdir:/tmp/d1", 0),
        a("mkdir a second directory", "mkdir:/tmp/d2", 0),
        a("create in a new directory", "create:/tmp/d1/f", 0),
        a("rename across directories", "rename:/tmp/d1/f:/tmp/d2/f", 0),
        a("link across directories", "link:/tmp/d2/f:/tmp/d1/g", 0),
        a("rename across mounts", "rename:/tmp/d2/f:/box/f", "EXDEV", "EXDEV"),
        a("unlink in a writable tree", "unlink:/tmp/d1/g", 0),
        a("mkdir a read_paths entry inside a writable tree", "mkdir:/tmp/ro", 0),
        a("write a file of a read_paths entry in a writable tree", "create:/tmp/ro/f", 0),
        a("read a path outside the image", f"read:{outside}", "ENOENT", "ENOENT"),
        a("read from a read-only bind", "read:/data/f", 0),
        a("read a file a deny rule names in a bind", "read:/data/secret", "EACCES"),
        a("create in a read-only bind", "create:/data/new", "EROFS", "EROFS"),
        a("create in a writable bind", "create:/out/new", 0),
        a("copy a program into a noexec bind", "copy:/usr/bin/true:/out/t", 0),
        a("execute from a noexec bind", "exec:/out/t", "EACCES", "EACCES"),
        a("create in a tmpfs", "create:/scratch/x", 0),
        a("write /dev/null", "write:/dev/null", 0),
        a("read /dev/urandom", "read:/dev/urandom", 0),
        a("write /dev/urandom", "write:/dev/urandom", "EACCES"),
        a("signal the container's init", "signal:1", "EPERM", "EPERM"),
    ]


# Which accesses show each difference ``differences()`` can list.
SHOWN_BY = {
    "mmap-exec": ("mmap PROT_EXEC a file of a non-exec tree", "run a non-exec file through ld.so"),
    "truncate": ("truncate a file in a read-only tree",),
    "deny-inside-tree": ("read a file a deny rule names in a bind",),
}


def write_profile(tmp: Path) -> Path:
    """The matrix profile and its bind sources under ``tmp``; returns the profile path."""
    data, out = tmp / "data", tmp / "out"
    data.mkdir()
    out.mkdir()
    (data / "f").write_text("data\n")
    (data / "secret").write_text("secret\n")
    for p in (data / "f", data / "secret"):
        p.chmod(0o644)
    data.chmod(0o755)
    out.chmod(0o777)  # the payload's host uid is a run slot's: let it write
    prof = tmp / "matrix.toml"
    prof.write_text(
        'extends = "strict"\n'
        "[filesystem]\n"
        'read_paths = ["/usr", "/etc", "/box", "/tmp", "/dev", "/proc", "/tmp/ro"]\n'
        f'binds = [{{source = "{data}", target = "/data", exec = false}},\n'
        f'         {{source = "{out}", target = "/out", writable = true, exec = false}}]\n'
        'tmpfs = [{target = "/scratch"}]\n'
        "[apparmor]\n"
        'extra_rules = ["deny /data/secret r,"]\n'
    )
    return prof


def clear_out(tmp: Path) -> None:
    """Empty the writable bind's source (it outlives each run)."""
    for p in (tmp / "out").iterdir():
        p.unlink()


def parse(out: str) -> dict[str, Any]:
    """The probe's JSON object (the last line of its stdout)."""
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert lines, f"no probe output in {out!r}"
    return dict(json.loads(lines[-1]))


Runner = Callable[[list[str]], dict[str, Any]]  # ablate flags -> probe results by op


def results(run: Runner, ablate: list[str], acc: list[Access]) -> dict[str, Any]:
    """Results by access name for one run with ``--test-ablate`` of each layer in ``ablate``."""
    got = run([x for layer in ablate for x in ("--test-ablate", layer)])
    return {a.name: got.get(a.op, "MISSING") for a in acc}


def differing(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Accesses where two result tables differ."""
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


def check_layer(
    got: dict[str, Any], acc: list[Access], diff_keys: set[str], layer: str
) -> list[str]:
    """Problems: an access decided unlike the policy without a listed difference, or
    a listed difference that does not show."""
    allowed_to_differ = {n for k in diff_keys for n in SHOWN_BY.get(k, ())}
    problems = []
    for a in acc:
        if a.name not in allowed_to_differ and got[a.name] != a.expected:
            problems.append(f"{layer}: {a.name!r} gave {got[a.name]!r}, policy says {a.expected!r}")
    for k in diff_keys:
        shown = [n for n in SHOWN_BY.get(k, ()) if got[n] != _expected(acc, n)]
        if SHOWN_BY.get(k) and not shown:
            problems.append(f"{layer}: difference {k!r} is listed but {SHOWN_BY[k]} do not show it")
    return problems


def _expected(acc: list[Access], name: str) -> int | str:
    return next(a.expected for a in acc if a.name == name)


def check_baseline(got: dict[str, Any], acc: list[Access]) -> list[str]:
    """The baseline matches BASELINE for every access."""
    return [
        f"baseline: {a.name!r} gave {got[a.name]!r}, expected {a.baseline!r}"
        for a in acc
        if got[a.name] != a.baseline
    ]


def layer_decided(acc: list[Access]) -> list[str]:
    """Accesses denied by the policy that the baseline allows: the file layers' own work."""
    return [a.name for a in acc if a.expected != 0 and a.baseline == 0]


def table(columns: dict[str, dict[str, Any]], acc: list[Access]) -> str:
    """A Markdown table of results (for the doc and the test log)."""
    heads = list(columns)
    lines = ["| access | probe | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for a in acc:
        cells = [_cell(columns[h][a.name]) for h in heads]
        lines.append(f"| {a.name} | `{a.op}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    return "allowed" if v == 0 else str(v)


def outside_path() -> str:
    """A host file that the image does not contain (this module's own path)."""
    return os.path.realpath(__file__)

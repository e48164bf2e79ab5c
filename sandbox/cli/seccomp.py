"""``sandbox seccomp import|export``: Docker/OCI seccomp JSON to and from profiles.

``import FILE`` reads a moby profile or a whole ``config.json`` and writes a
profile (TOML) whose ``[seccomp]`` section never allows more than the JSON;
what could not be kept exactly is listed at the top of the profile. The
result is then verified like any profile (report on stderr; exit 1 on a
blocking finding). ``export PROFILE`` writes the profile's filter for the
x86_64 ABI as OCI JSON (``--format oci``, or ``config`` wrapped as
``{"linux": {"seccomp": ...}}``), or libseccomp's PFC text, or the raw BPF
bytes a run loads (``--format bpf``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from sandbox.cli.common import BAD_INPUT, FINDINGS, OK, color, die, load, write_out


def register(sub: Any) -> None:
    """Add ``seccomp import`` and ``seccomp export``."""
    p = sub.add_parser(
        "seccomp",
        help="import/export Docker and OCI seccomp JSON",
        description=__doc__.split("\n", 1)[0],
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    imp = verbs.add_parser("import", help="OCI/Docker seccomp JSON -> profile TOML")
    imp.add_argument(
        "file", metavar="FILE", help="moby seccomp profile or config.json ('-': stdin)"
    )
    imp.add_argument(
        "-o", "--output", metavar="OUT", help="write the profile here (default: stdout)"
    )
    imp.add_argument("--name", help="profile name (default: from FILE)")
    imp.add_argument("--extends", metavar="PROFILE", help="extend this profile (e.g. strict)")
    imp.add_argument(
        "--kernel", metavar="X.Y", help="kernel for moby's minKernel (default: this host's)"
    )
    imp.add_argument(
        "--keep-cap",
        metavar="CAP",
        action="append",
        default=[],
        help="capability the payload keeps, for moby's includes.caps (repeatable)",
    )
    imp.set_defaults(handler=run_import)
    exp = verbs.add_parser("export", help="profile -> OCI seccomp JSON (or PFC, or raw BPF)")
    exp.add_argument("profile", metavar="PROFILE", help="profile name or path")
    exp.add_argument("-o", "--output", metavar="OUT", help="write here (default: stdout)")
    exp.add_argument("--format", choices=("oci", "config", "pfc", "bpf"), default="oci")
    exp.add_argument("--arch", choices=("x86_64", "x32", "i386"), default="x86_64")
    exp.set_defaults(handler=run_export)


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        return json.loads(text)
    except OSError as e:
        die(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        die(f"{path}:{e.lineno}:{e.colno}: not JSON: {e.msg}")


def _kernel(text: str | None) -> tuple[int, ...]:
    if text is None:
        from sandbox.host import probe

        return probe().kernel
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        die(f"--kernel {text!r}: expected X.Y")


def _restricted_by(parent_name: str) -> tuple[set[str], set[str]]:
    """Names the parent's groups restrict (rule or errno) or answer, and names it denies."""
    from sandbox.seccomp.groups import load_groups

    parent = load(parent_name).policy.seccomp
    groups = load_groups()
    restricted = set(parent.errno)
    for g in parent.groups:
        if g in groups:
            restricted |= {r.syscall for r in groups[g].rules} | {n for n, _ in groups[g].errno}
    return restricted, set(parent.deny)


def run_import(ns: argparse.Namespace) -> int:
    """Write the imported profile, then verify it."""
    from sandbox.caps.names import normalize
    from sandbox.errors import SandboxError
    from sandbox.policy.dump import to_toml
    from sandbox.seccomp.oci import import_oci

    try:
        caps = frozenset(normalize(c) for c in ns.keep_cap)
    except KeyError as e:
        die(f"--keep-cap: unknown capability {e.args[0]!r}")
    source = "<stdin>" if ns.file == "-" else ns.file
    try:
        imp = import_oci(_read_json(ns.file), source=source, kernel=_kernel(ns.kernel), caps=caps)
    except SandboxError as e:
        die(str(e))
    sec = imp.seccomp
    if ns.extends:
        restricted, denied = _restricted_by(ns.extends)
        for key, drop, why in (
            ("allow", restricted, f"restricted by {ns.extends}'s reviewed groups"),
            ("errno", restricted, f"answered by {ns.extends}'s reviewed groups"),
            ("allow", denied, f"denied by {ns.extends}"),
        ):
            gone = sorted(set(sec[key]) & drop)
            if gone:
                imp.notes.append(f"{', '.join(gone)}: {why}, so left to it")
                if key == "allow":
                    sec["allow"] = [n for n in sec["allow"] if n not in drop]
                else:
                    sec["errno"] = {k: v for k, v in sec["errno"].items() if k not in drop}
    stem = Path(source).stem if source != "<stdin>" else "imported"
    name = ns.name or "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem)[:64]
    table: dict[str, Any] = {}
    if ns.extends:
        table["extends"] = ns.extends
    table |= {
        "name": name,
        "description": f"seccomp imported from {os.path.basename(source)}",
        "seccomp": sec,
    }
    header = [
        f"Generated by `sandbox seccomp import {os.path.basename(source)}`.",
        "Never allows more than the JSON; what could not be kept exactly:",
        *([f"- {n}" for n in imp.notes] or ["- nothing"]),
    ]
    text = to_toml(table, header)
    write_out(text, ns.output)
    return _verify_written(text, ns.output, name)


def _verify_written(text: str, output: str | None, name: str) -> int:
    from sandbox.errors import SandboxError
    from sandbox.host import probe
    from sandbox.policy.load import load_profile
    from sandbox.verify.core import check

    with tempfile.TemporaryDirectory() as tmp:
        path = output if output not in (None, "-") else str(Path(tmp) / f"{name}.toml")
        if path != output:
            Path(path).write_text(text)
        try:
            report = check(load_profile(path), probe())
        except SandboxError as e:
            print(f"sandbox: the imported profile does not load: {e}", file=sys.stderr)
            return BAD_INPUT
    print(report.render(color=color() and sys.stderr.isatty()), file=sys.stderr)
    return OK if report.ok else FINDINGS


def run_export(ns: argparse.Namespace) -> int:
    """Write the profile's filter in the chosen format."""
    from sandbox.errors import SandboxError
    from sandbox.seccomp.build import prepare
    from sandbox.seccomp.groups import resolve
    from sandbox.seccomp.oci import export

    policy = load(ns.profile).policy
    try:
        if ns.format in ("oci", "config"):
            doc = export(resolve(policy.seccomp), ns.arch)
            if ns.format == "config":
                doc = {"linux": {"seccomp": doc}}
            write_out(json.dumps(doc, indent=2) + "\n", ns.output)
            return OK
        art = prepare(policy.seccomp, ns.arch)
    except SandboxError as e:
        die(str(e))
    if ns.format == "bpf" and ns.output in (None, "-") and sys.stdout.isatty():
        die("refusing to write binary BPF to a terminal: use -o FILE")
    write_out(art.pfc if ns.format == "pfc" else art.bpf, ns.output)
    return OK

"""``sandbox seccomp import|export``: Docker/OCI seccomp JSON to and from profiles.

``import FILE`` reads a moby profile or a whole ``config.json`` and writes a
profile (TOML) whose ``[seccomp]`` section never allows more than the JSON
(with ``--extends BASE``, nor more than BASE: the intersection); what could
not be kept exactly is listed at the top of the profile. Before writing,
the promise is checked on the compiled filters against the JSON's own
filter (built as runc builds it) and BASE's. The result is then verified
like any profile (report on stderr; exit 1 on a blocking finding).
``export PROFILE`` writes the profile's filter for the x86_64 ABI as OCI
JSON (``--format oci``, or ``config`` wrapped as ``{"linux": {"seccomp":
...}}``), or libseccomp's PFC text, or the raw BPF bytes a run loads
(``--format bpf``).
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
from sandbox.policy.profile import LoadedProfile


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
    except UnicodeDecodeError as e:
        die(f"{path}: not UTF-8 text (byte {e.start})")
    except RecursionError:  # json.loads recurses on nested arrays and objects
        die(f"{path}: arrays or objects nest too deeply")


def _kernel(text: str | None) -> tuple[int, ...]:
    if text is None:
        from sandbox.host import probe

        return probe().kernel
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        die(f"--kernel {text!r}: expected X.Y")


def _extends_ref(base: str, output: str | None) -> str:
    """How the written profile names its base: a name as is; a path relative to the output
    file (``extends`` paths are resolved beside the profile), absolute for stdout."""
    if "/" not in base and not base.endswith(".toml"):
        return base
    path = Path(base).resolve()
    if output in (None, "-"):
        return str(path)
    return os.path.relpath(path, Path(str(output)).resolve().parent)


def _base_notes(own: dict[str, Any], final: dict[str, Any], base: str) -> list[str]:
    """What the base took away from what the JSON allows (names are from our tables)."""
    allowed = set(own["allow"])
    ruled = {r["syscall"] for r in final["rules"]} & allowed
    answered = {n for n in allowed if n in final["errno"]}
    refused = allowed - set(final["allow"]) - ruled - answered
    out = []
    for names, what in (
        (refused, f"refused by {base}"),
        (ruled, f"allowed only under {base}'s argument rules"),
        (answered, f"answered with an errno by {base}"),
    ):
        if names:
            out.append(f"{', '.join(sorted(names))}: allowed by the JSON, {what}")
    return out


def _load_text(text: str, output: str | None, name: str) -> LoadedProfile:
    """Load ``text`` as it will be loaded once written (beside ``output``, for relative
    ``extends``), without writing ``output`` itself."""
    from sandbox.policy.load import load_profile

    if output in (None, "-"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.toml"
            path.write_text(text)
            return load_profile(str(path))
    target = Path(str(output)).resolve()
    path = target.with_name(f".{target.name}.check{os.getpid()}.toml")
    try:
        path.write_text(text)
        return load_profile(str(path))
    finally:
        path.unlink(missing_ok=True)


def _never_wider(prof: LoadedProfile, oci: Any, base: Any, base_name: str | None) -> None:
    """Refuse to write a profile whose compiled filter runs what the JSON's (or the
    base's) refuses: the promise is checked on the BPF, not trusted to the construction."""
    from sandbox.seccomp.groups import resolve
    from sandbox.verify.subset import wider_than_oci, wider_than_spec

    final = resolve(prof.policy.seccomp)
    wider = wider_than_oci(final, oci, "the JSON's own filter")
    if base is not None:
        wider += wider_than_spec(final, base, f"{base_name}'s filter")
    if wider:
        die(
            "internal error: the imported profile would allow more than promised: "
            + "; ".join(str(w) for w in wider[:5])
            + "; nothing written",
            FINDINGS,
        )


def run_import(ns: argparse.Namespace) -> int:
    """Write the imported profile, then verify it."""
    from sandbox.caps.names import normalize
    from sandbox.errors import SandboxError
    from sandbox.policy.dump import to_toml
    from sandbox.policy.load import snapshot, validate
    from sandbox.seccomp.groups import resolve
    from sandbox.seccomp.intersect import REPLACED, intersect
    from sandbox.seccomp.oci import applies, find_seccomp, import_oci
    from sandbox.seccomp.ocifilter import compile_oci

    try:
        caps = frozenset(normalize(c) for c in ns.keep_cap)
    except KeyError as e:
        die(f"--keep-cap: unknown capability {e.args[0]!r}")
    source = "<stdin>" if ns.file == "-" else ns.file
    kernel = _kernel(ns.kernel)
    doc = _read_json(ns.file)
    try:
        imp = import_oci(doc, source=source, kernel=kernel, caps=caps)
        oci = compile_oci(
            find_seccomp(doc, source),
            lambda entry, where: applies(entry, where, kernel, caps),
            source=source,
        )
        # The JSON's own reading, validated as any profile's section is.
        own = resolve(snapshot(validate({"name": "imported", "seccomp": imp.seccomp})).seccomp)
    except SandboxError as e:
        die(str(e))
    stem = Path(source).stem if source != "<stdin>" else "imported"
    name = ns.name or "".join(c if c.isalnum() or c in "_.-" else "-" for c in stem)[:64]
    table: dict[str, Any] = {}
    sec, base = imp.seccomp, None
    if ns.extends:
        base = resolve(load(ns.extends).policy.seccomp)
        sec = intersect(own, base)
        imp.notes += _base_notes(imp.seccomp, sec, ns.extends)
        # Lists the profile states whole: inheriting the base's would add to the JSON's.
        table |= {"extends": _extends_ref(ns.extends, ns.output), "replace": list(REPLACED)}
    table |= {
        "name": name,
        "description": f"seccomp imported from {os.path.basename(source)}",
        "seccomp": sec,
    }
    header = [
        f"Generated by `sandbox seccomp import {os.path.basename(source)}`.",
        "Never allows more than the JSON"
        + (f" nor more than {ns.extends}" if ns.extends else "")
        + " (checked on the compiled filters); what could not be kept exactly:",
        *([f"- {n}" for n in imp.notes] or ["- nothing"]),
    ]
    text = to_toml(table, header)
    try:
        prof = _load_text(text, ns.output, name)
    except SandboxError as e:
        die(f"the imported profile does not load: {e}")
    _never_wider(prof, oci, base, ns.extends)
    write_out(text, ns.output)
    return _verify_written(text, ns.output, name)


def _verify_written(text: str, output: str | None, name: str) -> int:
    """Verify the written profile like any other; the report goes to stderr."""
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

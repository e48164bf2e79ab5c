"""``sandbox verify PROFILE...``: compile checks, BPF simulation and lint, with each fix.

Exit 0 only when no profile has a blocking finding; 1 otherwise; 2 when a
profile cannot be loaded. Clean reports are cached like on the run path
(``--no-cache`` forces the full check).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from sandbox.cli.common import BAD_INPUT, FINDINGS, OK, color, die, load


def register(sub: Any) -> None:
    """Add the ``verify`` subcommand."""
    p = sub.add_parser(
        "verify",
        help="check profiles before running them (compile, simulate, lint)",
        description=__doc__.split("\n", 1)[0],
    )
    p.add_argument("profiles", nargs="+", metavar="PROFILE", help="profile name or path")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--no-cache", action="store_true", help="ignore cached verifications")
    p.add_argument(
        "--bpf",
        metavar="FILE",
        help="simulate these raw filter bytes (for the host's ABI) instead of building them",
    )
    p.set_defaults(handler=run)


def _given_filter(path: str | None, profile: Any, abi: str) -> Any:
    if path is None:
        return None
    from sandbox.seccomp.build import prepare

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(f"{path}: {e.strerror}")
    return dataclasses.replace(prepare(profile.policy.seccomp, abi), bpf=data)


def run(ns: argparse.Namespace) -> int:
    """Verify each profile; print the reports; return the exit status."""
    from sandbox.errors import SandboxError
    from sandbox.host import probe
    from sandbox.verify import cache
    from sandbox.verify.compile import host_abi

    host = probe()
    status = OK
    docs: list[dict[str, Any]] = []
    for name in ns.profiles:
        profile = load(name) if not ns.json else _load_quiet(name, docs)
        if profile is None:
            status = BAD_INPUT
            continue
        given = _given_filter(ns.bpf, profile, host_abi(host))
        try:
            report, hit = cache.verify(profile, host, seccomp=given, no_cache=ns.no_cache)
        except SandboxError as e:
            if not ns.json:
                die(str(e))
            docs.append({"profile": name, "error": str(e)})
            status = BAD_INPUT
            continue
        if not report.ok and status == OK:
            status = FINDINGS
        if ns.json:
            docs.append(report.to_dict() | {"cached": hit})
        else:
            print(report.render(color=color()) + (" (cached)" if hit else ""))
    if ns.json:
        ok = status == OK
        print(json.dumps({"ok": ok, "reports": docs}, indent=2))
    return status


def _load_quiet(name: str, docs: list[dict[str, Any]]) -> Any:
    from sandbox.errors import SandboxError
    from sandbox.policy.load import load_profile

    try:
        return load_profile(name)
    except SandboxError as e:
        docs.append({"profile": name, "error": str(e)})
        return None

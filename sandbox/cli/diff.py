"""``sandbox diff A B``: the semantic difference per layer, from the compiled artifacts.

Exit 0 when the profiles enforce the same thing, 1 when they differ (as
diff(1)), 2 when one cannot be loaded.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sandbox.cli.common import FINDINGS, OK, die, load


def register(sub: Any) -> None:
    """Add the ``diff`` subcommand."""
    p = sub.add_parser(
        "diff",
        help="what changes between two profiles, layer by layer",
        description=__doc__.split("\n", 1)[0],
    )
    p.add_argument("a", metavar="A", help="profile name or path")
    p.add_argument("b", metavar="B", help="profile name or path")
    p.add_argument("--json", action="store_true", help="a JSON list of changes")
    p.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    """Print the differences."""
    from sandbox.errors import SandboxError
    from sandbox.host import probe
    from sandbox.verify.diff import diff, render

    a, b = load(ns.a), load(ns.b)
    try:
        changes = diff(a, b, probe())
    except SandboxError as e:
        die(str(e))
    if ns.json:
        print(json.dumps([c.to_dict() for c in changes], indent=2))
    else:
        print(render(changes, f"{ns.a} ({a.source})", f"{ns.b} ({b.source})"), end="")
    return FINDINGS if changes else OK

"""``sandbox explain PROFILE``: every artifact the profile generates, readable.

Sections: policy (resolved, as TOML), seccomp (summary, libseccomp PFC,
``--bpf`` for the disassembly), apparmor, landlock, capabilities, mounts,
limits, differences (where Landlock and AppArmor differ).
"""

from __future__ import annotations

import argparse
from typing import Any

from sandbox.cli.common import OK, die, load


def register(sub: Any) -> None:
    """Add the ``explain`` subcommand."""
    from sandbox.verify.explain import SECTIONS

    p = sub.add_parser(
        "explain",
        help="show every artifact a profile generates",
        description=__doc__.split("\n", 1)[0],
    )
    p.add_argument("profile", metavar="PROFILE", help="profile name or path")
    p.add_argument(
        "--section",
        action="append",
        choices=SECTIONS,
        help="only these sections (repeatable; default: all)",
    )
    p.add_argument("--arch", choices=("x86_64", "x32", "i386"), help="filter ABI to show")
    p.add_argument("--bpf", action="store_true", help="add the BPF disassembly")
    p.set_defaults(handler=run)


def run(ns: argparse.Namespace) -> int:
    """Print the explanation."""
    from sandbox.errors import SandboxError
    from sandbox.host import probe
    from sandbox.verify.explain import SECTIONS, explain

    profile = load(ns.profile)
    try:
        text = explain(
            profile, probe(), sections=ns.section or SECTIONS, arch=ns.arch, show_bpf=ns.bpf
        )
    except SandboxError as e:
        die(str(e))
    print(text, end="")
    return OK

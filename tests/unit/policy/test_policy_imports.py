"""No import cycles in the policy, learn and seccomp packages (issue 16), and one ``locate``.

Every import counts, also those inside functions and under TYPE_CHECKING: a
lazy import is still a cycle in the design (``load`` imported ``names`` late
and ``names`` imported ``load``), only one that fails later.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sandbox
from sandbox.policy.source import locate

ROOT = Path(sandbox.__file__).parent
PACKAGES = ("policy", "learn", "seccomp")


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            # ``from pkg import mod`` imports the module (and runs pkg/__init__,
            # which a module of pkg itself never depends on for a name).
            out |= subs or {node.module}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out & known


def graph() -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in (ROOT / pkg).glob("*.py")]
    known = {_module(p) for p in paths}
    return {_module(p): _imports(p, known) - {_module(p)} for p in paths}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read() -> None:
    g = graph()
    assert "sandbox.policy.source" in g["sandbox.policy.names"]
    assert "sandbox.learn.events" in g["sandbox.learn.capinfer"]


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_locate_skips_comments_but_not_hashes_in_strings(tmp_path: Path) -> None:
    """The copy seccomp.groups had matched a name in a comment; the shared one does not."""
    p = tmp_path / "p.toml"
    p.write_text('# "getppid" was here\n[seccomp]\nallow = ["a#b", "getppid"]  # "x"\n')
    assert locate(str(p), "getppid") == f"{p}:3"
    assert locate(str(p), "x") == str(p)
    assert locate(str(p), "a#b") == f"{p}:3"

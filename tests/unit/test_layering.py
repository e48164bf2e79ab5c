"""The import graph of ``sandbox/``: floors from the bottom up, no cycle, nothing imported upward.

STYLE terms, bottom to top: base < syscalls (and the kernel's tables, the
policy's frozen data types) < policy < concerns < plan < verify < launcher <
runner < entries (library, CLI, learn, doctor). A module may import its own
floor and the floors below it, never above. Every import counts: module
level, inside functions (lazy) and type-only ones under ``TYPE_CHECKING``
(a type a lower floor needs belongs below it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sandbox"

# (floor, module name or package prefix); the longest matching entry wins.
FLOORS: list[tuple[int, str]] = [
    (0, "sandbox"),  # the package face: lazy exports by name only
    (0, "sandbox.errors"),
    (0, "sandbox.codec"),
    (0, "sandbox.cachefile"),
    (0, "sandbox.layers"),
    (0, "sandbox.paths"),
    (1, "sandbox.syscalls"),
    (1, "sandbox.host"),
    (1, "sandbox.caps.names"),  # the kernel's capability table
    (1, "sandbox.seccomp.tables"),  # syscall tables, actions, argument rules, groups:
    (1, "sandbox.seccomp.actions"),  # data and pure functions the loader checks
    (1, "sandbox.seccomp.argrules"),  # names against
    (1, "sandbox.seccomp.spec"),
    (1, "sandbox.seccomp.groups"),
    (1, "sandbox.policy.frozen"),  # the run path's policy type (generated dataclasses)
    (1, "sandbox.policy.snapshot"),
    (1, "sandbox.policy.source"),  # where a key or name stands in a profile file (text only)
    (2, "sandbox.policy"),
    (3, "sandbox.seccomp"),
    (3, "sandbox.apparmor"),
    (3, "sandbox.landlock"),
    (3, "sandbox.caps"),
    (3, "sandbox.cgroups"),
    (3, "sandbox.fs"),
    (3, "sandbox.ns"),
    (3, "sandbox.enforce"),
    (4, "sandbox.plan"),
    (4, "sandbox.compile"),
    (4, "sandbox.ablation"),
    (5, "sandbox.verify"),
    (6, "sandbox.launcher"),
    (7, "sandbox.runner"),
    (8, "sandbox.api"),
    (8, "sandbox.cli"),
    (8, "sandbox.learn"),
    (8, "sandbox.doctor"),
    (8, "sandbox.oci"),
    (8, "sandbox.isolate"),
]
NAMES = [
    "base",
    "syscalls",
    "policy",
    "concerns",
    "plan",
    "verify",
    "launcher",
    "runner",
    "entries",
]


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor(module: str) -> int:
    best = max(
        (e for e in FLOORS if module == e[1] or module.startswith(e[1] + ".")),
        key=lambda e: len(e[1]),
        default=None,
    )
    if best is None:
        raise AssertionError(f"{module} has no floor in FLOORS: add it")
    return best[0]


def imports(path: Path) -> set[str]:
    """Every sandbox module ``path`` imports (``from a import b`` counts as ``a.b`` if a module)."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                cand = f"{base}.{a.name}"
                out.add(cand if _is_module(cand) else base)
    return {m for m in out if m == "sandbox" or m.startswith("sandbox.")}


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PKG.parent / rel).with_suffix(".py").exists() or (
        PKG.parent / rel / "__init__.py"
    ).exists()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in PKG.rglob("*.py")}


def test_every_module_has_a_floor():
    for mod in graph():
        floor(mod)


def test_nothing_is_imported_from_a_higher_floor():
    upward = [
        f"{mod} ({NAMES[floor(mod)]}) imports {dep} ({NAMES[floor(dep)]})"
        for mod, deps in sorted(graph().items())
        for dep in sorted(deps)
        if floor(dep) > floor(mod)
    ]
    assert not upward, "\n".join(upward)


def _cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycle():
    g = graph()
    # A package's __init__ that re-exports its modules is not a cycle partner of them.
    for mod in list(g):
        g[mod] = {d for d in g[mod] if not mod.startswith(d + ".")}
    assert _cycles(g) == []


@pytest.mark.parametrize(
    ("graph_", "cycles"),
    [({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]), ({"a": {"b"}, "b": set()}, [])],
)
def test_the_cycle_finder_finds_cycles(graph_, cycles):
    assert _cycles(graph_) == cycles


def test_the_floor_table_catches_an_upward_import():
    assert floor("sandbox.runner.supervisor") > floor("sandbox.verify.cache")
    assert floor("sandbox.seccomp.build") > floor("sandbox.seccomp.tables")

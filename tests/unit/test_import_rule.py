"""The layering rule of the README's layout, checked on the source's AST.

``consensus/`` is sans-IO: it imports no event loop, network, database, clock,
randomness, threads or logging, and nothing from ``node`` or ``storage``.
``storage/`` imports nothing from ``node``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONSENSUS_FORBIDDEN = frozenset(
    {
        "asyncio",
        "aiohttp",
        "plyvel",
        "time",
        "random",
        "socket",
        "threading",
        "logging",
        "node",
        "storage",
    }
)
STORAGE_FORBIDDEN = frozenset({"node"})


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in ``tree``."""
    found: list[tuple[int, str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found.extend((n.lineno, alias.name) for alias in n.names)
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            found.append((n.lineno, n.module))
        elif (
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name | ast.Attribute)
            and (n.func.id if isinstance(n.func, ast.Name) else n.func.attr)
            in ("__import__", "import_module")
            and n.args
            and isinstance(n.args[0], ast.Constant)
            and isinstance(n.args[0].value, str)
        ):
            found.append((n.lineno, n.args[0].value))
    return found


def violations(package: str, forbidden: frozenset[str]) -> list[str]:
    out: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    return out


def test_checker_sees_every_import_form() -> None:
    """The AST walk finds plain, dotted, from- and dynamic imports (so an empty
    result below means something)."""
    src = (
        "import time\nimport os.path\nfrom asyncio import sleep\n"
        "from . import sibling\nimportlib.import_module('random')\n__import__('socket')\n"
    )
    names = [m for _, m in imported_modules(ast.parse(src))]
    assert names == ["time", "os.path", "asyncio", "random", "socket"]


def test_consensus_package_exists() -> None:
    """The rule is checked against real files, not an empty directory."""
    files = sorted(p.name for p in (ROOT / "consensus").glob("*.py"))
    assert "replica.py" in files and "quorum.py" in files


def test_consensus_is_sans_io() -> None:
    """No consensus/*.py imports asyncio, aiohttp, plyvel, time, random, socket,
    threading, logging, node or storage (failure lists file:line)."""
    bad = violations("consensus", CONSENSUS_FORBIDDEN)
    assert not bad, "consensus/ must stay sans-IO:\n" + "\n".join(bad)


def test_storage_does_not_import_node() -> None:
    """storage/ depends on nothing in node/ (node -> storage, never back)."""
    bad = violations("storage", STORAGE_FORBIDDEN)
    assert not bad, "storage/ must not import node:\n" + "\n".join(bad)


# ------------------------------------------------------------------ node/ in layers
# Bottom to top (docs/architecture.md). A module may import from its own layer
# and the layers below it, never above; ``node`` itself (the version) is below all.
NODE_LAYERS = (
    "node.core",
    "node.net",
    "node.mempool",
    "node.ledger",
    "node.setup",
    "node.engine",
    "node.statesync",
    "node.exchange",
    "node.api",
    "node.ops",
    "node.daemon",
    "node.sim",
    "node.bench",
    "node.cli",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def node_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "node").rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer, or None for ``node`` itself."""
    for i, prefix in enumerate(NODE_LAYERS):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return None


def node_imports(path: Path, known: dict[str, Path]) -> list[tuple[int, str]]:
    """(line, module) of every ``node`` module ``path`` imports, wherever the import
    sits (module level, a function, ``if TYPE_CHECKING``): ``from a import b``
    counts as ``a.b`` when ``a.b`` is a module, else as ``a``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            if n.module.split(".")[0] != "node":
                continue
            for alias in n.names:
                full = f"{n.module}.{alias.name}"
                found.append((n.lineno, full if full in known else n.module))
        elif isinstance(n, ast.Import):
            found.extend((n.lineno, a.name) for a in n.names if a.name.split(".")[0] == "node")
    return found


def test_node_layers_cover_every_module() -> None:
    """Every module of node/ (but the package's own __init__) sits in a layer."""
    loose = [m for m in node_modules() if m != "node" and layer_of(m) is None]
    assert not loose, f"modules outside every layer of NODE_LAYERS: {loose}"


def test_node_imports_follow_the_layers() -> None:
    """No module of node/ imports from a layer above its own (failure lists file:line)."""
    known = node_modules()
    bad: list[str] = []
    for name, path in known.items():
        own = layer_of(name)
        if own is None:
            continue
        for line, target in node_imports(path, known):
            theirs = layer_of(target)
            if theirs is not None and theirs > own:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name} imports {target}")
    assert not bad, "node/ imports against the layer order:\n" + "\n".join(bad)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_finds_cycles() -> None:
    """The finder reports a three-module ring and a self-import, and nothing in a chain."""
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}}
    assert import_cycles(ring) == [["a", "b", "c"], ["d"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}}) == []


def test_node_has_no_import_cycle() -> None:
    """No two modules of node/ import each other, directly or round a ring; imports
    inside functions and ``TYPE_CHECKING`` blocks count too."""
    known = node_modules()
    graph = {
        name: {t for _, t in node_imports(path, known) if t in known and t != "node"}
        for name, path in known.items()
    }
    cycles = import_cycles(graph)
    assert not cycles, f"import cycles in node/: {cycles}"

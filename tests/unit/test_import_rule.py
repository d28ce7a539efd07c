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

"""Paths and small AST helpers shared by the guard-rail tests."""

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFIMPL = ROOT / "refimpl"
BOOK = ROOT / "book"
CORE_PACKAGES = ("raft", "consensus", "sharding", "replication", "index")


def python_files(folder: Path) -> Iterator[Path]:
    """Every ``.py`` file under ``folder``, in a stable order."""
    yield from sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, dotted module name) for every import statement in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            yield node.lineno, node.module


def find_object(tree: ast.Module, dotted: str) -> ast.AST | None:
    """Resolve ``Class.method`` or ``function`` the way Sphinx's ``:pyobject:`` does."""
    body: list[ast.stmt] = tree.body
    found: ast.AST | None = None
    for part in dotted.split("."):
        found = None
        for node in body:
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.name == part
            ):
                found = node
                body = node.body
                break
        if found is None:
            return None
    return found

"""Marked exercise regions in refimpl, and the module sources built from them.

Rules:

* A region is the body (or the tail of the body) of one function, between two comment lines at
  the body's indentation: ``# [exercise: NAME] begin`` and ``# [exercise: NAME] end``. Names are
  unique across refimpl; begin and end come in pairs, in order, never nested.
* The function that owns a region is the innermost ``def`` whose lines contain the begin
  marker; its dotted path (``function`` or ``Class.method``) is how grading finds the learner's
  version. Functions nested in other functions cannot be plugged and are rejected here.
* ``with_body`` rebuilds the module with the region's body replaced by any text, re-indented;
  the starter is ``raise NotImplementedError`` and the mutants under ``tests/exercises`` are
  plausible wrong bodies. Everything outside the region is kept byte for byte.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFIMPL = ROOT / "refimpl"

MARKER_RE = re.compile(
    r"^(?P<indent>[ \t]*)# \[exercise: (?P<name>[^\]]+)\] (?P<edge>begin|end)\s*$"
)

STARTER_BODY = "raise NotImplementedError"


class RegionError(Exception):
    """A marked region is malformed (unbalanced, duplicated or not inside a top-level def)."""


@dataclass(frozen=True, slots=True)
class Region:
    """One marked region: where it is and which function owns it."""

    name: str
    path: Path
    module: str
    begin: int
    """0-based index of the ``begin`` marker line."""
    end: int
    """0-based index of the ``end`` marker line."""
    indent: str
    qualname: str

    @property
    def relpath(self) -> str:
        """The module's path relative to the repository root, with forward slashes."""
        return self.path.relative_to(ROOT).as_posix()

    def source(self) -> str:
        """The current text of the module that holds the region."""
        return self.path.read_text(encoding="utf-8")

    def body(self) -> str:
        """The reference body between the markers, dedented."""
        lines = self.source().splitlines(keepends=True)
        return textwrap.dedent("".join(lines[self.begin + 1 : self.end]))

    def with_body(self, body: str) -> str:
        """The module's source with the region's body replaced by ``body`` (re-indented)."""
        lines = self.source().splitlines(keepends=True)
        text = textwrap.dedent(body).strip("\n")
        new = textwrap.indent(text, self.indent, lambda line: bool(line.strip())) + "\n"
        return "".join(lines[: self.begin + 1]) + new + "".join(lines[self.end :])


def _owner(tree: ast.Module, line_number: int) -> str:
    """Dotted path of the innermost def containing ``line_number`` (1-based)."""
    chain: list[ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = []
    body: list[ast.stmt] = tree.body
    while True:
        inner = next(
            (
                node
                for node in body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                and node.lineno <= line_number <= (node.end_lineno or node.lineno)
            ),
            None,
        )
        if inner is None:
            break
        chain.append(inner)
        body = inner.body
    functions = [i for i, node in enumerate(chain) if not isinstance(node, ast.ClassDef)]
    if not functions:
        raise RegionError(f"region at line {line_number} is not inside a function")
    if len(functions) > 1 or any(not isinstance(n, ast.ClassDef) for n in chain[: functions[0]]):
        raise RegionError(f"region at line {line_number} is inside a nested function")
    return ".".join(node.name for node in chain[: functions[0] + 1])


def regions_in(path: Path) -> list[Region]:
    """Every region in one module, in order."""
    text = path.read_text(encoding="utf-8")
    if "# [exercise:" not in text:
        return []
    parts = path.relative_to(ROOT).parts if path.is_relative_to(ROOT) else (path.name,)
    module = ".".join(Path(*parts).with_suffix("").parts)
    if module.endswith(".__init__"):
        module = module.removesuffix(".__init__")
    tree = ast.parse(text)
    found: list[Region] = []
    open_: tuple[str, int, str] | None = None
    for index, line in enumerate(text.splitlines()):
        match = MARKER_RE.match(line)
        if match is None:
            continue
        name, edge, indent = match["name"], match["edge"], match["indent"]
        if edge == "begin":
            if open_ is not None:
                raise RegionError(f"{path}:{index + 1}: {name!r} begins inside {open_[0]!r}")
            open_ = (name, index, indent)
            continue
        if open_ is None or open_[0] != name:
            raise RegionError(f"{path}:{index + 1}: end of {name!r} without its begin")
        qualname = _owner(tree, open_[1] + 1)
        found.append(Region(name, path, module, open_[1], index, open_[2], qualname))
        open_ = None
    if open_ is not None:
        raise RegionError(f"{path}: region {open_[0]!r} never ends")
    return found


def find_regions(root: Path = REFIMPL) -> dict[str, Region]:
    """All regions under ``root`` by name; a name used twice is an error."""
    regions: dict[str, Region] = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        for region in regions_in(path):
            if region.name in regions:
                other = regions[region.name]
                raise RegionError(f"region {region.name!r} in both {other.path} and {path}")
            regions[region.name] = region
    return regions

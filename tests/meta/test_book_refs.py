"""The book shows refimpl code only by reference (ARCHITECTURE.md, principle 10).

A chapter may include code with ``literalinclude`` and either ``:pyobject:`` or a pair of named
markers (``:start-after:`` / ``:end-before:``); a reference to a missing file, object or marker
fails, and so does a chapter that pastes refimpl code instead of including it.
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.meta._repo import BOOK, REFIMPL, ROOT, find_object, python_files

DIRECTIVE = re.compile(r"^(```+|:::+)\{literalinclude\}\s+(\S+)\s*$")
OPTION = re.compile(r"^:([a-z-]+):\s*(.*)$")
PASTE_WINDOW_LINES = 4


@dataclass(frozen=True)
class Include:
    chapter: Path
    line: int
    target: str
    options: dict[str, str]


def includes(chapter: Path) -> list[Include]:
    """Every literalinclude directive in ``chapter`` with its options."""
    lines = chapter.read_text().splitlines()
    found = []
    for number, text in enumerate(lines, start=1):
        match = DIRECTIVE.match(text.strip())
        if not match:
            continue
        options: dict[str, str] = {}
        for option_line in lines[number:]:
            option = OPTION.match(option_line.strip())
            if not option:
                break
            options[option.group(1)] = option.group(2).strip()
        found.append(Include(chapter, number, match.group(2), options))
    return found


def problems(include: Include) -> list[str]:
    """What is wrong with one include: a missing file, object or marker, or a fragile form."""
    where = f"{include.chapter.name}:{include.line}"
    path = (include.chapter.parent / include.target).resolve()
    if not path.is_file():
        return [f"{where}: {include.target} does not exist"]
    if "lines" in include.options or "emphasize-lines" in include.options:
        return [f"{where}: use :pyobject: or named markers, not line numbers"]
    text = path.read_text()
    found = []
    pyobject = include.options.get("pyobject")
    if pyobject is not None and (
        path.suffix != ".py" or find_object(ast.parse(text), pyobject) is None
    ):
        found.append(f"{where}: {include.options['pyobject']} is not defined in {include.target}")
    for key in ("start-after", "end-before", "start-at", "end-at"):
        if include.options.get(key, "").startswith("#"):
            found.append(
                f"{where}: MyST reads ':{key}: #...' as an empty YAML comment; drop the '#'"
            )
        elif key in include.options and include.options[key] not in text:
            found.append(f"{where}: marker {include.options[key]!r} is not in {include.target}")
    named = {"pyobject", "start-after", "start-at"} & include.options.keys()
    if not named and path.is_relative_to(REFIMPL) and len(text.splitlines()) > 60:
        found.append(f"{where}: include a named object or marker, not a whole long module")
    return found


def chapters() -> list[Path]:
    return sorted(BOOK.glob("*.md"))


def code_windows(text: str) -> set[tuple[str, ...]]:
    """Windows of consecutive substantial stripped lines (ignoring blank and tiny lines)."""
    lines = [
        s for line in text.splitlines() if len(s := line.strip()) >= 12 and not s.startswith("#")
    ]
    return {
        tuple(lines[i : i + PASTE_WINDOW_LINES]) for i in range(len(lines) - PASTE_WINDOW_LINES + 1)
    }


def test_checker_rejects_dangling_references(tmp_path: Path) -> None:
    """A missing object, a missing marker, a missing file and line numbers are all reported."""
    chapter = tmp_path / "book" / "c.md"
    chapter.parent.mkdir()
    real = ROOT / "refimpl" / "cli.py"
    chapter.write_text(
        f"```{{literalinclude}} {real}\n:pyobject: no_such_function\n```\n"
        f"```{{literalinclude}} {real}\n:start-after: [nowhere] begin\n```\n"
        f"```{{literalinclude}} {real}\n:lines: 1-3\n```\n"
        "```{literalinclude} ../missing.py\n:pyobject: x\n```\n"
        f"```{{literalinclude}} {real}\n:pyobject: main\n```\n"
        f"```{{literalinclude}} {real}\n:start-after: # Handler\n```\n"
    )
    reported = [p for inc in includes(chapter) for p in problems(inc)]
    assert len(reported) == 5, reported
    assert "no_such_function" in reported[0]
    assert "[nowhere]" in reported[1]
    assert "line numbers" in reported[2]
    assert "does not exist" in reported[3]
    assert "empty YAML comment" in reported[4]


def test_book_has_chapters() -> None:
    """The book directory holds chapters (a guard against checking nothing)."""
    assert len(chapters()) >= 2


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.name)
def test_every_include_resolves(chapter: Path) -> None:
    """Each literalinclude in the chapter names an existing file and object or marker."""
    reported = [p for inc in includes(chapter) for p in problems(inc)]
    assert reported == []


@pytest.mark.parametrize("chapter", chapters(), ids=lambda p: p.name)
def test_chapter_does_not_paste_refimpl_code(chapter: Path) -> None:
    """No run of 4 substantial lines of refimpl source appears verbatim in a chapter."""
    source_windows: set[tuple[str, ...]] = set()
    for path in python_files(REFIMPL):
        source_windows |= code_windows(path.read_text())
    pasted = code_windows(chapter.read_text()) & source_windows
    assert pasted == set(), f"pasted refimpl code: {sorted(pasted)[:2]}"

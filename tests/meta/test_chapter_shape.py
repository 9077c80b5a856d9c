"""Every chapter says what it assumes and what it shows, and ends with exercises (issue #9).

A chapter is a file of ``_toc.yml`` other than the root and the reference pages (the exercise
index, the appendices, the glossary). Its opening paragraph, right under the title, holds
``**Assumes:**`` and ``**Shows:**``; its last section is ``## Exercises``; and when a graded
exercise builds on it (``book=`` in ``exercises/NN-*/checks_*.py``), that section prints the
list with ``chapter_exercises("<chapter>")``, so a reader finds the graded work where it belongs.
"""

import re
from pathlib import Path

import pytest
import yaml

from exercises._grading.catalog import all_exercises
from tests.meta._repo import ROOT

REFERENCE_PAGES = {
    "book/exercises",
    "book/appendix_differences",
    "book/glossary",
    "book/appendix_traceability",
}


def toc_chapters() -> list[str]:
    """The chapters of ``_toc.yml`` in order, without the root and the reference pages."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [entry["file"] for entry in toc.get("chapters", [])]
    for part in toc.get("parts", []):
        files.extend(entry["file"] for entry in part.get("chapters", []))
    return [f for f in files if f not in REFERENCE_PAGES]


def shape_problems(chapter: str, text: str, graded: bool) -> list[str]:
    """What a chapter's text lacks: the opening statement, the closing exercises."""
    found = []
    lines = text.splitlines()
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is None:
        return [f"{chapter}: no '# ' title"]
    following = lines[title + 1 :]
    first_heading = next(
        (i for i, line in enumerate(following) if line.startswith("## ")), len(following)
    )
    opening = "\n".join(following[:first_heading])
    for word in ("**Assumes:**", "**Shows:**"):
        if word not in opening:
            found.append(f"{chapter}: the text before the first section has no {word}")
    headings = [line for line in lines if re.match(r"^## ", line)]
    if not headings or headings[-1].strip() != "## Exercises":
        found.append(f"{chapter}: the last section must be '## Exercises'")
        return found
    tail = text[text.rindex("## Exercises") :]
    if graded and f'chapter_exercises("{chapter}.md")' not in tail:
        found.append(
            f'{chapter}: a graded exercise builds on it; call chapter_exercises("{chapter}.md")'
        )
    return found


def test_checker_reports_a_chapter_without_its_parts() -> None:
    """A chapter with no opening statement, or not ending with exercises, is reported."""
    bare = "# Title\n\nSome words.\n\n## Section\n\ntext\n"
    assert len(shape_problems("book/x", bare, graded=False)) == 3
    late = "# T\n\n**Assumes:** a. **Shows:** b.\n\n## Exercises\n\n1. x\n\n## After\n"
    assert shape_problems("book/x", late, graded=False) == [
        "book/x: the last section must be '## Exercises'"
    ]
    prose = "# T\n\n**Assumes:** a. **Shows:** b.\n\n## Exercises\n\n1. do it\n"
    assert shape_problems("book/x", prose, graded=False) == []
    assert len(shape_problems("book/x", prose, graded=True)) == 1


def _graded_chapters() -> set[str]:
    return {exercise.book.split(" ")[0].removesuffix(".md") for exercise in all_exercises()}


@pytest.mark.parametrize("chapter", toc_chapters())
def test_chapter_states_its_scope_and_ends_with_exercises(chapter: str) -> None:
    """The chapter opens with Assumes/Shows and its last section is its exercises."""
    text = (ROOT / f"{chapter}.md").read_text()
    assert shape_problems(chapter, text, chapter in _graded_chapters()) == []


def test_every_graded_exercise_names_a_chapter_of_the_book() -> None:
    """The chapter an exercise builds on is in the table of contents."""
    chapters = set(toc_chapters())
    assert _graded_chapters() <= chapters, _graded_chapters() - chapters
    assert all(Path(ROOT / f"{c}.md").is_file() for c in chapters)

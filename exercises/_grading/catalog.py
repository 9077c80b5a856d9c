"""Find the exercises: every ``exercises/NN-topic/`` folder with a ``checks_*.py`` file.

Rules: folders are graded in the order of their number; a checks file is imported under
``exercises._checks.NN_topic`` and must define ``EXERCISE``; the exercise's marker must name a
region that exists in refimpl. Selecting by name accepts the folder (``03-request-vote``), its
number (``03`` or ``3``), the marker (``request-vote``) or a unique prefix of any of them.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from exercises._grading.api import Exercise
from exercises._grading.regions import ROOT, Region, find_regions

EXERCISES = ROOT / "exercises"
FOLDER_RE = re.compile(r"^(?P<number>\d\d)-[a-z0-9-]+$")


class CatalogError(Exception):
    """An exercise folder is malformed or a name selects nothing."""


def _load_checks(folder: Path) -> Exercise:
    files = sorted(folder.glob("checks_*.py"))
    if len(files) != 1:
        raise CatalogError(f"{folder} must hold exactly one checks_*.py file, found {len(files)}")
    name = "exercises._checks." + folder.name.replace("-", "_")
    if name in sys.modules:
        module = sys.modules[name]
    else:
        spec = importlib.util.spec_from_file_location(name, files[0])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise CatalogError(f"{files[0]} does not import: {type(exc).__name__}: {exc}") from exc
    exercise = getattr(module, "EXERCISE", None)
    if not isinstance(exercise, Exercise):
        raise CatalogError(f"{files[0]} does not define EXERCISE = Exercise(...)")
    exercise.folder = folder
    return exercise


def all_exercises(problems: list[str] | None = None) -> list[Exercise]:
    """Every exercise, in folder order.

    A folder whose checks do not load raises :class:`CatalogError`, unless ``problems`` is
    given: then the message is appended there and the other exercises are still returned.
    """
    folders = sorted(p for p in EXERCISES.iterdir() if p.is_dir() and FOLDER_RE.match(p.name))
    found = []
    for folder in folders:
        try:
            found.append(_load_checks(folder))
        except CatalogError as exc:
            if problems is None:
                raise
            problems.append(str(exc))
    return found


def region_of(exercise: Exercise, regions: dict[str, Region] | None = None) -> Region:
    """The refimpl region an exercise is built on."""
    regions = find_regions() if regions is None else regions
    if exercise.marker not in regions:
        raise CatalogError(
            f"{exercise.slug}: no region '# [exercise: {exercise.marker}]' in refimpl"
        )
    return regions[exercise.marker]


def select(exercises: list[Exercise], names: list[str]) -> list[Exercise]:
    """The exercises named by ``names`` (all of them if ``names`` is empty)."""
    if not names:
        return exercises
    chosen: list[Exercise] = []
    for name in names:
        wanted = name.strip("/").split("/")[-1].lower()
        matches = [
            ex
            for ex in exercises
            if wanted in (ex.slug, ex.marker, ex.slug[:2], str(int(ex.slug[:2])), ex.slug[3:])
        ]
        if not matches:
            matches = [
                ex for ex in exercises if ex.slug.startswith(wanted) or ex.marker.startswith(wanted)
            ]
        if len(matches) != 1:
            known = ", ".join(ex.slug for ex in exercises)
            raise CatalogError(f"{name!r} matches {len(matches)} exercises; known: {known}")
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def chapter_exercises(chapter: str) -> str:
    """The exercises that build on ``chapter`` (e.g. ``"book/hashing.md"``), as text for the
    end of that chapter: folder, title, points and the command that grades it."""
    lines = []
    for exercise in all_exercises():
        if exercise.book.split(" ")[0] == chapter:
            lines.append(
                f"{exercise.slug}: {exercise.title} ({exercise.points} points)\n"
                f"    write exercises/{exercise.slug}/{exercise.starter_path.name}, "
                f"then run: python -m exercises.grade {exercise.slug}"
            )
    return "\n".join(lines) or f"(no exercise builds on {chapter} yet)"

"""Every exercise documents its points: the README title and table match the graded checks."""

import re

from exercises._grading.catalog import all_exercises


def test_readme_title_and_table_match_the_checks() -> None:
    """README.md states the exercise's total points and lists every check with its points."""
    for exercise in all_exercises():
        assert exercise.folder is not None
        text = (exercise.folder / "README.md").read_text(encoding="utf-8")
        title = text.splitlines()[0]
        assert re.search(rf"\({exercise.points} points\)$", title), (exercise.slug, title)
        for check in exercise.checks:
            row = f"| `{check.name}` | {check.points} |"
            assert row in text, f"{exercise.slug}: README lacks the row {row!r}"
        assert exercise.marker and exercise.title and exercise.book


def test_index_lists_every_exercise_with_its_points() -> None:
    """exercises/README.md has one row per exercise with its points, and the right total."""
    exercises = all_exercises()
    assert exercises and exercises[0].folder is not None
    text = (exercises[0].folder.parent / "README.md").read_text(encoding="utf-8")
    for exercise in exercises:
        row = f"| [{exercise.slug}]({exercise.slug}/README.md) | {exercise.title} | {exercise.points} |"
        assert row in text, f"exercises/README.md lacks {row!r}"
    assert f"| **total** | | **{sum(e.points for e in exercises)}** |" in text


def test_a_chapter_can_list_its_exercises() -> None:
    """chapter_exercises names each exercise that builds on a chapter, with its points."""
    from exercises._grading.catalog import chapter_exercises

    for exercise in all_exercises():
        text = chapter_exercises(exercise.book.split(" ")[0])
        assert f"{exercise.slug}: {exercise.title} ({exercise.points} points)" in text
    assert chapter_exercises("book/nowhere.md") == "(no exercise builds on book/nowhere.md yet)"

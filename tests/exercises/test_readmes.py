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

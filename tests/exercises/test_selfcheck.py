"""The graders grade: refimpl scores 100 %, starters fail every check, mutants are caught.

The selfcheck runs in a subprocess so the grader's own output never becomes the last line of
the test run. One run serves every test in this module.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exercises._grading.catalog import all_exercises
from exercises._grading.regions import ROOT

MIN_CATCH_RATE = 0.9


@pytest.fixture(scope="module")
def selfcheck(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("selfcheck") / "selfcheck.json"
    cmd = [sys.executable, "-m", "exercises._grading.selfcheck", "--jobs", "2", "--json", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert out.exists(), f"selfcheck wrote no results:\n{done.stdout}\n{done.stderr}"
    rows: list[dict[str, Any]] = json.loads(Path(out).read_text())
    assert not [r["slug"] for r in rows if r.get("crashed")], done.stdout
    return rows


def test_every_exercise_is_selfchecked(selfcheck: list[dict[str, Any]]) -> None:
    """The selfcheck covered every exercise folder."""
    assert [r["slug"] for r in selfcheck] == [ex.slug for ex in all_exercises()]


def test_reference_scores_full_marks(selfcheck: list[dict[str, Any]]) -> None:
    """refimpl's own code, plugged in like a learner's file, passes every check."""
    assert {r["slug"]: r["reference_failed"] for r in selfcheck if r["reference_failed"]} == {}


def test_untouched_starter_fails_every_single_check(selfcheck: list[dict[str, Any]]) -> None:
    """No check passes on ``raise NotImplementedError``: each one really calls the learner's code."""
    assert {r["slug"]: r["starter_passed"] for r in selfcheck if r["starter_passed"]} == {}


def test_mutants_apply_and_most_are_caught(selfcheck: list[dict[str, Any]]) -> None:
    """Every mutant still applies, and at least 90 % of the plausible learner bugs fail a check."""
    mutants = [m for r in selfcheck for m in r["mutants"]]
    assert [m["name"] for m in mutants if "stale" in m] == []
    missed = [
        f"{r['slug']}:{m['name']}" for r in selfcheck for m in r["mutants"] if not m["caught_by"]
    ]
    caught = len(mutants) - len(missed)
    assert len(mutants) >= len(selfcheck), "at least one mutant per exercise on average"
    assert caught / len(mutants) >= MIN_CATCH_RATE, (
        f"caught {caught}/{len(mutants)}; missed {missed}"
    )

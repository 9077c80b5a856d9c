"""The learner's command: score table, failure details, time limits, determinism, clean unplugging."""

import subprocess
import sys
import time
from pathlib import Path

from exercises._grading.catalog import all_exercises, region_of, select
from exercises._grading.regions import ROOT
from exercises._grading.runner import run_exercise
from refimpl.ids import ShardId
from refimpl.sharding import ring

RING = "01-hash-ring"


def grade(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "exercises.grade", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def ring_variant(tmp_path: Path, body: str) -> Path:
    (exercise,) = select(all_exercises(), [RING])
    path = tmp_path / "variant.py"
    path.write_text(region_of(exercise).with_body(body))
    return path


def test_reference_run_prints_full_score_and_exits_zero() -> None:
    """Grading refimpl's own code ends with a 100 % total and exit status 0."""
    done = grade(RING, "--impl", "reference")
    assert done.returncode == 0, done.stdout
    assert done.stdout.rstrip().splitlines()[-1].endswith("= 100 %")


def test_starter_run_names_each_failure_and_exits_one() -> None:
    """The untouched starter scores 0 and every check says the body is not written yet."""
    done = grade(RING)
    assert done.returncode == 1
    (exercise,) = select(all_exercises(), [RING])
    assert done.stdout.count("NotImplementedError") >= len(exercise.checks)
    assert f"0/{exercise.points}" in done.stdout.splitlines()[-1]


def test_failure_shows_smallest_input_and_is_deterministic(tmp_path: Path) -> None:
    """A wrong lookup is reported with a shrunk example, identically on two runs."""
    wrong = ring_variant(tmp_path, "return owners[-1]")
    first, second = grade(RING, "--impl", str(wrong)), grade(RING, "--impl", str(wrong))
    assert first.returncode == 1
    assert "smallest failing input" in first.stdout
    assert first.stdout == second.stdout


def test_infinite_loop_inside_hypothesis_times_out(tmp_path: Path) -> None:
    """A learner's infinite loop fails each check at its time limit instead of hanging."""
    looping = ring_variant(tmp_path, "while True:\n    pass")
    start = time.monotonic()
    done = grade(RING, "--impl", str(looping), "--timeout-scale", "0.03")
    assert time.monotonic() - start < 30
    (exercise,) = select(all_exercises(), [RING])
    assert done.stdout.count("no answer within") == len(exercise.checks)


def test_grading_unplugs_the_learner_function(tmp_path: Path) -> None:
    """After a run, refimpl's own function is back in place."""
    (exercise,) = select(all_exercises(), [RING])
    before = ring.lookup
    result = run_exercise(
        exercise, region_of(exercise), ring_variant(tmp_path, "return owners[0]"), "x"
    )
    assert result.points < result.points_max
    assert ring.lookup is before
    assert ring.HashRing([ShardId(0)]).shard_for(1) == 0

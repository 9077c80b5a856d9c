"""Run an exercise's checks against one implementation and describe every failure.

Rules:

* Every check runs under a CPU-time limit (``ITIMER_PROF``, so a busy machine does not fail a
  correct answer) and a wall-clock backstop (``ITIMER_REAL``, for code that waits): when either
  fires the handler raises :class:`GradingTimeout`, a ``BaseException`` subclass, so neither hypothesis (which catches
  ``Exception`` to shrink and replay) nor a learner's ``except Exception`` can swallow it, and an
  infinite loop ends. (pytest-timeout's ``pytest.fail`` is caught by hypothesis, which then replays
  the example with no alarm left: the run hangs.)
* A failure records the exception, the smallest failing input hypothesis found (its
  "Failing test case" note), the seed and transcript a :class:`CheckFailedError` carries, notes
  added with ``hypothesis.note``, and the lines of the learner's file on the traceback.
* Results are plain data so the selfcheck can compare runs and write them as JSON.
"""

from __future__ import annotations

import signal
import time
import traceback
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from exercises._grading import api
from exercises._grading.api import CheckFailedError, Exercise
from exercises._grading.plug import LearnerImportError, plugged
from exercises._grading.regions import ROOT, Region

WALL_CLOCK_FACTOR = 6
"""The wall-clock backstop is this many times a check's CPU-time limit."""


class GradingTimeout(BaseException):
    """A check ran past its time limit (raised from the ``SIGPROF`` or ``SIGALRM`` handler)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a check failed, in the words a learner needs."""

    kind: str
    """``error``, ``not-implemented``, ``timeout`` or ``import``."""
    message: str
    example: str | None = None
    seed: int | None = None
    transcript: str | None = None
    where: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome."""

    name: str
    doc: str
    points: int
    passed: bool
    seconds: float
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class ExerciseResult:
    """All checks of one exercise against one implementation."""

    slug: str
    marker: str
    implementation: str
    checks: list[CheckResult]

    @property
    def points(self) -> int:
        """Points earned."""
        return sum(c.points for c in self.checks if c.passed)

    @property
    def points_max(self) -> int:
        """Points available."""
        return sum(c.points for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "points": self.points, "points_max": self.points_max}


def _on_alarm(signum: int, frame: types.FrameType | None) -> None:
    raise GradingTimeout


def _learner_lines(exc: BaseException, learner_path: Path) -> list[str]:
    """``file:line in function: code`` for each frame of the learner's file on the traceback."""
    lines = []
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == learner_path.resolve():
            shown = _display_path(learner_path)
            lines.append(f"{shown}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}")
    return lines[-3:]


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _failure(exc: BaseException, learner_path: Path, timeout_s: float) -> Failure:
    notes = [str(n) for n in getattr(exc, "__notes__", [])]
    example = next((n for n in notes if n.startswith(("Failing", "Falsifying"))), None)
    extra = [n for n in notes if n is not example and not n.startswith("You can reproduce")]
    transcript = "\n".join(extra) or None
    seed = None
    if isinstance(exc, CheckFailedError):
        seed = exc.seed
        transcript = "\n".join(filter(None, [exc.transcript, transcript])) or None
    where = _learner_lines(exc, learner_path)
    if isinstance(exc, GradingTimeout):
        message = (
            f"no answer within {timeout_s:g} s of CPU time (an infinite loop, or far too slow)"
        )
        return Failure("timeout", message, example, seed, transcript, where)
    if isinstance(exc, NotImplementedError):
        return Failure(
            "not-implemented",
            "NotImplementedError: the body is not written yet",
            example,
            seed,
            transcript,
            where,
        )
    message = f"{type(exc).__name__}: {exc}".rstrip(": ")
    return Failure("error", message, example, seed, transcript, where)


def run_check(check: api.Check, learner_path: Path, timeout_scale: float = 1.0) -> CheckResult:
    """Run one check with its time limit; never raises except on Ctrl-C."""
    timeout_s = check.timeout_s * timeout_scale
    previous_prof = signal.signal(signal.SIGPROF, _on_alarm)
    previous_real = signal.signal(signal.SIGALRM, _on_alarm)
    start = time.perf_counter()
    try:
        # The limit is on CPU time (so a loaded machine does not fail a correct answer), with
        # a wall-clock backstop for code that waits instead of computing.
        signal.setitimer(signal.ITIMER_PROF, timeout_s)
        signal.setitimer(signal.ITIMER_REAL, WALL_CLOCK_FACTOR * timeout_s)
        try:
            check.func()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        failure = _failure(exc, learner_path, timeout_s)
        seconds = time.perf_counter() - start
        return CheckResult(check.name, check.doc, check.points, False, seconds, failure)
    finally:
        signal.signal(signal.SIGPROF, previous_prof)
        signal.signal(signal.SIGALRM, previous_real)
    return CheckResult(check.name, check.doc, check.points, True, time.perf_counter() - start)


def run_exercise(
    exercise: Exercise,
    region: Region,
    learner_path: Path,
    implementation: str,
    timeout_scale: float = 1.0,
    *,
    stop_at_first_failure: bool = False,
) -> ExerciseResult:
    """Plug ``learner_path`` in for ``region`` and run every check of ``exercise`` (or, with
    ``stop_at_first_failure``, only up to the first that fails: the selfcheck's mutant runs)."""
    results: list[CheckResult] = []
    try:
        with plugged(region, learner_path) as plug:
            api._current.append(plug)
            try:
                for check in exercise.checks:
                    results.append(run_check(check, learner_path, timeout_scale))
                    if stop_at_first_failure and not results[-1].passed:
                        break
            finally:
                api._current.pop()
    except LearnerImportError as exc:
        failure = Failure("import", str(exc))
        results = [
            CheckResult(c.name, c.doc, c.points, False, 0.0, failure) for c in exercise.checks
        ]
    return ExerciseResult(exercise.slug, exercise.marker, implementation, results)

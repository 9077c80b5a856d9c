"""What an exercise's ``checks_*.py`` file uses: the exercise, the check decorator, failures.

Rules:

* An exercise folder ``exercises/NN-topic/`` has one ``checks_*.py`` that defines ``EXERCISE``
  (an :class:`Exercise`) and registers checks with ``@EXERCISE.check(points=…)``. A check is a
  plain function with no arguments; it drives refimpl as usual (the learner's function is
  already plugged in) and raises ``AssertionError`` (or :class:`CheckFailedError`, which carries a
  seed and a transcript) when the rule is broken.
* Property checks use ``@given`` with :func:`grading_settings`: derandomized, no example
  database, no deadline, one bug reported (the smallest found by shrinking). Use
  ``hypothesis.note`` to attach a transcript to the failing example.
* Checks must assert exact values: an untouched starter (which raises ``NotImplementedError``)
  must fail every single check, and the selfcheck enforces it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings

from exercises._grading.plug import Plugged

DEFAULT_TIMEOUT_S = 10.0
NO_SHRINK_ENV = "EXERCISES_GRADING_NO_SHRINK"
"""Set by the selfcheck: property checks then skip hypothesis's shrinking phase."""


class CheckFailedError(AssertionError):
    """A broken rule, with what a learner needs to reproduce it."""

    def __init__(
        self,
        message: str,
        *,
        seed: int | None = None,
        transcript: str | None = None,
        size: int | None = None,
    ) -> None:
        super().__init__(message)
        self.seed = seed
        self.transcript = transcript
        self.size = len((transcript or "").splitlines()) if size is None else size
        """How big the failing run is (events); :func:`smallest_failure` keeps the smallest."""


@dataclass(frozen=True, slots=True)
class Check:
    """One graded check."""

    name: str
    points: int
    func: Callable[[], None]
    doc: str
    timeout_s: float


@dataclass
class Exercise:
    """An exercise: the region it is built on, its title, the book section, its checks."""

    marker: str
    title: str
    book: str
    """The book chapter (and section) the exercise builds on."""
    checks: list[Check] = field(default_factory=list)
    folder: Path | None = None
    """Set by the loader: ``exercises/NN-topic``."""

    @property
    def slug(self) -> str:
        """The folder name, ``NN-topic``."""
        assert self.folder is not None, "exercise not loaded from its folder"
        return self.folder.name

    @property
    def points(self) -> int:
        """Points for the whole exercise: the sum over its checks."""
        return sum(check.points for check in self.checks)

    @property
    def starter_path(self) -> Path:
        """The learner's file: ``exercises/NN-topic/<marker>.py``."""
        assert self.folder is not None, "exercise not loaded from its folder"
        return self.folder / f"{self.marker.replace('-', '_')}.py"

    def check(
        self, points: int, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> Callable[[Callable[[], None]], Callable[[], None]]:
        """Register a check worth ``points``; it fails if it runs longer than ``timeout_s``."""
        assert points > 0, "a check is worth at least one point"

        def register(func: Callable[[], None]) -> Callable[[], None]:
            doc = (func.__doc__ or "").strip().splitlines()
            self.checks.append(Check(func.__name__, points, func, doc[0] if doc else "", timeout_s))
            return func

        return register


_current: list[Plugged] = []


def plugged_now() -> Plugged:
    """The plug of the exercise being graded (its ``reference`` is the model solution)."""
    assert _current, "no exercise is being graded"
    return _current[-1]


def smallest_failure(
    seeds: Iterable[int], run: Callable[[int], None], *, keep_looking: int = 50
) -> None:
    """Run ``run(seed)`` for each seed; on failures, raise the one with the shortest transcript.

    After the first failing seed, up to ``keep_looking`` more seeds are tried: among the
    failures the one with the fewest transcript lines is reported (the simulator's way of
    shrinking: a shorter schedule that breaks the same rule), with the count of failing seeds.
    """
    failures: list[CheckFailedError] = []
    tried = 0
    for seed in seeds:
        if failures and tried >= keep_looking:
            break
        try:
            run(seed)
        except CheckFailedError as exc:
            failures.append(exc)
        if failures:
            tried += 1
    if not failures:
        return
    best = min(failures, key=lambda e: e.size)
    message = (
        f"{best.args[0]}\n({len(failures)} of the seeds tried failed; the shortest run is shown)"
    )
    raise CheckFailedError(
        message, seed=best.seed, transcript=best.transcript, size=best.size
    ) from best


def grading_settings(max_examples: int = 100, *, shrink: bool = True) -> settings:
    """Hypothesis settings for graded property checks (deterministic, see the module rules)."""
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    # The selfcheck only needs to know *whether* a check fails, not the smallest input.
    shrink = shrink and not os.environ.get(NO_SHRINK_ENV)
    return settings(
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=max_examples,
        print_blob=False,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=[*phases, Phase.shrink] if shrink else phases,
    )

"""Grade the exercises: ``python -m exercises.grade [name …]`` (also ``refimpl grade``).

Rules: offline and deterministic; each named exercise (all of them by default) is graded by
plugging the learner's file ``exercises/NN-topic/<marker>.py`` into refimpl and running its
checks. The output lists every failure (message, seed, smallest failing input, transcript and
the lines of your code involved), then a score table. The exit status is 0 only when every
check passes.

``--impl reference`` grades refimpl's own code (it must score 100 %); ``--impl PATH`` grades
another file for a single exercise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from exercises._grading.catalog import CatalogError, all_exercises, region_of, select
from exercises._grading.regions import find_regions
from exercises._grading.report import describe_exercise, score_table
from exercises._grading.runner import ExerciseResult, run_exercise


def build_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the grader's options to ``parser``."""
    parser.add_argument("names", nargs="*", help="exercises to grade (folder, number or marker)")
    parser.add_argument(
        "--impl",
        default="learner",
        help="'learner' (the files in exercises/), 'reference' (refimpl), or a file path",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--times", action="store_true", help="show how long each check took")
    parser.add_argument("--list", action="store_true", help="list the exercises and their points")
    parser.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every check's time limit"
    )
    return parser


def _listing() -> str:
    lines = []
    for ex in all_exercises():
        lines.append(f"{ex.slug:<26} {ex.points:>3} pt  {ex.title}")
        lines.extend(f"    {c.name:<40} {c.points:>2} pt  {c.doc}" for c in ex.checks)
    return "\n".join(lines)


def grade(args: argparse.Namespace) -> int:
    """Run the grader with parsed arguments; returns the exit status."""
    if args.list:
        print(_listing())
        return 0
    problems: list[str] = []
    try:
        chosen = select(all_exercises(problems), list(args.names))
        regions = find_regions()
        pairs = [(ex, region_of(ex, regions)) for ex in chosen]
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.impl not in ("learner", "reference") and len(pairs) != 1:
        print("error: --impl PATH grades exactly one exercise; name it", file=sys.stderr)
        return 2
    results: list[ExerciseResult] = []
    for exercise, region in pairs:
        if args.impl == "learner":
            path = exercise.starter_path
        elif args.impl == "reference":
            path = region.path
        else:
            path = Path(args.impl)
        result = run_exercise(exercise, region, path, args.impl, args.timeout_scale)
        results.append(result)
        print(describe_exercise(result, times=args.times), flush=True)
        print(flush=True)
    for problem in problems:
        print(f"error: an exercise could not be loaded: {problem}")
    print(score_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1))
    return 0 if not problems and all(r.points == r.points_max for r in results) else 1


def add_subcommand(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Wire ``refimpl grade`` into the CLI."""
    parser = subparsers.add_parser("grade", help="grade the exercises (see exercises/)")
    build_parser(parser)
    parser.set_defaults(handler=grade)


def main(argv: list[str] | None = None) -> int:
    """``python -m exercises.grade``."""
    parser = build_parser(argparse.ArgumentParser(prog="python -m exercises.grade"))
    return grade(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

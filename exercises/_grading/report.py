"""Print grading results for a learner: every failure in detail, then the score table.

Rules: the output is plain text, identical from run to run for the same code (times are left
out unless asked for), and the score table comes last so it is what a learner sees first.
"""

from __future__ import annotations

import textwrap

from exercises._grading.runner import CheckResult, ExerciseResult


def _indent(text: str, prefix: str = "      ") -> str:
    return textwrap.indent(text.rstrip("\n"), prefix)


def describe_failure(result: CheckResult) -> str:
    """A failure block: what broke, the seed, the smallest input, the transcript, your lines."""
    failure = result.failure
    assert failure is not None, "describe_failure on a passing check"
    out = [f"  FAIL {result.name} ({result.points} pt) - {result.doc}"]
    out.append(_indent(failure.message, "      "))
    if failure.seed is not None:
        out.append(f"    seed: {failure.seed}")
    if failure.example is not None:
        out.append("    smallest failing input (hypothesis, shrunk, derandomized):")
        out.append(_indent(failure.example))
    if failure.transcript:
        out.append("    transcript:")
        out.append(_indent(failure.transcript))
    if failure.where:
        out.append("    in your code:")
        out.extend(f"      {line}" for line in failure.where)
    return "\n".join(out)


def describe_exercise(result: ExerciseResult, *, times: bool = False) -> str:
    """Every check of one exercise: a line per pass, a block per failure."""
    passed = sum(c.passed for c in result.checks)
    lines = [
        f"== {result.slug} ({result.marker}): {passed}/{len(result.checks)} checks, "
        f"{result.points}/{result.points_max} points"
    ]
    for check in result.checks:
        took = f" [{check.seconds:.2f} s]" if times else ""
        if check.passed:
            lines.append(f"  ok   {check.name} ({check.points} pt){took}")
        else:
            lines.append(describe_failure(check) + took)
    return "\n".join(lines)


def score_table(results: list[ExerciseResult]) -> str:
    """The table: exercise, checks passed, points; and the total."""
    width = max([len("exercise"), *(len(r.slug) for r in results)])
    lines = [f"{'exercise':<{width}}  {'checks':>7}  {'points':>9}"]
    lines.append("-" * len(lines[0]))
    for r in results:
        checks = f"{sum(c.passed for c in r.checks)}/{len(r.checks)}"
        lines.append(f"{r.slug:<{width}}  {checks:>7}  {r.points:>4}/{r.points_max:<4}")
    earned = sum(r.points for r in results)
    total = sum(r.points_max for r in results)
    share = 100 * earned / total if total else 0.0
    lines.append("-" * len(lines[0]))
    lines.append(f"{'TOTAL':<{width}}  {'':>7}  {earned:>4}/{total:<4}  = {share:.0f} %")
    return "\n".join(lines)

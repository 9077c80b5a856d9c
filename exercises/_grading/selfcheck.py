"""The proof that the graders grade: ``python -m exercises._grading.selfcheck``.

For every exercise (or the ones named):

1. refimpl's own code, plugged in through the same path as a learner's file, scores 100 %;
2. the untouched starter fails *every single* check (a check that passes on
   ``raise NotImplementedError`` grades nothing);
3. each hand-written mutant in ``tests/exercises/mutants/`` fails at least one check (its
   checks run in order and stop at the first failure, which is all "caught" needs).

It prints one line per exercise and the mutant catch rate, optionally writes JSON, and exits 0
only if 1 and 2 hold everywhere, no mutant is stale and at least ``--min-catch-rate`` of the
mutants are caught. ``--jobs N`` grades exercises in N worker processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from exercises._grading.api import NO_SHRINK_ENV, Exercise
from exercises._grading.catalog import all_exercises, region_of, select
from exercises._grading.mutants import StaleMutantError, mutants_for
from exercises._grading.regions import Region, find_regions
from exercises._grading.runner import run_exercise


def check_exercise(exercise: Exercise, region: Region, workdir: Path) -> dict[str, Any]:
    """Reference, starter and mutant runs of one exercise, as JSON-ready data."""
    start = time.perf_counter()
    reference = run_exercise(exercise, region, region.path, "reference")
    starter = run_exercise(exercise, region, exercise.starter_path, "starter")
    mutants: list[dict[str, Any]] = []
    for mutant in mutants_for(exercise.marker):
        try:
            source = mutant.source(region)
        except StaleMutantError as exc:
            mutants.append({"name": mutant.name, "bug": mutant.bug, "stale": str(exc)})
            continue
        if source == region.source():
            mutants.append({"name": mutant.name, "bug": mutant.bug, "stale": "same as refimpl"})
            continue
        try:
            compile(source, f"<mutant {mutant.name}>", "exec")
        except SyntaxError as exc:
            mutants.append(
                {"name": mutant.name, "bug": mutant.bug, "stale": f"does not compile: {exc}"}
            )
            continue
        path = workdir / f"{exercise.marker.replace('-', '_')}__{mutant.name}.py"
        path.write_text(source, encoding="utf-8")
        result = run_exercise(
            exercise, region, path, f"mutant {mutant.name}", stop_at_first_failure=True
        )
        failed = [c.name for c in result.checks if not c.passed]
        kinds = {c.failure.kind for c in result.checks if c.failure is not None}
        if "import" in kinds:
            mutants.append({"name": mutant.name, "bug": mutant.bug, "stale": "does not import"})
            continue
        mutants.append({"name": mutant.name, "bug": mutant.bug, "caught_by": failed})
    return {
        "slug": exercise.slug,
        "points": exercise.points,
        "reference_failed": [
            {"check": c.name, "failure": c.failure and c.failure.message}
            for c in reference.checks
            if not c.passed
        ],
        "starter_passed": [c.name for c in starter.checks if c.passed],
        "checks": len(exercise.checks),
        "mutants": mutants,
        "seconds": round(time.perf_counter() - start, 2),
    }


def _in_subprocess(slug: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "exercises._grading.selfcheck", slug, "--json", str(out)]
        subprocess.run(cmd, capture_output=True, check=False)
        if not out.exists():
            return {"slug": slug, "crashed": True}
        loaded: list[dict[str, Any]] = json.loads(out.read_text())
        return loaded[0]


def summarize(rows: list[dict[str, Any]], min_catch_rate: float) -> tuple[str, bool]:
    """Human-readable lines and the verdict."""
    ok = True
    lines = []
    caught = total = 0
    for row in rows:
        if row.get("crashed"):
            lines.append(f"{row['slug']}: the selfcheck process crashed")
            ok = False
            continue
        ref_ok = not row["reference_failed"]
        starter_ok = not row["starter_passed"]
        stale = [m["name"] for m in row["mutants"] if "stale" in m]
        got = [m for m in row["mutants"] if m.get("caught_by")]
        missed = [m["name"] for m in row["mutants"] if "caught_by" in m and not m["caught_by"]]
        caught += len(got)
        total += len(row["mutants"])
        ok = ok and ref_ok and starter_ok and not stale
        lines.append(
            f"{row['slug']:<24} reference {'100 %' if ref_ok else 'FAILS'}  "
            f"starter {'fails all ' + str(row['checks']) if starter_ok else 'PASSES SOME'}  "
            f"mutants {len(got)}/{len(row['mutants'])}  ({row['seconds']} s)"
        )
        lines.extend(
            f"    reference fails {f['check']}: {f['failure']}" for f in row["reference_failed"]
        )
        lines.extend(f"    starter passes {name}" for name in row["starter_passed"])
        lines.extend(f"    mutant not caught: {name}" for name in missed)
        lines.extend(f"    mutant stale: {name}" for name in stale)
    rate = caught / total if total else 1.0
    ok = ok and rate >= min_catch_rate
    lines.append(f"mutant catch rate: {caught}/{total} = {100 * rate:.0f} %")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    """Run the selfcheck; exit 0 only if every gate holds."""
    parser = argparse.ArgumentParser(prog="python -m exercises._grading.selfcheck")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--min-catch-rate", type=float, default=0.9)
    args = parser.parse_args(argv)
    os.environ[NO_SHRINK_ENV] = "1"  # before the checks are imported; workers inherit it
    chosen = select(all_exercises(), list(args.names))
    if args.jobs > 1:
        with ThreadPoolExecutor(args.jobs) as pool:
            rows = list(pool.map(_in_subprocess, [ex.slug for ex in chosen]))
    else:
        regions = find_regions()
        with tempfile.TemporaryDirectory() as tmp:
            rows = [check_exercise(ex, region_of(ex, regions), Path(tmp)) for ex in chosen]
    text, ok = summarize(rows, args.min_catch_rate)
    print(text)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

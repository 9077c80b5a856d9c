"""Starters are generated from refimpl's marked regions and must match them (ARCHITECTURE.md 10)."""

from pathlib import Path

import pytest

from exercises._grading.catalog import all_exercises, region_of
from exercises._grading.regions import STARTER_BODY, RegionError, find_regions, regions_in
from exercises._grading.starters import stale_starters, starter_text


def test_every_starter_matches_its_refimpl_region() -> None:
    """A starter differs from refimpl only in the marked body; run the generator with --write."""
    assert stale_starters(write=False) == []


def test_every_exercise_names_an_existing_region() -> None:
    """Each exercise folder is built on a region that exists in refimpl."""
    regions = find_regions()
    for exercise in all_exercises():
        assert region_of(exercise, regions).name == exercise.marker


def test_starter_keeps_everything_but_the_body() -> None:
    """The starter is the module with the region's body replaced by ``raise NotImplementedError``."""
    regions = find_regions()
    for exercise in all_exercises():
        region = region_of(exercise, regions)
        text = starter_text(exercise, region)
        source = region.source()
        lines = source.splitlines(keepends=True)
        body = "".join(lines[region.begin + 1 : region.end])
        assert body in source and body not in text
        before = "".join(lines[: region.begin + 1])
        after = "".join(lines[region.end :])
        assert before + region.indent + STARTER_BODY + "\n" + after in text


def test_unbalanced_markers_are_rejected(tmp_path: Path) -> None:
    """A region that never ends, or one outside any function, is an error, not a silent skip."""
    root = tmp_path / "refimpl"
    root.mkdir()
    bad = root / "bad.py"
    bad.write_text("def f():\n    # [exercise: x] begin\n    return 1\n")
    with pytest.raises(RegionError, match="never ends"):
        regions_in(bad)
    bad.write_text("# [exercise: y] begin\nX = 1\n# [exercise: y] end\n")
    with pytest.raises(RegionError, match="not inside a function"):
        regions_in(bad)

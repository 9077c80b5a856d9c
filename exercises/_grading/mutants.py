"""Hand-written wrong answers ("mutants") that the graders must catch.

Rules: a mutant is a plausible learner bug for one exercise, written either as a whole
replacement body or as a list of exact text replacements applied to the reference body (each
``old`` must occur in it, so a mutant that no longer applies is reported, not silently
skipped). Mutants live in ``tests/exercises/mutants/<marker>.py`` as ``MUTANTS = [...]``; the
selfcheck builds each one into a full module and grades it: caught means at least one check
fails.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from exercises._grading.regions import ROOT, Region

MUTANTS_DIR = ROOT / "tests" / "exercises" / "mutants"


class StaleMutantError(Exception):
    """A replacement's ``old`` text is not in the reference body any more."""


@dataclass(frozen=True, slots=True)
class Mutant:
    """A plausible bug: a name, why a learner might write it, and the wrong code."""

    name: str
    bug: str
    body: str | None = None
    replace: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        assert (self.body is None) != (not self.replace), "give a body or replacements"

    def source(self, region: Region) -> str:
        """The whole module with this mutant's body in the region."""
        if self.body is not None:
            return region.with_body(self.body)
        body = region.body()
        for old, new in self.replace:
            if old not in body:
                raise StaleMutantError(f"mutant {self.name}: {old!r} is not in {region.name}")
            body = body.replace(old, new)
        return region.with_body(body)


def mutants_for(marker: str, folder: Path = MUTANTS_DIR) -> list[Mutant]:
    """The mutants kept for the exercise built on ``marker``."""
    path = folder / f"{marker.replace('-', '_')}.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"_mutants_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = getattr(module, "MUTANTS", None)
    assert isinstance(found, list), f"{path} must define MUTANTS = [Mutant(...), ...]"
    return found

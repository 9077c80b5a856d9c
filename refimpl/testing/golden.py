"""Golden transcripts: compare a run's text with a checked-in file, exactly.

Rules:

* the expected text lives in a file next to the tests (``golden/<name>.txt``); a test passes
  only if the produced text is byte-identical;
* files are (re)written only when the environment variable ``REFIMPL_REWRITE_GOLDEN=1`` is
  set — then the test writes the file and passes, and the change is reviewed as a diff;
* a missing file is a failure (with a hint), never silently created.

Theory of operation: transcripts are deterministic functions of a seed and a script, so a
changed line means changed behaviour; the failure message shows the first differing line.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["REWRITE_ENV", "GoldenMismatchError", "assert_golden"]

REWRITE_ENV = "REFIMPL_REWRITE_GOLDEN"


class GoldenMismatchError(AssertionError):
    """The produced text differs from the golden file."""


def assert_golden(path: Path, text: str) -> None:
    """Fail unless ``text`` equals the file at ``path`` (or rewrite it, see the rules)."""
    if os.environ.get(REWRITE_ENV) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        raise GoldenMismatchError(f"{path} does not exist; run with {REWRITE_ENV}=1 to create it")
    expected = path.read_text(encoding="utf-8")
    if expected == text:
        return
    want, got = expected.splitlines(), text.splitlines()
    for number, (a, b) in enumerate(zip(want, got, strict=False), start=1):
        if a != b:
            raise GoldenMismatchError(
                f"{path.name}:{number} differs\n  expected: {a}\n  actual:   {b}\n"
                f"(rewrite with {REWRITE_ENV}=1 if the change is intended)"
            )
    raise GoldenMismatchError(
        f"{path.name}: expected {len(want)} lines, got {len(got)} "
        f"(rewrite with {REWRITE_ENV}=1 if the change is intended)"
    )

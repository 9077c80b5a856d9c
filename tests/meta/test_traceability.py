"""Every claim of the spec is traced to a chapter cell that demonstrates it and a test that checks it.

The machine-readable table is ``book/traceability.yml``; the appendix renders it. A claim names
a chapter and a cell tag, and a pytest node id; each must exist. A claim not yet covered must say
why in ``pending`` — and then must not also pretend to be covered.
"""

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.meta._repo import ROOT, find_object

TABLE = ROOT / "book" / "traceability.yml"
REQUIRED = ("id", "section", "claim")
SPEC_SECTIONS = (
    "Distributed deployment",
    "Raft",
    "Sharding",
    "Cluster scaling",
    "Replication",
    "Error handling",
    "Node Failure Recovery",
    "Consistency guarantees",
)


def load_claims(path: Path = TABLE) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    claims = data["claims"]
    assert isinstance(claims, list)
    return claims


def cell_tags(chapter: Path) -> set[str]:
    """Tags given to code cells of a MyST notebook (``:tags: [a, b]`` under ``{code-cell}``)."""
    tags: set[str] = set()
    lines = chapter.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("```{code-cell}"):
            for option in lines[i + 1 : i + 6]:
                match = re.match(r"^:tags:\s*\[(.*)\]\s*$", option.strip())
                if match:
                    tags |= {t.strip().strip("'\"") for t in match.group(1).split(",")}
    return tags


def node_exists(node_id: str) -> bool:
    """True when ``path::func`` or ``path::Class::method`` names a test function that exists."""
    path_text, _, dotted = node_id.partition("::")
    path = ROOT / path_text
    if not path.is_file() or not dotted:
        return False
    name = dotted.split("[")[0].replace("::", ".")
    return find_object(ast.parse(path.read_text()), name) is not None


def claim_problems(claim: dict[str, Any]) -> list[str]:
    """What is wrong with one row of the table."""
    cid = claim.get("id", "?")
    found = [f"{cid}: missing field {key}" for key in REQUIRED if not claim.get(key)]
    if claim.get("section") not in SPEC_SECTIONS:
        found.append(f"{cid}: unknown spec section {claim.get('section')!r}")
    cell, test = claim.get("cell"), claim.get("test")
    if claim.get("pending"):
        if cell or test:
            found.append(f"{cid}: pending but also names a cell or test; drop 'pending'")
        return found
    if not cell or not test:
        return [*found, f"{cid}: needs both a cell and a test (or a 'pending' reason)"]
    chapter = ROOT / cell["chapter"]
    if not chapter.is_file():
        found.append(f"{cid}: chapter {cell['chapter']} does not exist")
    elif cell["tag"] not in cell_tags(chapter):
        found.append(f"{cid}: no cell tagged {cell['tag']!r} in {cell['chapter']}")
    if not node_exists(test):
        found.append(f"{cid}: test {test} does not exist")
    return found


def test_checker_rejects_dangling_rows(tmp_path: Path) -> None:
    """A row naming a missing chapter, tag or test is reported; a half-covered row too."""
    rows: list[dict[str, Any]] = [
        {
            "id": "a",
            "section": "Raft",
            "claim": "x",
            "cell": {"chapter": "book/nope.md", "tag": "t"},
            "test": "tests/meta/test_traceability.py::no_such_test",
        },
        {
            "id": "b",
            "section": "Raft",
            "claim": "x",
            "test": "tests/meta/test_traceability.py::test_checker_rejects_dangling_rows",
        },
        {"id": "c", "section": "Nowhere", "claim": "x", "pending": "later"},
    ]
    reported = [p for row in rows for p in claim_problems(row)]
    assert any("book/nope.md does not exist" in p for p in reported)
    assert any("no_such_test does not exist" in p for p in reported)
    assert any(p.startswith("b: needs both") for p in reported)
    assert any("unknown spec section" in p for p in reported)


def test_claim_ids_are_unique() -> None:
    """Each claim has its own id."""
    ids = [c["id"] for c in load_claims()]
    assert len(ids) == len(set(ids))


def test_every_spec_section_has_claims() -> None:
    """Every section of the spec contributes at least one claim to the table."""
    sections = {c["section"] for c in load_claims()}
    assert sections == set(SPEC_SECTIONS)


@pytest.mark.parametrize("claim", load_claims(), ids=lambda c: str(c["id"]))
def test_claim_is_traced(claim: dict[str, Any]) -> None:
    """The claim names an existing chapter cell and an existing test, or says why not yet."""
    assert claim_problems(claim) == []

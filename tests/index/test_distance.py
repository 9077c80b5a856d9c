"""Distances and scores follow Qdrant's conventions (Qdrant docs, "Distance metrics"; facts §9)."""

import numpy as np
import pytest

from refimpl.index import Distance, ExactIndex
from refimpl.index.distance import prepare, to_scores


@pytest.mark.parametrize(
    ("distance", "expected"),
    [
        (Distance.COSINE, 3 / 5),  # cos of the angle between (1, 0) and (3, 4)
        (Distance.DOT, 3.0),
        (Distance.EUCLID, np.hypot(2.0, 4.0)),
        (Distance.MANHATTAN, 6.0),
    ],
)
def test_scores_are_what_qdrant_reports(distance: Distance, expected: float) -> None:
    """Cosine and Dot report the similarity, Euclid and Manhattan the distance itself."""
    index = ExactIndex(2, distance)
    index.upsert([1], np.array([[3.0, 4.0]]))
    [hit] = index.search(np.array([1.0, 0.0]), 1)
    assert hit.id == 1
    assert hit.score == pytest.approx(expected, rel=1e-6)


def test_higher_is_better_only_for_similarities() -> None:
    """Cosine and Dot rank by descending score; Euclid and Manhattan by ascending distance."""
    assert [d.higher_is_better for d in Distance] == [True, True, False, False]


def test_cosine_normalises_on_insert_and_leaves_zero_vectors_alone() -> None:
    """Qdrant stores Cosine vectors normalised; a zero vector cannot be and stays zero."""
    prepared = prepare(Distance.COSINE, np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert prepared.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)], [0.0, 0.0]]
    assert prepare(Distance.DOT, np.array([[3.0, 4.0]], dtype=np.float32)).tolist() == [[3.0, 4.0]]


def test_euclid_score_is_the_square_root_of_the_internal_distance() -> None:
    """The index ranks by squared Euclidean distance and reports the distance."""
    internal = np.array([0.0, 4.0, 25.0], dtype=np.float32)
    assert to_scores(Distance.EUCLID, internal).tolist() == [0.0, 2.0, 5.0]
    assert to_scores(Distance.DOT, internal).tolist() == [-0.0, -4.0, -25.0]

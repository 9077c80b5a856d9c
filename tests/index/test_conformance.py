"""Both indexes pass the shared conformance check (refimpl.testing.index_conformance), and the
check itself catches a broken index."""

import pytest

from refimpl.index import Distance, ExactIndex, HnswConfig, HnswIndex, ScoredPoint
from refimpl.testing.index_conformance import check_vector_index


def test_exact_index_conforms() -> None:
    """The brute-force oracle follows every rule of the VectorIndex protocol."""
    check_vector_index(ExactIndex)


def test_hnsw_graph_search_conforms() -> None:
    """HNSW with the graph always used (full_scan_threshold 0) follows every rule."""
    check_vector_index(
        lambda dim, distance: HnswIndex(dim, distance, HnswConfig(full_scan_threshold_kb=0))
    )


def test_hnsw_with_qdrant_defaults_conforms() -> None:
    """HNSW with Qdrant's defaults (small data: the planner's full scan) follows every rule."""
    check_vector_index(HnswIndex)


class _ForgetsDeletes(ExactIndex):
    """A broken index: delete reports success but keeps the points searchable."""

    def delete(self, point_ids: object) -> int:
        return len(list(point_ids))  # type: ignore[call-overload]


class _WrongScores(ExactIndex):
    """A broken index: reports Euclid scores squared."""

    def search(self, query: object, k: int, **options: object) -> list[ScoredPoint]:
        hits = super().search(query, k, **options)  # type: ignore[arg-type]
        if self.distance is Distance.EUCLID:
            return [ScoredPoint(h.id, h.score**2) for h in hits]
        return hits


@pytest.mark.parametrize("broken", [_ForgetsDeletes, _WrongScores])
def test_conformance_check_catches_a_broken_index(broken: type[ExactIndex]) -> None:
    """The check must fail on an index that breaks a rule (else it proves nothing)."""
    with pytest.raises(AssertionError):
        check_vector_index(broken)

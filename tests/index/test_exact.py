"""Exact search equals a numpy brute-force oracle (the index's answers for exact=true)."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.index import Distance, ExactIndex
from refimpl.index.exact import BLOCK, block_top_k
from refimpl.index.pruned import build_partition, pruned_top_k
from refimpl.testing.index_conformance import check_vector_index, oracle_scores


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 5 * BLOCK),
    st.integers(1, 40),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_block_top_k_is_the_true_top_k(
    n_queries: int, n: int, k: int, seed: int, with_ties: bool
) -> None:
    """Block maxima only prune blocks that cannot hold a top-k value, so the k values match a
    full sort (ties and excluded -inf entries included)."""
    rng = np.random.default_rng(seed)
    sims = rng.standard_normal((n_queries, n)).astype(np.float32)
    if with_ties:
        sims = (np.round(sims * 2) / 2).astype(np.float32)
    sims[:, rng.random(n) < 0.1] = -np.inf
    cols, values = block_top_k(sims, k)
    expected = -np.sort(-sims, axis=1)[:, : min(k, n)]
    assert np.array_equal(values, expected)
    assert np.array_equal(np.take_along_axis(sims, cols, axis=1), values)
    assert all(len(set(row)) == len(row) for row in cols.tolist())


@pytest.mark.parametrize("distance", list(Distance))
def test_exact_search_equals_numpy_brute_force(distance: Distance) -> None:
    """On 3000 points (enough blocks for the pruning to act) every query's top 10 equals the
    float64 oracle's, scores included."""
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((3000, 24))
    queries = rng.standard_normal((40, 24))
    index = ExactIndex(24, distance)
    index.upsert(list(range(3000)), vectors)
    for query, hits in zip(queries, index.search_batch(queries, 10), strict=True):
        scores = oracle_scores(distance, vectors, query)
        order = np.argsort(-scores if distance.higher_is_better else scores)[:10]
        assert [h.id for h in hits] == order.tolist()
        assert np.allclose([h.score for h in hits], scores[order], rtol=1e-4, atol=1e-4)


def test_exact_search_skips_deleted_and_disallowed_points() -> None:
    """A scan returns neither deleted points nor points outside the filter."""
    rng = np.random.default_rng(6)
    vectors = rng.standard_normal((500, 8))
    index = ExactIndex(8, Distance.DOT)
    index.upsert(list(range(500)), vectors)
    index.delete(range(0, 500, 2))
    hits = index.search(vectors[1], 50, allowed=set(range(0, 200)))
    assert len(hits) == 50
    assert all(isinstance(h.id, int) and h.id % 2 == 1 and h.id < 200 for h in hits)


def test_pruned_exact_index_conforms() -> None:
    """With cluster pruning on for any size, the exact index still follows every rule."""
    check_vector_index(functools.partial(ExactIndex, prune_min_points=0))


@pytest.mark.parametrize("structured", [True, False])
def test_cluster_pruning_returns_the_true_top_k(structured: bool) -> None:
    """Skipping clusters whose Cauchy-Schwarz bound is below a query's k-th best score never
    changes the answer (clustered data prunes, iid data falls back to the scan)."""
    rng = np.random.default_rng(9)
    if structured:
        centres = rng.standard_normal((30, 32))
        vectors = centres[rng.integers(0, 30, 6000)] + 0.2 * rng.standard_normal((6000, 32))
    else:
        vectors = rng.standard_normal((6000, 32))
    queries = vectors[:64] + 0.05 * rng.standard_normal((64, 32))
    pruned = ExactIndex(32, Distance.DOT, prune_min_points=0)
    pruned.upsert(list(range(6000)), vectors)
    pruned.delete(range(100, 200))
    plain = ExactIndex(32, Distance.DOT, prune_min_points=10**9)
    plain.upsert(list(range(6000)), vectors)
    plain.delete(range(100, 200))
    partition = build_partition(vectors.astype(np.float32), np.arange(6000))
    skipped = pruned_top_k(partition, queries.astype(np.float32), 10) is None
    assert skipped is not structured
    for got, want in zip(
        pruned.search_batch(queries, 10), plain.search_batch(queries, 10), strict=True
    ):
        assert [h.id for h in got] == [h.id for h in want]
        assert np.allclose([h.score for h in got], [h.score for h in want], rtol=1e-5)

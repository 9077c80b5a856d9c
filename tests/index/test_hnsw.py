"""HNSW behaviour: Qdrant's defaults, deterministic levels, degree bounds, recall against the
exact oracle, deletion, upsert, filters, full_scan_threshold and persistence (Malkov &
Yashunin 2018; Qdrant facts §9)."""

import math
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.index import (
    DimensionMismatchError,
    Distance,
    ExactIndex,
    HnswConfig,
    HnswIndex,
    NpzArrayStore,
    VectorIndexError,
)
from refimpl.index.distance import FloatArray

GRAPH = HnswConfig(full_scan_threshold_kb=0)  # always search the graph


def clustered(n: int, dim: int, seed: int) -> FloatArray:
    """A seeded mixture of 20 Gaussian clusters with unequal spreads."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)) * 3
    labels = rng.integers(0, 20, n)
    spreads = rng.uniform(0.3, 1.5, 20)[labels, None]
    return (centres[labels] + rng.standard_normal((n, dim)) * spreads).astype(np.float32)


def recall_at(index: HnswIndex, queries: FloatArray, k: int, ef: int) -> float:
    """Mean recall@k of the graph search against the exact scan of the same index."""
    found = index.search_batch(queries, k, ef=ef)
    exact = index.search_batch(queries, k, exact=True)
    hits = [len({h.id for h in f} & {h.id for h in e}) for f, e in zip(found, exact, strict=True)]
    return sum(hits) / (k * len(queries))


@pytest.fixture(scope="module")
def built() -> tuple[HnswIndex, FloatArray]:
    """One 2500-point cosine index shared by the read-only tests."""
    data = clustered(2600, 24, seed=1)
    index = HnswIndex(24, Distance.COSINE, GRAPH)
    index.upsert(list(range(2500)), data[:2500])
    return index, data[2500:]


def test_defaults_are_qdrants() -> None:
    """m=16, ef_construct=100, m0=2m, mL=1/ln(m), full_scan_threshold=10000 KB."""
    config = HnswConfig()
    assert (config.m, config.ef_construct, config.m0) == (16, 100, 32)
    assert config.level_multiplier == pytest.approx(1 / math.log(16))
    assert config.full_scan_threshold_kb == 10_000


@pytest.mark.parametrize(("m", "ef_construct"), [(1, 100), (16, 3)])
def test_config_rejects_out_of_range_values(m: int, ef_construct: int) -> None:
    """m must be at least 2 and ef_construct at least 4 (Qdrant's minimum)."""
    with pytest.raises(VectorIndexError):
        HnswConfig(m=m, ef_construct=ef_construct)


def test_graph_respects_degree_bounds_and_has_no_self_or_double_links(
    built: tuple[HnswIndex, FloatArray],
) -> None:
    """Layer 0 holds at most m0 links per element, upper layers m; no loops, no duplicates,
    and only elements whose level reaches a layer appear in it."""
    index, _ = built
    n = index.store.n_rows
    for layer, adjacency in enumerate(index.layers):
        block = adjacency[:n]
        assert block.shape[1] == (32 if layer == 0 else 16)
        for row in range(n):
            links = block[row][block[row] >= 0]
            assert row not in links and len(set(links.tolist())) == len(links)
            assert index.degrees[layer][row] == len(links)
            if len(links):
                assert index.levels[row] >= layer and (index.levels[links] >= layer).all()


def test_levels_follow_the_level_multiplier(built: tuple[HnswIndex, FloatArray]) -> None:
    """P(level >= l) = m^-l: about 1/16 of the elements reach layer 1, 1/256 layer 2."""
    index, _ = built
    levels = index.levels[: index.store.n_rows]
    assert 0.045 < (levels >= 1).mean() < 0.08
    assert (levels >= 2).mean() < 0.01
    assert index.top_level == int(levels.max()) and levels[index.entry_point] == index.top_level


def test_recall_at_10_on_clustered_data(built: tuple[HnswIndex, FloatArray]) -> None:
    """With Qdrant's defaults the graph finds at least 95 % of the true top 10 at ef=64."""
    index, queries = built
    assert recall_at(index, queries, 10, ef=64) >= 0.95
    assert recall_at(index, queries, 10, ef=16) <= recall_at(index, queries, 10, ef=128)


def test_single_and_batched_search_agree(built: tuple[HnswIndex, FloatArray]) -> None:
    """The two-heap search (one query) and the lockstep search (a batch) find the same."""
    index, queries = built
    batch = index.search_batch(queries[:50], 10, ef=32)
    for query, hits in zip(queries[:50], batch, strict=True):
        single = index.search(query, 10, ef=32)
        assert [h.id for h in single] == [h.id for h in hits]


@settings(max_examples=10, deadline=None)
@given(
    st.integers(20, 160),
    st.integers(2, 12),
    st.sampled_from(list(Distance)),
    st.integers(0, 2**32 - 1),
)
def test_recall_on_small_random_data(n: int, dim: int, distance: Distance, seed: int) -> None:
    """On small random sets HNSW's top 5 matches brute force almost always (recall >= 0.9)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim))
    index = HnswIndex(dim, distance, HnswConfig(m=8, ef_construct=32, full_scan_threshold_kb=0))
    index.upsert(list(range(n)), vectors)
    assert recall_at(index, rng.standard_normal((10, dim)).astype(np.float32), 5, ef=32) >= 0.9


def test_build_is_deterministic_and_seeded() -> None:
    """The same seed and inserts build the same graph; another seed draws other levels."""
    data = clustered(300, 8, seed=2)

    def build(seed: int) -> HnswIndex:
        index = HnswIndex(8, Distance.EUCLID, HnswConfig(seed=seed, full_scan_threshold_kb=0))
        index.upsert(list(range(300)), data)
        return index

    a, b, c = build(3), build(3), build(4)
    assert all(np.array_equal(x, y) for x, y in zip(a.layers, b.layers, strict=True))
    assert np.array_equal(a.levels, b.levels) and not np.array_equal(a.levels, c.levels)
    shared = HnswIndex(8, Distance.EUCLID, GRAPH, rng=random.Random(3))
    shared.upsert(list(range(300)), data)
    assert np.array_equal(shared.levels, a.levels)


def test_deleted_points_keep_routing_but_never_return() -> None:
    """After deleting half the points the graph still finds the nearest live ones."""
    data = clustered(1300, 16, seed=3)
    index = HnswIndex(16, Distance.EUCLID, GRAPH)
    index.upsert(list(range(1200)), data[:1200])
    index.delete(range(0, 1200, 2))
    assert len(index) == 600
    found = index.search_batch(data[1200:], 10, ef=64)
    assert all(len(hits) == 10 and all(int(str(h.id)) % 2 for h in hits) for hits in found)
    assert recall_at(index, data[1200:], 10, ef=64) >= 0.95


def test_upsert_moves_a_point() -> None:
    """Upserting an existing id replaces its vector: found at the new place, not the old."""
    data = clustered(800, 16, seed=4)
    index = HnswIndex(16, Distance.EUCLID, GRAPH)
    index.upsert(list(range(800)), data)
    index.upsert([7], data[500:501] + 0.001)
    assert len(index) == 800
    assert {h.id for h in index.search(data[500], 2)} == {7, 500}
    assert 7 not in {h.id for h in index.search(data[7], 5)}


@pytest.mark.parametrize("every", [100, 5])
def test_selective_filter_still_returns_k(every: int) -> None:
    """A filter matching 1 % (scanned) or 20 % (graph, wider beam) of the points still yields
    k allowed points, the true best."""
    data = clustered(2000, 16, seed=5)
    index = HnswIndex(16, Distance.COSINE, GRAPH)
    index.upsert(list(range(2000)), data)
    allowed = set(range(0, 2000, every))
    oracle = ExactIndex(16, Distance.COSINE)
    oracle.upsert(list(range(2000)), data)
    for query in clustered(20, 16, seed=6):
        hits = index.search(query, 10, ef=16, allowed=allowed)
        assert len(hits) == 10 and {h.id for h in hits} <= allowed
        want = oracle.search(query, 10, allowed=allowed)
        assert len({h.id for h in hits} & {h.id for h in want}) >= 9


def test_full_scan_threshold_is_in_kilobytes_of_vectors() -> None:
    """Below full_scan_threshold (count * dim * 4 bytes < threshold KB) Qdrant scans."""
    index = HnswIndex(256, Distance.DOT, HnswConfig(full_scan_threshold_kb=10))
    assert index.uses_full_scan(9) and not index.uses_full_scan(10)


def test_small_collection_is_scanned_even_with_a_broken_graph() -> None:
    """With the default threshold a 500-point search is an exact scan: it does not even
    need the graph (here cut to pieces) to find the true top 10."""
    data = clustered(500, 16, seed=7)
    index = HnswIndex(16, Distance.DOT)
    index.upsert(list(range(500)), data)
    for adjacency in index.layers:
        adjacency[:] = -1
    oracle = ExactIndex(16, Distance.DOT)
    oracle.upsert(list(range(500)), data)
    assert index.search(data[3], 10, ef=1) == oracle.search(data[3], 10)


def test_save_load_through_an_npz_file_round_trips(tmp_path: Path) -> None:
    """save/load through a .npz file (no pickle) keeps the graph and continues identically."""
    data = clustered(450, 8, seed=8)
    index = HnswIndex(8, Distance.MANHATTAN, GRAPH)
    index.upsert(list(range(400)), data[:400])
    store = NpzArrayStore(tmp_path / "index.npz")
    index.save(store)
    with np.load(tmp_path / "index.npz", allow_pickle=False) as saved:
        assert all(saved[name].dtype != object for name in saved.files)
    loaded = HnswIndex.load(store)
    assert all(np.array_equal(x, y[:400]) for x, y in zip(loaded.layers, index.layers, strict=True))
    loaded.upsert(list(range(400, 450)), data[400:])
    index.upsert(list(range(400, 450)), data[400:])
    assert np.array_equal(loaded.levels[:450], index.levels[:450])
    assert loaded.search(data[5], 10) == index.search(data[5], 10)


def test_error_messages_name_the_problem() -> None:
    """A wrong dimension says what was given and what the index expects."""
    index = HnswIndex(4)
    with pytest.raises(DimensionMismatchError, match="3 components, the index expects 4"):
        index.search([1.0, 2.0, 3.0], 1)

"""A conformance check every ``VectorIndex`` must pass: ``check_vector_index(factory)``.

Rules checked (see :mod:`refimpl.index.protocol`): upsert by point id (integers and UUIDs),
replace on upsert of an existing id, idempotent delete, ``k`` results best first with
Qdrant's scores for each distance, ``exact=True`` equal to a float64 numpy oracle, filters
that return exactly ``min(k, allowed)`` points, ``search_batch`` equal to one search per
query, a save/load round trip through an ``ArrayStore``, and a typed error for every bad
input (wrong dimension, NaN or infinite component, empty query, ``k <= 0``) that leaves the
index unchanged.

Theory of operation: each check builds a fresh index from ``factory(dim, distance)`` on a
small seeded data set, so an approximate index is expected to be exact there (its beam is
wider than the data's neighbourhoods); only the unforced search is allowed a small recall
slack (:data:`MIN_RECALL`). A failure raises ``AssertionError`` naming the rule.
"""

import uuid
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index.distance import Distance
from refimpl.index.errors import (
    DimensionMismatchError,
    EmptyQueryError,
    InvalidLimitError,
    NonFiniteVectorError,
    VectorIndexError,
)
from refimpl.index.persist import MemoryArrayStore
from refimpl.index.protocol import ScoredPoint, VectorIndex

IndexFactory = Callable[[int, Distance], VectorIndex]
Vectors = npt.NDArray[np.float64]

DIM = 8
POINTS = 150
K = 5
MIN_RECALL = 0.9
"""Least mean recall@k of an unforced search on the small conformance data."""


def oracle_scores(distance: Distance, stored: Vectors, query: Vectors) -> Vectors:
    """Qdrant's scores of ``query`` against each stored row, in float64."""
    if distance is Distance.COSINE:
        stored = stored / np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-30)
        query = query / max(float(np.linalg.norm(query)), 1e-30)
    match distance:
        case Distance.COSINE | Distance.DOT:
            return stored @ query
        case Distance.EUCLID:
            return np.asarray(np.sqrt(((stored - query) ** 2).sum(axis=1)), dtype=np.float64)
        case Distance.MANHATTAN:
            return np.asarray(np.abs(stored - query).sum(axis=1), dtype=np.float64)
    raise AssertionError(f"unknown distance {distance}")


def oracle_top_k(
    distance: Distance, ids: Sequence[PointId], stored: Vectors, query: Vectors, k: int
) -> list[ScoredPoint]:
    """The true top ``k`` (best first) by the float64 oracle."""
    scores = oracle_scores(distance, stored, query)
    order = np.argsort(-scores if distance.higher_is_better else scores, kind="stable")[:k]
    return [ScoredPoint(ids[i], float(scores[i])) for i in order]


def check_vector_index(factory: IndexFactory) -> None:
    """Run every conformance check against indexes made by ``factory(dim, distance)``."""
    for distance in Distance:
        _check_exact_and_scores(factory, distance)
    _check_ids_upsert_delete(factory)
    _check_filter(factory)
    _check_batch_and_persistence(factory)
    _check_bad_input(factory)


def _data(seed: int, n: int = POINTS) -> tuple[list[PointId], Vectors, Vectors]:
    """Seeded points (a mix of int and UUID ids), vectors and queries."""
    rng = np.random.default_rng(seed)
    ids: list[PointId] = [
        i if i % 3 else uuid.UUID(int=int(rng.integers(1 << 62)) + i) for i in range(n)
    ]
    return ids, rng.standard_normal((n, DIM)), rng.standard_normal((10, DIM))


def _same_hits(got: Sequence[ScoredPoint], want: Sequence[ScoredPoint], rule: str) -> None:
    """Equal ids in order (ties may swap) and equal scores to float32 precision."""
    assert len(got) == len(want), f"{rule}: {len(got)} hits, expected {len(want)}"
    got_scores = np.array([h.score for h in got])
    want_scores = np.array([h.score for h in want])
    assert np.allclose(got_scores, want_scores, rtol=1e-4, atol=1e-4), (
        f"{rule}: scores {got_scores} differ from the oracle's {want_scores}"
    )
    mismatched = [(g.id, w.id) for g, w in zip(got, want, strict=True) if g.id != w.id]
    for got_id, want_id in mismatched:  # only a tie may reorder
        got_score = next(h.score for h in got if h.id == got_id)
        assert any(abs(got_score - w.score) < 1e-4 for w in want), (
            f"{rule}: returned {got_id!r} where the oracle has {want_id!r}"
        )


def _check_exact_and_scores(factory: IndexFactory, distance: Distance) -> None:
    """exact=True equals the oracle; unforced search has recall >= MIN_RECALL; sorted."""
    ids, vectors, queries = _data(seed=list(Distance).index(distance))
    index = factory(DIM, distance)
    assert len(index) == 0 and index.search(queries[0], K) == [], "empty index: no hits"
    index.upsert(ids, vectors)
    assert len(index) == POINTS, f"len after {POINTS} inserts is {len(index)}"
    found = 0
    for query in queries:
        want = oracle_top_k(distance, ids, vectors, query, K)
        _same_hits(index.search(query, K, exact=True), want, f"{distance.value} exact search")
        hits = index.search(query, K)
        assert len(hits) == K, f"{distance.value}: {len(hits)} hits, expected {K}"
        scores = [h.score for h in hits]
        ordered = sorted(scores, reverse=distance.higher_is_better)
        assert np.allclose(scores, ordered), f"{distance.value}: hits not best first: {scores}"
        found += len({h.id for h in hits} & {w.id for w in want})
    assert found / (K * len(queries)) >= MIN_RECALL, f"{distance.value}: recall too low"
    everything = index.search(queries[0], POINTS + 10, exact=True)
    assert len(everything) == POINTS, "k above the number of points returns every point"


def _check_ids_upsert_delete(factory: IndexFactory) -> None:
    """Upsert replaces, delete removes (unknown ids ignored), deleted points never return."""
    ids, vectors, _ = _data(seed=10)
    index = factory(DIM, Distance.DOT)
    index.upsert(ids, vectors)
    target = ids[3]
    new_vector = vectors[7] * 10.0
    index.upsert([target], new_vector[None, :])
    assert len(index) == POINTS, "upsert of an existing id must not add a point"
    top = index.search(new_vector, 1, exact=True)[0]
    assert top.id == target, f"replaced vector not found: got {top.id!r}"
    assert abs(top.score - float(new_vector @ new_vector)) < 1e-2 * float(new_vector @ new_vector)
    gone = ids[:20]
    assert index.delete([*gone, 10**9]) == 20, "delete returns how many ids it removed"
    assert index.delete(gone) == 0, "deleting twice removes nothing"
    assert len(index) == POINTS - 20 and all(g not in index for g in gone)
    for query in vectors[:20]:
        for exact in (False, True):
            hits = index.search(query, K, exact=exact)
            assert len(hits) == K, "after deletes there are still enough points"
            assert not {h.id for h in hits} & set(gone), "a deleted point came back"


def _check_filter(factory: IndexFactory) -> None:
    """A filtered search returns only allowed points, exactly min(k, allowed) of them."""
    ids, vectors, queries = _data(seed=11)
    index = factory(DIM, Distance.EUCLID)
    index.upsert(ids, vectors)
    for allowed_count in (1, 3, 12, 60):
        allowed = set(ids[::3][:allowed_count])
        rows = [i for i, p in enumerate(ids) if p in allowed]
        for query in queries[:4]:
            hits = index.search(query, K, allowed=allowed)
            assert len(hits) == min(K, allowed_count), (
                f"filter with {allowed_count} allowed: {len(hits)} hits"
            )
            assert {h.id for h in hits} <= allowed, "a filtered search returned a disallowed point"
            want = oracle_top_k(Distance.EUCLID, [ids[r] for r in rows], vectors[rows], query, K)
            exact = index.search(query, K, allowed=allowed, exact=True)
            _same_hits(exact, want, "filtered exact search")
    assert index.search(queries[0], K, allowed=set()) == [], "nothing allowed, nothing found"


def _check_batch_and_persistence(factory: IndexFactory) -> None:
    """search_batch equals one search per query; save/load keeps every answer."""
    ids, vectors, queries = _data(seed=12)
    index = factory(DIM, Distance.COSINE)
    index.upsert(ids, vectors)
    index.delete(ids[:5])
    batch = index.search_batch(queries, K)
    one_by_one = [index.search(q, K) for q in queries]
    for got, want in zip(batch, one_by_one, strict=True):
        _same_hits(got, want, "search_batch against search")
    store = MemoryArrayStore()
    index.save(store)
    loaded = type(index).load(store)
    assert len(loaded) == len(index), "load keeps the number of points"
    for query in queries:
        for exact in (False, True):
            _same_hits(
                loaded.search(query, K, exact=exact),
                index.search(query, K, exact=exact),
                "search after save/load",
            )
    more_ids = [10_000 + i for i in range(10)]
    loaded.upsert(more_ids, vectors[:10])
    index.upsert(more_ids, vectors[:10])
    for query in queries:
        _same_hits(loaded.search(query, K), index.search(query, K), "inserts after load")


def _expect(error: type[VectorIndexError], action: Callable[[], object], rule: str) -> None:
    try:
        action()
    except error as raised:
        assert str(raised), f"{rule}: the error has no message"
        return
    raise AssertionError(f"{rule}: expected {error.__name__}")


def _check_bad_input(factory: IndexFactory) -> None:
    """Every bad input raises its typed error and leaves the index unchanged."""
    ids, vectors, queries = _data(seed=13, n=30)
    index = factory(DIM, Distance.COSINE)
    index.upsert(ids, vectors)
    nan = vectors[:2].copy()
    nan[1, 3] = np.nan
    inf = vectors[:2].copy()
    inf[0, 0] = np.inf
    cases: list[tuple[type[VectorIndexError], Callable[[], object], str]] = [
        (DimensionMismatchError, lambda: index.upsert([1000], np.ones((1, DIM + 1))), "upsert dim"),
        (DimensionMismatchError, lambda: index.search(np.ones(DIM - 1), K), "query dim"),
        (DimensionMismatchError, lambda: index.search_batch(np.ones((2, DIM + 2)), K), "batch dim"),
        (NonFiniteVectorError, lambda: index.upsert([1000, 1001], nan), "NaN vector"),
        (NonFiniteVectorError, lambda: index.upsert([1000, 1001], inf), "infinite vector"),
        (NonFiniteVectorError, lambda: index.search(np.full(DIM, np.nan), K), "NaN query"),
        (NonFiniteVectorError, lambda: index.search(np.full(DIM, -np.inf), K), "inf query"),
        (EmptyQueryError, lambda: index.search(np.zeros(0), K), "empty query"),
        (EmptyQueryError, lambda: index.search_batch(np.zeros((0, DIM)), K), "empty batch"),
        (InvalidLimitError, lambda: index.search(queries[0], 0), "k = 0"),
        (InvalidLimitError, lambda: index.search(queries[0], -3), "k < 0"),
        (InvalidLimitError, lambda: index.search(queries[0], K, ef=0), "ef = 0"),
        (VectorIndexError, lambda: index.upsert([1, 2], vectors[:1]), "ids and vectors differ"),
        (VectorIndexError, lambda: index.upsert([-1], vectors[:1]), "negative point id"),
    ]
    before = [index.search(q, K, exact=True) for q in queries]
    for error, action, rule in cases:
        _expect(error, action, rule)
    assert len(index) == len(ids) and 1000 not in index, "a rejected upsert changed the index"
    after = [index.search(q, K, exact=True) for q in queries]
    assert after == before, "a rejected call changed the answers"

"""Exact (brute-force) search: the oracle, and what serves ``exact=true`` and small shards.

Rules: every live, allowed point is scored; the answer is the true top ``k`` (ties broken by
row order of the scan, which is insertion order), best first, with Qdrant's scores.

Theory of operation — a cheaper top-k. The scores of a batch of queries against all ``n``
points are one matrix product. Picking the best ``k`` of ``n`` per query with
``argpartition`` reads the whole ``(q, n)`` matrix and is as slow as the product itself.
Instead the columns are cut into blocks of :data:`BLOCK` points and each block keeps only its
best score (one cheap reduction). The ``k``-th best block maximum is a lower bound on the
``k``-th best score, because the ``k`` best blocks hold ``k`` distinct points at least that
good; so every true top-``k`` point lies in one of the ``k`` best blocks. Only those
``k * BLOCK`` candidates are then ranked exactly. This is exact, not approximate.
"""

from collections.abc import Collection, Iterable, Sequence
from typing import Self

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index.distance import Distance, FloatArray, IdArray, f32, to_scores
from refimpl.index.errors import InvalidLimitError
from refimpl.index.persist import ArrayStore
from refimpl.index.protocol import ScoredPoint
from refimpl.index.pruned import Partition, build_partition, pruned_top_k
from refimpl.index.store import VectorStore

BLOCK = 64
"""Points per block in the block-maximum top-k."""

PRUNE_MIN_QUERIES = 8
"""Batches smaller than this are scanned: the cluster bounds cost a product of their own."""

QUERY_CHUNK = 256
"""Queries scored together: bounds the ``(chunk, n)`` score matrix in memory."""


def check_k(k: int, name: str = "k") -> int:
    """Return ``k`` if it is a positive integer, else raise :class:`InvalidLimitError`."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise InvalidLimitError(f"{name} must be a positive integer, got {k!r}")
    return int(k)


def similarities(
    distance: Distance, queries: FloatArray, block: FloatArray, block_sq: FloatArray
) -> FloatArray:
    """Scores ``(q, n)`` where higher is better and the order matches the internal distance:
    ``internal = offset(q) - similarity`` (see :func:`internal_from_similarity`)."""
    if distance is Distance.MANHATTAN:
        out = np.empty((len(queries), len(block)), dtype=np.float32)
        for i, query in enumerate(queries):
            out[i] = -np.abs(block - query).sum(axis=1)
        return out
    dots = queries @ block.T
    if distance is Distance.EUCLID:
        # 2 q.x - |x|^2 ranks like -|q - x|^2; |q|^2 is added back at the end.
        dots *= 2.0
        dots -= block_sq[None, :]
    return dots


def internal_from_similarity(
    distance: Distance, queries: FloatArray, sims: FloatArray
) -> FloatArray:
    """Undo the shortcut of :func:`similarities` for the few chosen candidates."""
    if distance is Distance.EUCLID:
        q_sq = np.einsum("qd,qd->q", queries, queries)
        return f32(np.maximum(q_sq[:, None] - sims, 0.0))
    return -sims


def block_top_k(sims: FloatArray, k: int) -> tuple[IdArray, FloatArray]:
    """Columns and values of the ``k`` largest entries of each row of ``sims``, best first,
    found through per-block maxima (see the module docstring). ``-inf`` marks excluded."""
    n_queries, n = sims.shape
    k = min(k, n)
    n_blocks = -(-n // BLOCK)
    if n_blocks <= 2 * k:  # too few blocks for pruning to pay
        cols = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    else:
        padded = sims
        if n_blocks * BLOCK != n:
            padded = np.full((n_queries, n_blocks * BLOCK), -np.inf, dtype=sims.dtype)
            padded[:, :n] = sims
        blocks = padded.reshape(n_queries, n_blocks, BLOCK)
        best_blocks = np.argpartition(-blocks.max(axis=2), k - 1, axis=1)[:, :k]
        rows = np.arange(n_queries)[:, None]
        candidates = blocks[rows, best_blocks].reshape(n_queries, k * BLOCK)
        chosen = np.argpartition(-candidates, k - 1, axis=1)[:, :k]
        cols = best_blocks[rows, chosen // BLOCK] * BLOCK + chosen % BLOCK
    values = np.take_along_axis(sims, cols, axis=1)
    # Best first; equal scores by column, so results do not depend on partition order.
    order = np.lexsort((cols, -values), axis=1)
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)


def exact_search(
    store: VectorStore, queries: FloatArray, k: int, rows: IdArray | None
) -> tuple[IdArray, FloatArray]:
    """Rows ``(q, k')`` and internal distances of the true top-``k`` among ``rows`` (all live
    rows when ``None``), ``k' = min(k, number of candidates)``."""
    if rows is None and not store.deleted[: store.n_rows].any():
        block, block_sq = store.vectors[: store.n_rows], store.sq_norms[: store.n_rows]
        row_map = None
    else:
        chosen = store.live_rows() if rows is None else rows
        block, block_sq, row_map = store.vectors[chosen], store.sq_norms[chosen], chosen
    width = min(k, len(block))
    out_rows = np.zeros((len(queries), width), dtype=np.int64)
    out_dist = np.zeros((len(queries), width), dtype=np.float32)
    if width == 0:
        return out_rows, out_dist
    for start in range(0, len(queries), QUERY_CHUNK):
        chunk = queries[start : start + QUERY_CHUNK]
        cols, sims = block_top_k(similarities(store.distance, chunk, block, block_sq), width)
        out_rows[start : start + len(chunk)] = cols if row_map is None else row_map[cols]
        out_dist[start : start + len(chunk)] = internal_from_similarity(store.distance, chunk, sims)
    return out_rows, out_dist


def to_hits(store: VectorStore, rows: IdArray, internal: FloatArray) -> list[ScoredPoint]:
    """Turn one query's rows and internal distances into scored points."""
    scores = to_scores(store.distance, internal)
    row_ids = store.row_ids
    return [ScoredPoint(row_ids[r], s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]


class ExactIndex:
    """A brute-force index: every search is a full scan. The oracle for HNSW.

    For Cosine and Dot, a batch of unfiltered queries against at least ``prune_min_points``
    points goes through :mod:`.pruned`, which skips clusters whose bound cannot reach a
    query's top ``k`` — the same answer for less work. The clustering is rebuilt lazily
    after any change (or eagerly by :meth:`prepare`)."""

    def __init__(
        self, dim: int, distance: Distance = Distance.COSINE, prune_min_points: int = 20_000
    ) -> None:
        self.store = VectorStore(dim, distance)
        self.prune_min_points = prune_min_points
        self._partition: Partition | None = None

    @property
    def dim(self) -> int:
        """Number of components of every vector."""
        return self.store.dim

    @property
    def distance(self) -> Distance:
        """The metric."""
        return self.store.distance

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, point_id: object) -> bool:
        return point_id in self.store.row_of

    def upsert(self, point_ids: Sequence[PointId], vectors: npt.ArrayLike) -> None:
        """Insert or replace vectors by point id."""
        self.store.append(point_ids, self.store.check_vectors(vectors))
        self._partition = None

    def delete(self, point_ids: Iterable[PointId]) -> int:
        """Remove the given ids; unknown ids are ignored."""
        removed = 0
        for point_id in point_ids:
            if point_id in self.store.row_of:
                self.store.delete(point_id)
                removed += 1
        if removed:
            self._partition = None
        return removed

    def prepare(self) -> None:
        """Build the clustering used to prune batched scans now, if this index uses one."""
        if self._partition is None and self._prunes():
            rows = self.store.live_rows()
            self._partition = build_partition(self.store.vectors[rows], rows)

    def _prunes(self) -> bool:
        return self.distance.higher_is_better and len(self.store) >= max(1, self.prune_min_points)

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[ScoredPoint]:
        """The true top ``k`` for one query."""
        prepared = self.store.check_query(query)
        return self._search(prepared[None, :], k, ef, allowed)[0]

    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[list[ScoredPoint]]:
        """The true top ``k`` for each query."""
        return self._search(self.store.check_queries(queries), k, ef, allowed)

    def _search(
        self,
        queries: FloatArray,
        k: int,
        ef: int | None,
        allowed: Collection[PointId] | None,
    ) -> list[list[ScoredPoint]]:
        check_k(k)
        if ef is not None:
            check_k(ef, "ef")
        if allowed is None and len(queries) >= PRUNE_MIN_QUERIES and self._prunes():
            self.prepare()
            assert self._partition is not None
            pruned = pruned_top_k(self._partition, queries, k)
            if pruned is not None:
                found, sims = pruned
                internal = -sims
                return [to_hits(self.store, r, d) for r, d in zip(found, internal, strict=True)]
        rows = None if allowed is None else self.store.live_rows(allowed)
        found, internal = exact_search(self.store, queries, k, rows)
        return [to_hits(self.store, r, d) for r, d in zip(found, internal, strict=True)]

    def save(self, store: ArrayStore) -> None:
        """Write the vectors, ids and deleted marks."""
        store.write_arrays(self.store.to_arrays())

    @classmethod
    def load(cls, store: ArrayStore) -> Self:
        """Rebuild an index written by :meth:`save`."""
        vectors = VectorStore.from_arrays(store.read_arrays())
        index = cls(vectors.dim, vectors.distance)
        index.store = vectors
        return index

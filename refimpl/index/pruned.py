"""Exact top-k for a batch of queries that skips whole clusters of points (Cosine and Dot).

Rules: the answer is exactly the top ``k`` by dot product (ties aside), the same as a full
scan; only the work differs. It serves the exact index when a batch of queries meets a large
collection (``exact=true`` and the brute-force oracle).

Theory of operation. The points are grouped once into about ``sqrt(n)`` clusters (a few
rounds of k-means from evenly spaced seeds, deterministic), each with its centroid ``c`` and
radius ``r`` (the farthest member's distance to ``c``). By Cauchy-Schwarz every member ``x``
of a cluster satisfies ``q.x = q.c + q.(x - c) <= q.c + |q| r``: one product per cluster
bounds all its members. Each query first scores the cluster with the best bound, which gives
it a ``k``-th best score ``theta``; then every cluster whose bound is below ``theta`` is
skipped, and the others are scored in turn (``theta`` only rises as better points are
found). On clustered data most clusters fall below ``theta`` and are never multiplied; on
structureless data nothing is skipped and the cost is a plain scan plus the bounds.
"""

import math
from dataclasses import dataclass

import numpy as np

from refimpl.index.distance import FloatArray, IdArray

LLOYD_ROUNDS = 1
MAX_SCANNED_FRACTION = 0.4
"""Above this share of (query, cluster) pairs left to score, a plain scan is faster."""
_ASSIGN_CHUNK = 16_384


@dataclass(frozen=True, slots=True)
class Partition:
    """Rows grouped by cluster: cluster ``c`` holds ``rows[starts[c]:starts[c + 1]]``, whose
    vectors are ``grouped[starts[c]:starts[c + 1]]`` (contiguous, for fast products)."""

    rows: IdArray
    starts: IdArray
    grouped: FloatArray
    centroids: FloatArray
    radii: FloatArray


def _nearest(vectors: FloatArray, centroids: FloatArray) -> IdArray:
    """Index of the nearest centroid (Euclidean) of every vector, in chunks."""
    half_sq = 0.5 * np.einsum("cd,cd->c", centroids, centroids)
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), _ASSIGN_CHUNK):
        block = vectors[start : start + _ASSIGN_CHUNK]
        out[start : start + len(block)] = np.argmax(block @ centroids.T - half_sq, axis=1)
    return out


def build_partition(vectors: FloatArray, rows: IdArray) -> Partition:
    """Group ``vectors`` (the store rows ``rows``) into about ``sqrt(n)`` clusters."""
    n = len(vectors)
    count = max(1, math.isqrt(n))
    centroids = vectors[np.linspace(0, n - 1, count).astype(np.int64)].copy()
    for round_ in range(LLOYD_ROUNDS + 1):
        assign = _nearest(vectors, centroids)
        order = np.argsort(assign, kind="stable")
        grouped = np.ascontiguousarray(vectors[order])
        starts = np.searchsorted(assign[order], np.arange(count + 1)).astype(np.int64)
        filled = np.flatnonzero(starts[1:] > starts[:-1])
        if round_ == LLOYD_ROUNDS:
            break
        sums = np.add.reduceat(grouped, starts[filled], axis=0)
        centroids[filled] = sums / (starts[filled + 1] - starts[filled])[:, None]
    spread = np.linalg.norm(grouped - centroids[assign[order]], axis=1).astype(np.float32)
    radii = np.zeros(count, dtype=np.float32)
    radii[filled] = np.maximum.reduceat(spread, starts[filled])
    return Partition(rows[order], starts, grouped, centroids, radii)


def pruned_top_k(
    partition: Partition, queries: FloatArray, k: int
) -> tuple[IdArray, FloatArray] | None:
    """Rows and dot products ``(q, k)`` of each query's ``k`` best points, best first; or
    ``None`` when the bounds would skip too little for the detour to pay."""
    k = min(k, len(partition.rows))
    sims = queries @ partition.centroids.T
    norms = np.linalg.norm(queries, axis=1)
    bounds = sims + norms[:, None] * partition.radii[None, :]
    bounds += 1e-5 * (np.abs(bounds) + 1.0)  # float32 rounding must never prune a true hit
    best_vals = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    first = np.argmax(bounds, axis=1)
    done = np.zeros(bounds.shape, dtype=bool)
    done[np.arange(len(queries)), first] = True
    for cluster in np.unique(first):
        _score_cluster(
            partition,
            queries,
            int(cluster),
            np.flatnonzero(first == cluster),
            best_vals=best_vals,
            best_rows=best_rows,
        )
    if (bounds >= best_vals.min(axis=1)[:, None]).mean() > MAX_SCANNED_FRACTION:
        return None  # no structure to exploit: a plain scan is cheaper
    for cluster in np.argsort(-bounds.max(axis=0)):
        asking = np.flatnonzero(~done[:, cluster])
        asking = asking[bounds[asking, cluster] >= best_vals[asking].min(axis=1)]
        if asking.size:
            _score_cluster(
                partition, queries, int(cluster), asking, best_vals=best_vals, best_rows=best_rows
            )
    order = np.lexsort((best_rows, -best_vals), axis=1)
    return np.take_along_axis(best_rows, order, 1), np.take_along_axis(best_vals, order, 1)


def _score_cluster(
    partition: Partition,
    queries: FloatArray,
    cluster: int,
    asking: IdArray,
    *,
    best_vals: FloatArray,
    best_rows: IdArray,
) -> None:
    """Score one cluster for the ``asking`` queries and merge into their running top-k."""
    low, high = int(partition.starts[cluster]), int(partition.starts[cluster + 1])
    if high == low:
        return
    k = best_vals.shape[1]
    sims = queries[asking] @ partition.grouped[low:high].T
    if high - low > k:
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        sims = np.take_along_axis(sims, top, axis=1)
        rows = partition.rows[low + top]
    else:
        rows = np.broadcast_to(partition.rows[low:high], sims.shape)
    values = np.concatenate([best_vals[asking], sims], axis=1)
    ids = np.concatenate([best_rows[asking], rows], axis=1)
    keep = np.argpartition(-values, k - 1, axis=1)[:, :k]
    best_vals[asking] = np.take_along_axis(values, keep, axis=1)
    best_rows[asking] = np.take_along_axis(ids, keep, axis=1)

"""Small HNSW workbenches for the index exercises: a one-layer graph built element by element
with ``select_neighbours_heuristic``, and recall against brute force.

Rules: everything is seeded numpy; distances are squared Euclidean (the index's internal
distance for Euclid), so lower is closer. The builder follows the paper's Algorithm 1 on a
single layer: each new element takes its ``ef`` nearest already-inserted elements as
candidates (found exactly, so the grade measures the heuristic and nothing else), keeps ``m``
of them with the heuristic, and links both ways; a neighbour list that overflows is shrunk with
the heuristic again.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refimpl.index import graph

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]


def squared(a: FloatArray, b: FloatArray) -> FloatArray:
    """Squared Euclidean distances between the rows of ``a`` and the rows of ``b``."""
    diff = a[:, None, :] - b[None, :, :]
    return np.asarray((diff * diff).sum(axis=2), dtype=np.float32)


def clusters(seed: int, n_clusters: int = 4, per_cluster: int = 60, dim: int = 8) -> FloatArray:
    """Tight, far-apart Gaussian clusters, shuffled (the case that needs diverse links)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 30.0, size=(n_clusters, dim))
    points = np.concatenate([c + rng.normal(0.0, 1.0, size=(per_cluster, dim)) for c in centres])
    rng.shuffle(points)
    return np.asarray(points, dtype=np.float32)


def _select(points: FloatArray, base: int, candidates: list[int], m: int) -> list[int]:
    ids = np.asarray(candidates, dtype=np.int64)
    dists = squared(points[[base]], points[ids])[0]
    pairs = squared(points[ids], points[ids])
    chosen = graph.select_neighbours_heuristic(ids, dists, pairs, m)
    return [int(i) for i in np.asarray(chosen).tolist()]


def build_layer(points: FloatArray, m: int, ef: int) -> list[list[int]]:
    """Insert ``points`` one by one into a single-layer graph (see the module docstring)."""
    links: list[list[int]] = [[] for _ in range(len(points))]
    for new in range(1, len(points)):
        dists = squared(points[[new]], points[:new])[0]
        candidates = [int(i) for i in np.argsort(dists, kind="stable")[:ef]]
        links[new] = _select(points, new, candidates, m)
        for other in links[new]:
            links[other].append(new)
            if len(links[other]) > m:
                links[other] = _select(points, other, links[other], m)
    return links


def reachable(links: list[list[int]], start: int) -> set[int]:
    """Every element reachable from ``start`` along the links."""
    seen, todo = {start}, [start]
    while todo:
        for nxt in links[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def adjacency(links: list[list[int]]) -> npt.NDArray[np.int32]:
    """The links as the index's ``-1``-padded adjacency array."""
    width = max(1, *(len(row) for row in links))
    out = np.full((len(links), width), -1, dtype=np.int32)
    for row, targets in enumerate(links):
        out[row, : len(targets)] = targets
    return out


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    """Share of the true nearest neighbours that were found, over all queries."""
    hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth, strict=True))
    return hits / max(1, sum(len(t) for t in truth))

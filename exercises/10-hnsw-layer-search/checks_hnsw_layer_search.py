"""Checks for exercise 10: HNSW's layered search (greedy descent, then the beam on layer 0).

The rule (Malkov & Yashunin, Algorithms 5 and 2; refimpl/index/graph.py ``search_layers``):
start at the entry point on the top layer; on each upper layer move to the closest neighbour
while it is closer; on layer 0 keep a min-heap of candidates and a max-heap of the ``ef`` best
found, stopping when the nearest candidate is farther than the worst found. Return the found
rows nearest first with their distances. Graded by recall against brute force on an HNSW index
(refimpl builds it; your function answers every single-query search), by exact answers on
hand-made path graphs, by the shape of the answer, and by the work done compared with the
reference algorithm (a brute-force scan is not a graph search).
"""

import functools
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from exercises._grading.api import CheckFailedError, Exercise, plugged_now
from refimpl.index import Distance, HnswConfig, HnswIndex, graph

EXERCISE = Exercise(
    marker="hnsw-layer-search",
    title="HNSW layered search (greedy descent + beam search), graded by recall",
    book="book/hnsw.md (Greedy descent and beam search)",
)

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]
N_POINTS, DIM, N_QUERIES, K, EF = 1500, 8, 60, 10, 32


@functools.cache
def workload() -> tuple[HnswIndex, FloatArray, FloatArray]:
    """A seeded clustered data set, its HNSW index (built by refimpl) and queries near it."""
    rng = np.random.default_rng(2024)
    centres = rng.normal(0.0, 1.0, size=(20, DIM))
    data = (
        centres[rng.integers(0, 20, N_POINTS)] + rng.normal(0.0, 0.4, size=(N_POINTS, DIM))
    ).astype(np.float32)
    index = HnswIndex(
        DIM, Distance.EUCLID, HnswConfig(m=8, ef_construct=32, full_scan_threshold_kb=0, seed=7)
    )
    index.upsert(list(range(N_POINTS)), data)
    queries = (
        data[rng.integers(0, N_POINTS, N_QUERIES)] + rng.normal(0.0, 0.2, size=(N_QUERIES, DIM))
    ).astype(np.float32)
    return index, data, queries


def _distances(
    data: FloatArray, query: FloatArray, counter: list[int]
) -> Callable[[IdArray], FloatArray]:
    def distances_to(rows: IdArray) -> FloatArray:
        counter[0] += len(rows)
        diff = data[rows] - query
        return np.asarray((diff * diff).sum(axis=1), dtype=np.float32)

    return distances_to


def _search(
    fn: Callable[..., tuple[IdArray, FloatArray]],
    index: HnswIndex,
    data: FloatArray,
    query: FloatArray,
    ef: int,
) -> tuple[IdArray, FloatArray, int]:
    counter = [0]
    layers = index.layers[: index.top_level + 1]
    rows, dists = fn(_distances(data, query, counter), layers, index.entry_point, ef)
    return np.asarray(rows), np.asarray(dists), counter[0]


@EXERCISE.check(points=4, timeout_s=30)
def recall_against_brute_force() -> None:
    """Through HnswIndex.search, recall@10 with ef=32 is at least 0.9 against an exact scan."""
    index, data, queries = workload()
    hits = 0
    worst: tuple[int, int] = (K + 1, -1)
    for i, query in enumerate(queries):
        got = {int(hit.id) for hit in index.search(query, K, ef=EF)}
        truth = set(np.argsort(((data - query) ** 2).sum(axis=1), kind="stable")[:K].tolist())
        hits += len(got & truth)
        worst = min(worst, (len(got & truth), i))
    recall = hits / (K * len(queries))
    if recall < 0.9:
        raise CheckFailedError(
            f"recall@{K} is {recall:.3f} over {len(queries)} queries (need >= 0.90); "
            f"the worst query (#{worst[1]}) found {worst[0]} of its {K} true neighbours",
            transcript=f"{N_POINTS} points in {DIM}-D around 20 centres, HNSW m=8 ef_construct=32, "
            f"{index.top_level + 1} layers, entry point row {index.entry_point}",
        )


@EXERCISE.check(points=2, timeout_s=30)
def answers_are_distinct_sorted_and_scored() -> None:
    """ef rows, no repeats, nearest first, each with its true distance."""
    index, data, queries = workload()
    for i, query in enumerate(queries[:20]):
        rows, dists, _ = _search(graph.search_layers, index, data, query, EF)
        true = ((data[rows] - query) ** 2).sum(axis=1) if rows.size else np.zeros(0)
        problems = []
        if len(rows) != EF:
            problems.append(f"{len(rows)} rows returned, expected ef={EF}")
        if len(set(rows.tolist())) != len(rows):
            problems.append("a row appears twice")
        if len(dists) != len(rows) or not np.allclose(dists, true, rtol=1e-4, atol=1e-4):
            problems.append("distances do not match the rows")
        if np.any(np.diff(dists) < 0):
            problems.append("not sorted nearest first")
        if problems:
            raise CheckFailedError(
                f"query #{i}: " + "; ".join(problems),
                transcript=f"rows {rows.tolist()}\ndists {np.round(dists, 3).tolist()}",
            )


def _path_layers(n: int, steps: list[int]) -> list[npt.NDArray[np.int32]]:
    """A line of n points; layer l links every steps[l]-th point to the previous and next."""
    layers = []
    for step in steps:
        adjacency = np.full((n, 2), -1, dtype=np.int32)
        for i in range(0, n, step):
            if i - step >= 0:
                adjacency[i, 0] = i - step
            if i + step < n:
                adjacency[i, 1] = i + step
        layers.append(adjacency)
    return layers


def _split_line_layers() -> list[npt.NDArray[np.int32]]:
    """A line of 60 points cut in two on layer 0 (no link 29-30): only the upper layers cross.

    Layer 1 links 24 and 36, layer 2 links 36 and 54; the entry point is 54. A search for a
    point near 5 must descend 54 -> 36 -> 24 before walking layer 0.
    """
    bottom = _path_layers(60, [1])[0]
    bottom[29, 1] = -1
    bottom[30, 0] = -1
    middle = np.full((60, 2), -1, dtype=np.int32)
    middle[24, 0], middle[36, 0] = 36, 24
    top = np.full((60, 2), -1, dtype=np.int32)
    top[36, 0], top[54, 0] = 54, 36
    return [bottom, middle, top]


@EXERCISE.check(points=2)
def exact_on_path_graphs() -> None:
    """On lines of 60 points with express lanes (one cut on layer 0), the search is exact."""
    data = np.arange(60, dtype=np.float32)[:, None]
    cases = [
        (_path_layers(60, s), e, str(s)) for s, e in (([1, 6, 18], 54), ([1], 59), ([1, 5], 0))
    ]
    cases.append((_split_line_layers(), 54, "[1 (cut between 29 and 30), 24-36, 36-54]"))
    for layers, entry, steps in cases:
        for q, ef in ((7.3, 1), (5.2, 1), (7.3, 3), (33.6, 4), (0.2, 2), (58.9, 1)):
            counter = [0]
            rows, _ = graph.search_layers(
                _distances(data, np.asarray([q], dtype=np.float32), counter), layers, entry, ef
            )
            want = np.argsort(np.abs(np.arange(60) - q), kind="stable")[:ef].tolist()
            if sorted(np.asarray(rows).tolist()) != sorted(want):
                raise CheckFailedError(
                    f"path graph with layers stepping {steps}, entry point {entry}, query {q}, ef={ef}: "
                    f"found rows {np.asarray(rows).tolist()}, the nearest are {want}"
                )


@EXERCISE.check(points=2, timeout_s=30)
def does_no_more_work_than_the_algorithm() -> None:
    """Distance evaluations stay within 1.5x the reference search's (a scan of everything fails)."""
    index, data, queries = workload()
    reference = plugged_now().reference
    yours = theirs = 0
    for query in queries[:30]:
        yours += _search(graph.search_layers, index, data, query, EF)[2]
        theirs += _search(reference, index, data, query, EF)[2]
    if yours > 1.5 * theirs + 30:
        raise CheckFailedError(
            f"your search computed {yours} distances for 30 queries, the algorithm needs about {theirs} "
            f"(out of {N_POINTS} points per query)"
        )

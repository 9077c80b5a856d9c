"""Checks for exercise 09: HNSW's neighbour-selection heuristic (the paper's Algorithm 4).

The rule (Malkov & Yashunin; refimpl/index/graph.py ``select_neighbours_heuristic``): visit
the candidates from nearest to farthest (ties: lower position first) and keep one only if it
is at least as close to the base element as to every candidate kept so far; stop at ``m``.
Return the kept ids, nearest first. Graded against a plain-Python oracle on grids (many ties),
on the case that motivates the heuristic, and by building a graph with it over far-apart
clusters: the graph must stay connected and searchable, which "keep the nearest m" is not.
"""

from collections.abc import Callable

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from exercises._grading import hnswkit
from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from refimpl.index import graph

EXERCISE = Exercise(
    marker="hnsw-select-neighbours",
    title="HNSW neighbour selection (the heuristic)",
    book="book/hnsw.md (The neighbour-selection heuristic)",
)


def oracle(ids: list[int], dists: list[float], pairs: list[list[float]], m: int) -> list[int]:
    """Algorithm 4 without numpy."""
    order = sorted(range(len(ids)), key=lambda i: (dists[i], i))
    kept: list[int] = []
    for i in order:
        if len(kept) == m:
            break
        if all(dists[i] <= pairs[i][j] for j in kept):
            kept.append(i)
    return [ids[i] for i in kept]


def _ask(points: list[tuple[int, int]], base: tuple[int, int], m: int, ids: list[int]) -> None:
    p = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    dists = hnswkit.squared(np.asarray([base], dtype=np.float32), p)[0]
    pairs = hnswkit.squared(p, p)
    got = graph.select_neighbours_heuristic(np.asarray(ids, dtype=np.int64), dists, pairs, m)
    want = oracle(ids, dists.tolist(), pairs.tolist(), m)
    if not isinstance(got, np.ndarray) or [int(x) for x in got.tolist()] != want:
        table = "\n".join(
            f"candidate id {i:>3} at {pt}, distance to base {d:g}"
            for i, pt, d in zip(ids, points, dists.tolist(), strict=True)
        )
        raise CheckFailedError(
            f"with base {base} and m={m} you kept {got!r}; the heuristic keeps {want} (nearest first)"
            f"\n(distances are squared Euclidean)\n{table}"
        )


@st.composite
def grids(draw: st.DrawFn) -> tuple[list[tuple[int, int]], tuple[int, int], int, list[int]]:
    """Candidates on a small integer grid (so distances tie often), a base element, m, ids."""
    coords = st.tuples(st.integers(-4, 4), st.integers(-4, 4))
    points = draw(st.lists(coords, max_size=10))
    ids = draw(st.permutations(range(100, 100 + len(points))))
    return points, draw(coords), draw(st.integers(1, 5)), list(ids)


@EXERCISE.check(points=4)
@grading_settings(max_examples=150)
@given(grids())
def matches_algorithm_4_on_grids(
    case: tuple[list[tuple[int, int]], tuple[int, int], int, list[int]],
) -> None:
    """Random candidates on a grid (ties included) give the plain oracle's ids, in its order."""
    _ask(*case)


@EXERCISE.check(points=2)
def diverse_neighbours_beat_the_nearest_m() -> None:
    """Three close candidates on one side and one on the other: keep one of each side."""
    # Base at the origin; 11, 12 and 13 sit together to the right, 14 alone to the left.
    _ask([(1, 0), (2, 0), (2, 1), (-3, 0)], (0, 0), 2, [11, 12, 13, 14])
    _ask([(1, 0), (2, 0), (2, 1), (-3, 0)], (0, 0), 4, [11, 12, 13, 14])


@EXERCISE.check(points=1)
def edge_cases() -> None:
    """No candidates gives an empty array; m larger than the candidates; one candidate is kept."""
    _ask([], (0, 0), 3, [])
    _ask([(1, 1)], (0, 0), 3, [7])
    _ask([(1, 1), (1, 1)], (0, 0), 3, [7, 8])


def _distances_from(
    points: hnswkit.FloatArray, query: hnswkit.FloatArray
) -> Callable[[hnswkit.IdArray], hnswkit.FloatArray]:
    def distances_to(rows: hnswkit.IdArray) -> hnswkit.FloatArray:
        out: hnswkit.FloatArray = hnswkit.squared(query[None], points[rows])[0]
        return out

    return distances_to


def _clusters_stay_connected(seed: int) -> None:
    points = hnswkit.clusters(seed)
    links = hnswkit.build_layer(points, m=8, ef=32)
    reach = len(hnswkit.reachable(links, 0))
    rng = np.random.default_rng(seed + 1000)
    queries = points[:40] + rng.normal(0.0, 0.5, size=(40, points.shape[1])).astype(np.float32)
    truth = [list(np.argsort(hnswkit.squared(q[None], points)[0])[:5]) for q in queries]
    adjacency = hnswkit.adjacency(links)
    found = []
    for q in queries:
        rows, _ = graph.search_layers(_distances_from(points, q), [adjacency], 0, 16)
        found.append([int(x) for x in rows[:5]])
    recall = hnswkit.recall(found, truth)
    if reach < len(points) or recall < 0.8:
        degrees = sorted(len(row) for row in links)
        raise CheckFailedError(
            f"the graph built with your heuristic reaches {reach} of {len(points)} elements from "
            f"element 0 and search recall@5 is {recall:.2f} (need all and >= 0.80)",
            seed=seed,
            transcript=f"4 far-apart clusters of 60 points in 8-D, m=8, ef_construction=32; "
            f"degrees min/median/max {degrees[0]}/{degrees[len(degrees) // 2]}/{degrees[-1]}",
        )


@EXERCISE.check(points=3, timeout_s=30)
def a_graph_built_with_it_connects_far_clusters() -> None:
    """A graph built with your heuristic over 4 far-apart clusters stays connected and searchable."""
    smallest_failure(range(3), _clusters_stay_connected, keep_looking=0)

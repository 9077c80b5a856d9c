"""The paper's Algorithm 4 (neighbour selection heuristic) and Algorithms 2/5 (layer search),
and their lockstep twins, which must give the same answers (Malkov & Yashunin 2018)."""

import heapq
from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.index import (
    search_layer_lockstep,
    search_layers,
    select_neighbours_heuristic,
    select_neighbours_lockstep,
)
from refimpl.index.distance import FloatArray, IdArray, f32


def _euclid(points: FloatArray) -> FloatArray:
    return f32(np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)))


def test_heuristic_keeps_one_neighbour_per_direction() -> None:
    """A candidate closer to an already kept neighbour than to the base is skipped, so the
    kept set spreads over directions (Algorithm 4) instead of taking the 3 nearest."""
    base = np.array([0.0, 0.0])
    points = np.array([[1.0, 0.0], [1.2, 0.1], [1.3, -0.1], [0.0, 2.0], [-2.5, 0.0]])
    ids = np.array([10, 11, 12, 13, 14])
    dists = np.sqrt(((points - base) ** 2).sum(axis=1))
    kept = select_neighbours_heuristic(ids, dists, _euclid(points), m=3)
    assert kept.tolist() == [10, 13, 14]


def test_heuristic_stops_at_m_and_sorts_nearest_first() -> None:
    """Never more than m kept; candidates given in any order are visited nearest first."""
    points = np.array([[0.0, 3.0], [1.0, 0.0], [0.0, -2.0], [-4.0, 0.0]])
    dists = np.sqrt((points**2).sum(axis=1))
    kept = select_neighbours_heuristic(np.array([0, 1, 2, 3]), dists, _euclid(points), m=2)
    assert kept.tolist() == [1, 2]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 30), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_lockstep_heuristic_equals_the_single_one(
    n_bases: int, width: int, m: int, seed: int
) -> None:
    """select_neighbours_lockstep gives, base by base, exactly select_neighbours_heuristic."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n_bases, width + 1, 3)).astype(np.float32)
    ids = rng.permutation(1000)[: n_bases * width].reshape(n_bases, width).astype(np.int64)
    dists = np.sqrt(((points[:, 1:] - points[:, :1]) ** 2).sum(axis=2)).astype(np.float32)
    pairs = np.stack([_euclid(p[1:]) for p in points]).astype(np.float32)
    padded = rng.random((n_bases, width)) < 0.2
    ids[padded], dists[padded] = -1, np.inf
    got = select_neighbours_lockstep(ids, dists, pairs, m)
    for b in range(n_bases):
        keep = ~padded[b]
        want = select_neighbours_heuristic(
            ids[b][keep], dists[b][keep], pairs[b][np.ix_(keep, keep)], m
        )
        assert got[b][got[b] >= 0].tolist() == want.tolist()


def _ring_graph(n: int, hops: tuple[int, ...]) -> tuple[FloatArray, np.ndarray]:
    """Points on a circle, each linked to the neighbours ``hops`` away on both sides."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    links = [[(i + s * h) % n for h in hops for s in (1, -1)] for i in range(n)]
    return points, np.array(links, dtype=np.int32)


def test_beam_search_walks_a_graph_to_the_nearest_point() -> None:
    """Starting far away on a ring, the beam search follows edges to the exact nearest."""
    points, adjacency = _ring_graph(64, (1, 5))
    query = np.array([np.cos(1.0), np.sin(1.0)], dtype=np.float32) * 1.01

    def distances_to(rows: IdArray) -> FloatArray:
        return f32(((points[rows] - query) ** 2).sum(axis=1))

    found, dists = search_layers(distances_to, [adjacency], entry_point=40, ef=4)
    truth = np.argsort(((points - query) ** 2).sum(axis=1))[:4]
    assert found.tolist() == truth.tolist()
    assert np.all(np.diff(dists) >= 0)


def test_greedy_descent_uses_upper_layers() -> None:
    """An upper layer with long links brings the search near the target before layer 0."""
    points, bottom = _ring_graph(64, (1,))
    upper = np.full((64, 2), -1, dtype=np.int32)
    hubs = list(range(0, 64, 8))
    for i, hub in enumerate(hubs):
        upper[hub] = [hubs[(i + 1) % 8], hubs[(i - 1) % 8]]
    query = points[37] * 1.01
    calls: list[int] = []

    def distances_to(rows: IdArray) -> FloatArray:
        calls.append(len(rows))
        return f32(((points[rows] - query) ** 2).sum(axis=1))

    found, _ = search_layers(distances_to, [bottom, upper], entry_point=0, ef=1)
    assert found.tolist() == [37]
    assert sum(calls) < 30  # the ring alone would need to walk ~27 hops from 0


@settings(max_examples=25, deadline=None)
@given(st.integers(8, 80), st.integers(1, 16), st.integers(0, 2**32 - 1))
def test_lockstep_search_equals_the_heap_search(n: int, ef: int, seed: int) -> None:
    """On a random graph, the lockstep beam search returns the two-heap search's answer."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 4)).astype(np.float32)
    adjacency = np.stack([rng.permutation(n)[:6] for _ in range(n)]).astype(np.int32)
    adjacency[rng.random(adjacency.shape) < 0.2] = -1
    queries = rng.standard_normal((5, 4)).astype(np.float32)
    entries = rng.integers(0, n, (5, 1))

    def pair_distances(which: IdArray, rows: IdArray) -> FloatArray:
        return f32(((points[rows] - queries[which]) ** 2).sum(axis=1))

    got_ids, got_dists = search_layer_lockstep(pair_distances, adjacency, entries, ef)
    for q in range(5):
        query = queries[q]

        def distances_to(rows: IdArray, query: FloatArray = query) -> FloatArray:
            return f32(((points[rows] - query) ** 2).sum(axis=1))

        want_ids, want_dists = search_layers(distances_to, [adjacency], int(entries[q, 0]), ef)
        valid = got_ids[q] >= 0
        assert np.allclose(got_dists[q][valid], want_dists)
        assert set(got_ids[q][valid].tolist()) == set(want_ids.tolist())


def _two_heap_search(
    distances_to: Callable[[IdArray], FloatArray], adjacency: np.ndarray, entry: int, ef: int
) -> dict[int, float]:
    """The paper's Algorithm 2 as printed: a min-heap of candidates, a max-heap of the found."""
    start = float(distances_to(np.array([entry]))[0])
    visited, candidates, found = {entry}, [(start, entry)], [(-start, entry)]
    while candidates:
        dist, element = heapq.heappop(candidates)
        if dist > -found[0][0]:
            break
        for neighbour in adjacency[element].tolist():
            if neighbour < 0 or neighbour in visited:
                continue
            visited.add(neighbour)
            d = float(distances_to(np.array([neighbour]))[0])
            if len(found) < ef or d < -found[0][0]:
                heapq.heappush(candidates, (d, neighbour))
                heapq.heappush(found, (-d, neighbour))
                if len(found) > ef:
                    heapq.heappop(found)
    return {e: -d for d, e in found}


def _random_graph(n: int, seed: int) -> tuple[FloatArray, np.ndarray, FloatArray]:
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, 4)).astype(np.float32)
    adjacency = np.stack([rng.permutation(n)[:6] for _ in range(n)]).astype(np.int32)
    adjacency[rng.random(adjacency.shape) < 0.2] = -1
    return points, adjacency, rng.standard_normal(4).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(st.integers(8, 80), st.integers(1, 16), st.integers(0, 2**32 - 1))
def test_sorted_beam_equals_the_papers_two_heaps(n: int, ef: int, seed: int) -> None:
    """With one expansion per round, the one-array beam visits and keeps exactly what the
    paper's two heaps do (same rows, same distances, nearest first)."""
    points, adjacency, query = _random_graph(n, seed)

    def distances_to(rows: IdArray) -> FloatArray:
        return f32(((points[rows] - query) ** 2).sum(axis=1))

    entry = seed % n
    want = _two_heap_search(distances_to, adjacency, entry, ef)
    rows, dists = search_layers(distances_to, [adjacency], entry, ef, expand=1)
    assert set(rows.tolist()) == set(want)
    assert np.allclose(dists, [want[r] for r in rows.tolist()])
    assert np.all(np.diff(dists) >= 0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(8, 80), st.integers(1, 16), st.sampled_from([2, 8, 64]), st.integers(0, 2**32 - 1)
)
def test_wide_rounds_return_a_valid_beam(n: int, ef: int, expand: int, seed: int) -> None:
    """Expanding several elements per round still returns distinct rows, nearest first, with
    their true distances; and when the beam can hold every element it finds all it reaches."""
    points, adjacency, query = _random_graph(n, seed)
    scored: list[int] = []

    def distances_to(rows: IdArray) -> FloatArray:
        scored.extend(rows.tolist())
        return f32(((points[rows] - query) ** 2).sum(axis=1))

    entry = seed % n
    rows, dists = search_layers(distances_to, [adjacency], entry, ef, expand=expand)
    assert len(set(rows.tolist())) == len(rows) <= ef
    assert len(scored) == len(set(scored))  # nothing is scored twice
    assert np.allclose(dists, ((points[rows] - query) ** 2).sum(axis=1))
    assert np.all(np.diff(dists) >= 0)
    everything, _ = search_layers(distances_to, [adjacency], entry, n, expand=expand)
    reachable = _two_heap_search(distances_to, adjacency, entry, n)
    assert set(everything.tolist()) == set(reachable)

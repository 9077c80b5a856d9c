"""The two algorithms at the heart of HNSW, as small pure functions, and their lockstep twins.

Names follow Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
using Hierarchical Navigable Small World graphs" (2016/2018): ``ef`` is the size of the dynamic
candidate list, ``M``/``Mmax``/``Mmax0`` the degree bounds, layer 0 the bottom layer that holds
every element.

Rules shared by every function here:

* A graph layer is an adjacency array of shape ``(rows, width)`` with the neighbours of row
  ``r`` in ``adjacency[r]``, padded on the right with ``-1``. Fixed-width integer arrays let a
  whole neighbour block be fetched and scored in one numpy call.
* Distances are *internal* distances (:mod:`.distance`): lower is closer, whatever the metric.
* ``-1`` doubles as a sentinel row: every visited mask has one extra slot at the end, set from
  the start, so padding is "already visited" without a branch.

The single-query functions (:func:`select_neighbours_heuristic`, :func:`search_layers`) are
the paper's Algorithms 4 and 2 (with Algorithm 5's descent) written plainly; the index uses
them for one query or one insertion at a time. The ``*_lockstep`` functions do the same work
for a whole batch of queries or base elements at once — each numpy call advances every
member of the batch by one step — and must return the same answers.
"""

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from refimpl.index.distance import FloatArray, IdArray

Adjacency = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]


def select_neighbours_heuristic(
    candidate_ids: IdArray, candidate_dists: FloatArray, pair_dists: FloatArray, m: int
) -> IdArray:
    """Choose at most ``m`` neighbours for a base element (the paper's Algorithm 4).

    ``candidate_ids[i]`` is a candidate and ``candidate_dists[i]`` its distance to the base
    element; ``pair_dists[i, j]`` is the distance between candidates ``i`` and ``j``. Visit
    the candidates from nearest to farthest (ties: lower position first) and keep a candidate
    only if it is at least as close to the base element as to every candidate kept so far —
    otherwise a kept neighbour already leads towards it. Stop once ``m`` are kept. Returns
    the kept ids, nearest first. (No ``extendCandidates``, no ``keepPrunedConnections``:
    the defaults of hnswlib and Qdrant.)
    """
    # [exercise: hnsw-select-neighbours] begin
    order = np.argsort(candidate_dists, kind="stable")
    kept: list[int] = []
    for i in order.tolist():
        if len(kept) == m:
            break
        if not kept or pair_dists[i, kept].min() >= candidate_dists[i]:
            kept.append(i)
    return candidate_ids[np.asarray(kept, dtype=np.int64)]
    # [exercise: hnsw-select-neighbours] end


def search_layers(
    distances_to: Callable[[IdArray], FloatArray],
    layers: Sequence[Adjacency],
    entry_point: int,
    ef: int,
    expand: int = 1,
) -> tuple[IdArray, FloatArray]:
    """Find the ``ef`` elements nearest to a query (the paper's Algorithm 5 with Algorithm 2).

    ``distances_to(ids)`` returns the query's distances to the rows ``ids`` (one numpy call).
    ``layers[0]`` is the bottom layer, ``layers[-1]`` the top, where the search starts at
    ``entry_point``. On each upper layer, descend greedily: move to the closest neighbour
    while that is closer. On layer 0, beam search: keep the ``ef`` best elements found so far,
    nearest first, each flagged once expanded; expand the nearest unexpanded one, let its
    unvisited neighbours in when they beat the worst found, and stop when every element of
    the beam is expanded. That is the paper's pair of heaps in one sorted array: its
    candidate heap is the beam's unexpanded elements (a candidate pushed out of the beam is
    farther than the worst found, where the paper stops anyway).

    Each round expands up to ``expand`` unexpanded elements, nearest first, and scores all
    their neighbours in one call; ``expand=1`` is the paper's loop. More per round costs a few
    distances (an element one-at-a-time order would have pushed out first may be expanded)
    and saves many numpy calls. Returns the found rows and distances, nearest first.
    """
    # [exercise: hnsw-layer-search] begin
    current = entry_point
    current_dist = float(distances_to(np.array([current]))[0])
    for adjacency in reversed(layers[1:]):
        while True:
            neighbours = adjacency[current]
            neighbours = neighbours[neighbours >= 0]
            if neighbours.size == 0:
                break
            dists = distances_to(neighbours)
            best = int(dists.argmin())
            if dists[best] >= current_dist:
                break
            current, current_dist = int(neighbours[best]), float(dists[best])
    bottom = layers[0]
    visited = np.zeros(len(bottom) + 1, dtype=bool)
    visited[-1] = True  # the -1 padding slot
    visited[current] = True
    # The beam, nearest first: an expanded row is stored as ~row (negative), the flag for free.
    found_dists = np.array([current_dist], dtype=np.float32)
    found_rows = np.array([current], dtype=np.int64)
    while True:
        unexpanded = np.flatnonzero(found_rows >= 0)[:expand]
        if unexpanded.size == 0:
            break
        expanding = found_rows[unexpanded]
        found_rows[unexpanded] = ~expanding
        neighbours = bottom[expanding].ravel().astype(np.int64)
        neighbours = neighbours[~visited[neighbours]]
        if len(expanding) > 1:  # two blocks may share a neighbour: keep one copy
            neighbours.sort()
            first = np.ones(len(neighbours), dtype=bool)
            first[1:] = neighbours[1:] != neighbours[:-1]
            neighbours = neighbours[first]
        if neighbours.size == 0:
            continue
        visited[neighbours] = True
        dists = distances_to(neighbours)
        if len(found_dists) == ef:  # only elements better than the worst found can enter
            closer = dists < found_dists[-1]
            neighbours, dists = neighbours[closer], dists[closer]
        merged = np.concatenate((found_dists, dists))
        order = merged.argsort(kind="stable")[:ef]
        found_dists = merged[order]
        found_rows = np.concatenate((found_rows, neighbours))[order]
    return ~found_rows, found_dists
    # [exercise: hnsw-layer-search] end


def select_neighbours_lockstep(
    candidate_ids: IdArray, candidate_dists: FloatArray, pair_dists: FloatArray, m: int
) -> IdArray:
    """:func:`select_neighbours_heuristic` for ``b`` base elements at once.

    Shapes: ids and distances ``(b, c)`` (padding: id ``-1``, distance ``inf``), pair
    distances ``(b, c, c)``. Returns ``(b, m)`` kept ids, nearest first, ``-1`` padded.
    The loop runs over *ranks* (nearest candidate first); each step decides the candidate of
    that rank for every base element in one vector operation, tracking for each candidate
    its distance to the nearest element kept so far.
    """
    n_bases, width = candidate_ids.shape
    order = np.argsort(candidate_dists, axis=1, kind="stable")
    everyone = np.arange(n_bases)
    nearest_kept = np.full((n_bases, width), np.inf, dtype=np.float32)
    kept = np.full((n_bases, m), -1, dtype=np.int64)
    count = np.zeros(n_bases, dtype=np.int64)
    ranks = int((candidate_ids >= 0).sum(axis=1).max(initial=0))  # padding sorts last
    for rank in range(ranks):
        position = order[:, rank]
        ok = (
            (candidate_ids[everyone, position] >= 0)
            & (count < m)
            & (nearest_kept[everyone, position] >= candidate_dists[everyone, position])
        )
        chosen = np.flatnonzero(ok)
        if chosen.size == 0:
            if (count == m).all():
                break
            continue
        kept[chosen, count[chosen]] = candidate_ids[chosen, position[chosen]]
        count[chosen] += 1
        nearest_kept[chosen] = np.minimum(
            nearest_kept[chosen], pair_dists[chosen, position[chosen]]
        )
    return kept


_SENTINEL = np.int64(np.iinfo(np.int64).max)
"""A beam slot holding nothing: sorts last, decodes to row ``-1``, flagged expanded."""
_ROW_MASK = np.int64((1 << 31) - 1)


def _encode(dists: FloatArray, rows: IdArray) -> IdArray:
    """Pack a distance and a row into one ``int64`` whose order is the distance order.

    High 32 bits: the float32 bits made order-preserving as a signed integer (negative floats
    have their non-sign bits flipped); then 31 bits of row; the lowest bit is the *expanded*
    flag. One plain ``sort`` of these keys then merges beams without any index gathering.
    """
    bits = np.asarray(dists, dtype=np.float32).view(np.int32)
    ordered = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    return (ordered.astype(np.int64) << 32) | (np.asarray(rows, dtype=np.int64) << 1)


def _decode(keys: IdArray) -> tuple[IdArray, FloatArray]:
    """Rows (``-1`` for empty slots) and distances (``inf``) of packed beam keys."""
    empty = keys == _SENTINEL
    ordered = (keys >> 32).astype(np.int32)
    bits = ordered ^ ((ordered >> 31) & np.int32(0x7FFFFFFF))
    dists = bits.view(np.float32).copy()
    rows = (keys >> 1) & _ROW_MASK
    rows[empty] = -1
    dists[empty] = np.inf
    return rows, dists


def search_layer_lockstep(
    pair_distances: Callable[[IdArray, IdArray], FloatArray],
    adjacency: Adjacency,
    entries: IdArray,
    ef: int,
    expand: int = 1,
) -> tuple[IdArray, FloatArray]:
    """Beam search on one layer for ``b`` queries advancing together (Algorithm 2, batched).

    ``pair_distances(q, rows)`` returns the distances between query ``q[i]`` (an index into
    the batch) and row ``rows[i]``. ``entries`` ``(b, e)`` are the entry points (``-1``
    padded). Each query keeps a sorted beam of its ``ef`` best rows with an *expanded* flag,
    packed into one integer per slot (:func:`_encode`); each round expands the best
    unexpanded row of every unfinished query: one gather of all their neighbour blocks, one
    distance call for the neighbours not yet visited, one sort to merge. A query is finished
    when its whole beam is expanded — the same stopping rule as :func:`search_layers`. Returns ``(b, ef)`` rows and distances, nearest first
    (``-1``/``inf`` where fewer were found).

    ``expand > 1`` expands up to that many of the best unexpanded rows per round: fewer,
    larger numpy calls (what a single query needs, where each call's fixed cost dominates),
    at the price of a few distances the one-at-a-time order might have skipped; the beam can
    only get better, never worse.
    """
    n_queries = len(entries)
    stride = len(adjacency) + 1
    visited = np.zeros(n_queries * stride, dtype=bool)
    visited[stride - 1 :: stride] = True  # each query's -1 padding slot
    beam = _entry_beam(pair_distances, visited, stride, entries, ef)
    active = np.arange(n_queries)
    while True:
        open_ = (beam[active] & 1) == 0
        busy = open_.any(axis=1)
        active, open_ = active[busy], open_[busy]
        if active.size == 0:
            break
        neighbours = _expand(beam, active, open_, adjacency, expand)
        slots = (active * stride)[:, None] + neighbours
        fresh = ~visited[slots]
        visited[slots] = True
        at, col = np.nonzero(fresh)
        if at.size == 0:
            continue
        found = neighbours[at, col].astype(np.int64)
        keys = np.full(neighbours.shape, _SENTINEL, dtype=np.int64)
        keys[at, col] = _encode(pair_distances(active[at], found), found)
        useful = keys.min(axis=1) < beam[active, -1]
        if useful.any():
            rows = active[useful]
            merged = np.concatenate([beam[rows], keys[useful]], axis=1)
            merged.sort(axis=1)
            beam[rows] = merged[:, :ef]
    return _decode(beam)


def _expand(
    beam: IdArray, active: IdArray, open_: BoolArray, adjacency: Adjacency, expand: int
) -> npt.NDArray[np.int32]:
    """Flag the best ``expand`` unexpanded slots of each active beam as expanded and return
    their neighbour blocks side by side, ``(a, expand * width)``, duplicates set to ``-1``."""
    if expand == 1:
        position = open_.argmax(axis=1)
        nodes = (beam[active, position] >> 1) & _ROW_MASK
        beam[active, position] |= 1
        block: npt.NDArray[np.int32] = adjacency[nodes]
        return block
    position = np.argsort(~open_, axis=1, kind="stable")[:, :expand]
    valid = np.take_along_axis(open_, position, axis=1)
    picked = beam[active[:, None], position]
    beam[active[:, None], position] = picked | 1
    nodes = np.where(valid, (picked >> 1) & _ROW_MASK, 0)
    blocks = adjacency[nodes]
    blocks[~valid] = -1
    neighbours = blocks.reshape(len(active), -1)
    neighbours.sort(axis=1)
    neighbours[:, 1:][neighbours[:, 1:] == neighbours[:, :-1]] = -1
    return neighbours


def _entry_beam(
    pair_distances: Callable[[IdArray, IdArray], FloatArray],
    visited: BoolArray,
    stride: int,
    entries: IdArray,
    ef: int,
) -> IdArray:
    """The starting beams as packed keys: the entry points, scored, sorted, cut or padded."""
    at, col = np.nonzero(entries >= 0)
    rows = entries[at, col]
    keys = np.full((len(entries), max(ef, entries.shape[1])), _SENTINEL, dtype=np.int64)
    keys[at, col] = _encode(pair_distances(at, rows), rows)
    visited[at * stride + rows] = True
    keys.sort(axis=1)
    return keys[:, :ef].copy()

"""HNSW: a hierarchical navigable small-world graph index in numpy (Malkov & Yashunin).

Rules:

* Qdrant's defaults: ``m = 16`` links per element on the upper layers, ``m0 = 2 m`` on layer 0,
  ``ef_construct = 100``, the level multiplier ``mL = 1 / ln(m)`` (an element reaches layer
  ``l`` with probability ``m**-l``), and ``full_scan_threshold_kb = 10000``: when the points a
  search may return take less than that many kilobytes of vectors (``count * dim * 4 / 1024``),
  the search is an exact scan, as Qdrant's query planner does.
* Levels are drawn from a seeded ``random.Random`` (passed in, or seeded from
  ``HnswConfig.seed``): the same inserts in the same order build the same graph.
* Upserting an existing id inserts a new element and marks the old one deleted; deleting
  marks the element deleted. Deleted elements stay in the graph and keep routing searches
  (so the graph never splits), but are never returned.
* A filtered search walks the whole graph and keeps only allowed points. Its beam is widened
  to ``k / selectivity`` so that it holds about ``k`` allowed points; a beam wider than a
  quarter of the rows is not worth it and the allowed points are scanned instead. When the
  beam still found fewer than ``k`` allowed points, ``ef`` doubles, and finally the allowed
  points are scanned, so the search returns ``k`` points whenever at least ``k`` are allowed.

Theory of operation. Each layer is a fixed-width ``int32`` adjacency array (``-1`` padded), so
a neighbour block is one slice and its distances one numpy call. One query at a time runs
:func:`~refimpl.index.graph.search_layers` (one sorted beam, several expansions per numpy
call); a batch of queries
runs :func:`~refimpl.index.graph.search_layer_lockstep`, where every query advances one
expansion per numpy call. Construction is batched: a batch of new elements searches the
existing graph in lockstep (``ef = ef_construct``), adds the nearest other members of its own
batch as candidates (they cannot find each other in the graph yet), chooses neighbours with
the heuristic for all of them at once, and then adds the reverse links, shrinking with the
heuristic every neighbour list that overflows. Batches start at one element and grow with the
graph (:data:`HnswConfig.build_batch_fraction`), so early elements, which shape the graph's
long links, are inserted almost one by one.
"""

import functools
import math
import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index.blas import one_blas_thread
from refimpl.index.distance import (
    Distance,
    FloatArray,
    IdArray,
    many_to_many,
    one_to_many,
    paired,
    pairwise_within,
    rowwise,
)
from refimpl.index.errors import VectorIndexError
from refimpl.index.exact import check_k, exact_search, to_hits
from refimpl.index.graph import (
    Adjacency,
    search_layer_lockstep,
    search_layers,
    select_neighbours_lockstep,
)
from refimpl.index.persist import Arrays, ArrayStore
from refimpl.index.protocol import ScoredPoint
from refimpl.index.store import VectorStore

ProgressCallback = Callable[[int], None]
"""Called with the number of elements just inserted (e.g. ``tqdm.update``)."""

SINGLE_QUERY_EXPAND = 32
"""Fewest candidates one query expands per round (half of ``ef`` when that is more; see
:func:`~refimpl.index.graph.search_layers`). Each round costs a dozen numpy calls whatever its
size, so one query is fastest in few wide rounds: measured by ``bench/bench_index.py``."""

_WORK_BUDGET = 1 << 26
"""Elements of a lockstep search's visited masks per chunk of queries."""

_GATHER_ROWS = 2048
"""Rows gathered at a time to score query-row pairs: a few hundred kilobytes, which the
allocator hands back chunk after chunk; gathering ten thousand rows at once is several times
slower (fresh memory, one page fault per page)."""

_PAIR_BUDGET = 1 << 22
"""Elements of a gathered-vectors or pair-distance block per chunk of base elements: small
enough for the allocator to reuse the memory chunk after chunk (a fresh block of tens of
megabytes costs a page fault per page) and for the heuristic's passes to find it in cache."""


@dataclass(frozen=True, slots=True)
class HnswConfig:
    """HNSW parameters; the first three are Qdrant's ``hnsw_config`` with its defaults."""

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    seed: int = 0
    build_batch_max: int = 1024
    build_batch_fraction: float = 0.125

    def __post_init__(self) -> None:
        if self.m < 2:
            raise VectorIndexError(f"m must be at least 2, got {self.m}")
        if self.ef_construct < 4:
            raise VectorIndexError(f"ef_construct must be at least 4, got {self.ef_construct}")
        if self.full_scan_threshold_kb < 0 or self.build_batch_max < 1:
            raise VectorIndexError("full_scan_threshold_kb >= 0 and build_batch_max >= 1")

    @property
    def m0(self) -> int:
        """Links per element on layer 0."""
        return 2 * self.m

    @property
    def level_multiplier(self) -> float:
        """The paper's ``mL``: level = floor(-ln(U) * mL)."""
        return 1.0 / math.log(self.m)


class HnswIndex:
    """The HNSW index of one shard; implements :class:`~refimpl.index.protocol.VectorIndex`."""

    def __init__(
        self,
        dim: int,
        distance: Distance = Distance.COSINE,
        config: HnswConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config or HnswConfig()
        self.rng = rng or random.Random(self.config.seed)
        self.store = VectorStore(dim, distance)
        self.levels = np.zeros(0, dtype=np.int8)
        self.layers: list[Adjacency] = []
        self.degrees: list[npt.NDArray[np.int32]] = []
        self.entry_point = -1
        self.top_level = -1
        self.graph_rows = 0

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

    # --- writing --------------------------------------------------------------------------
    def upsert(
        self,
        point_ids: Sequence[PointId],
        vectors: npt.ArrayLike,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Insert or replace vectors by point id, building the graph in batches."""
        rows = self.store.append(point_ids, self.store.check_vectors(vectors))
        with one_blas_thread():
            self._insert_rows(rows, progress)

    def delete(self, point_ids: Iterable[PointId]) -> int:
        """Mark the given ids deleted (unknown ids are ignored); the graph keeps them."""
        removed = 0
        for point_id in point_ids:
            if point_id in self.store.row_of:
                self.store.delete(point_id)
                removed += 1
        return removed

    def _insert_rows(self, rows: IdArray, progress: ProgressCallback | None) -> None:
        """Draw levels for new rows and link them into the graph, batch by batch."""
        self._reserve(self.store.n_rows)
        multiplier = self.config.level_multiplier
        levels = np.array(
            [int(-math.log(1.0 - self.rng.random()) * multiplier) for _ in range(len(rows))],
            dtype=np.int8,
        )
        self.levels[rows] = levels
        start = 0
        while start < len(rows):
            size = self._batch_size()
            # An element that opens a new top layer goes alone: it becomes the entry point.
            above = np.flatnonzero(levels[start : start + size] > self.top_level)
            if above.size:
                size = max(1, int(above[0]))
            batch = rows[start : start + size]
            self._insert_batch(batch, levels[start : start + size])
            start += len(batch)
            if progress is not None:
                progress(len(batch))

    def _batch_size(self) -> int:
        grown = int(self.graph_rows * self.config.build_batch_fraction)
        return max(1, min(self.config.build_batch_max, grown))

    def _insert_batch(self, rows: IdArray, levels: npt.NDArray[np.int8]) -> None:
        """Link ``rows`` (all below or at the current top, or one single new top) into the
        graph: per layer, top-down, a lockstep search then the links (Algorithm 1)."""
        self._ensure_layers(int(levels.max()))
        queries = self.store.vectors[rows]
        entries = np.full((len(rows), 1), self.entry_point, dtype=np.int64)
        for layer in range(min(int(levels.max()), self.top_level), -1, -1):
            passing = np.flatnonzero(levels < layer)
            linking = np.flatnonzero(levels >= layer)
            new_entries = np.full((len(rows), self.config.ef_construct), -1, dtype=np.int64)
            if passing.size:  # above its own level an element only descends greedily
                found, _ = self._search_layer(queries[passing], entries[passing], layer, 1)
                new_entries[passing, :1] = found
            found, dists = self._search_layer(
                queries[linking], entries[linking], layer, self.config.ef_construct
            )
            new_entries[linking] = found
            self._link(rows[linking], layer, found, dists)
            entries = new_entries
        if self.entry_point < 0 or int(levels.max()) > self.top_level:
            top = int(np.argmax(levels))
            self.entry_point, self.top_level = int(rows[top]), int(levels[top])
        self.graph_rows += len(rows)

    def _search_layer(
        self, queries: FloatArray, entries: IdArray, layer: int, ef: int, expand: int = 1
    ) -> tuple[IdArray, FloatArray]:
        """Lockstep search of one layer, in chunks that bound the visited masks."""
        if self.graph_rows <= ef:
            return self._scan_layer(queries, layer, ef)
        ids = np.full((len(queries), ef), -1, dtype=np.int64)
        dists = np.full((len(queries), ef), np.inf, dtype=np.float32)
        chunk = max(1, _WORK_BUDGET // (len(self.layers[layer]) + 1))
        for start in range(0, len(queries), chunk):
            part = slice(start, start + chunk)
            ids[part], dists[part] = search_layer_lockstep(
                self._pair_distances(queries[part]), self.layers[layer], entries[part], ef, expand
            )
        return ids, dists

    def _scan_layer(self, queries: FloatArray, layer: int, ef: int) -> tuple[IdArray, FloatArray]:
        """What the beam search returns when the beam holds the whole (connected) layer:
        every element of it, nearest first. Exact, and far cheaper for a young graph."""
        members = np.flatnonzero(self.levels[: self.graph_rows] >= layer)
        vectors, sq = self.store.vectors[members], self.store.sq_norms[members]
        dists = many_to_many(self.distance, queries, vectors, sq)
        order = np.argsort(dists, axis=1, kind="stable")[:, :ef]
        ids = np.full((len(queries), ef), -1, dtype=np.int64)
        out = np.full((len(queries), ef), np.inf, dtype=np.float32)
        ids[:, : order.shape[1]] = members[order]
        out[:, : order.shape[1]] = np.take_along_axis(dists, order, axis=1)
        return ids, out

    def _pair_distances(self, queries: FloatArray) -> Callable[[IdArray, IdArray], FloatArray]:
        vectors, sq, distance = self.store.vectors, self.store.sq_norms, self.store.distance

        def pair_distances(which: IdArray, rows: IdArray) -> FloatArray:
            if len(rows) <= _GATHER_ROWS:
                return paired(
                    distance, queries.take(which, axis=0), vectors.take(rows, axis=0), sq[rows]
                )
            out = np.empty(len(rows), dtype=np.float32)
            for start in range(0, len(rows), _GATHER_ROWS):
                part = slice(start, start + _GATHER_ROWS)
                out[part] = pair_distances(which[part], rows[part])
            return out

        return pair_distances

    def _link(self, rows: IdArray, layer: int, found: IdArray, dists: FloatArray) -> None:
        """Choose neighbours for new ``rows`` among ``found`` and the nearest rows of the same
        batch, write them, and add the reverse links."""
        width = self._width(layer)
        vectors, sq = self.store.vectors[rows], self.store.sq_norms[rows]
        near = min(len(rows) - 1, width // 2)  # half the list: enough to knit a batch together
        if near > 0:
            batch = many_to_many(self.distance, vectors, vectors, sq)
            np.fill_diagonal(batch, np.inf)
            closest = np.argpartition(batch, near - 1, axis=1)[:, :near]
            found = np.concatenate([found, rows[closest]], axis=1)
            dists = np.concatenate([dists, np.take_along_axis(batch, closest, axis=1)], axis=1)
        used = int((found >= 0).sum(axis=1).max(initial=0))  # drop all-padding columns
        order = np.argsort(found < 0, axis=1, kind="stable")[:, :used]
        found = np.take_along_axis(found, order, axis=1)
        dists = np.take_along_axis(dists, order, axis=1)
        chosen = self._select(found, dists, width)
        self.layers[layer][rows] = chosen
        self.degrees[layer][rows] = (chosen >= 0).sum(axis=1)
        valid = chosen >= 0
        sources = np.broadcast_to(rows[:, None], chosen.shape)[valid]
        self._add_reverse_links(layer, chosen[valid], sources)

    def _select(self, candidates: IdArray, dists: FloatArray, m: int) -> IdArray:
        """The heuristic for many base elements, chunked to bound the pair-distance blocks."""
        out = np.full((len(candidates), m), -1, dtype=np.int64)
        width = candidates.shape[1]
        chunk = max(1, _PAIR_BUDGET // (width * max(width, self.dim)))
        for start in range(0, len(candidates), chunk):
            part = slice(start, start + chunk)
            ids = candidates[part]
            gathered = self.store.vectors.take(ids, axis=0)
            pairs = pairwise_within(self.distance, gathered, self.store.sq_norms[ids])
            out[part] = select_neighbours_lockstep(ids, dists[part], pairs, m)
        return out

    def _add_reverse_links(self, layer: int, targets: IdArray, sources: IdArray) -> None:
        """Add ``targets[i] -> sources[i]`` links; a list that would overflow is rebuilt from
        its old and new members with the heuristic (Algorithm 1, "shrink connections")."""
        adjacency, degree, width = self.layers[layer], self.degrees[layer], self._width(layer)
        already = (adjacency[targets] == sources[:, None]).any(axis=1)
        targets, sources = targets[~already], sources[~already]
        order = np.argsort(targets, kind="stable")
        targets, sources = targets[order], sources[order]
        unique, first, counts = np.unique(targets, return_index=True, return_counts=True)
        fits = counts <= width - degree[unique]
        rank = np.arange(len(targets)) - np.repeat(first, counts)
        simple = np.repeat(fits, counts)
        adjacency[targets[simple], degree[targets[simple]] + rank[simple]] = sources[simple]
        degree[unique[fits]] += counts[fits].astype(np.int32)
        full, full_counts, full_first = unique[~fits], counts[~fits], first[~fits]
        # Group the overflowing lists by how many links arrive (1, 2, 3-4, 5-8, ...), so
        # each group's pair-distance blocks are only as wide as that group needs.
        groups = np.ceil(np.log2(full_counts)).astype(np.int64)
        for group in np.unique(groups):
            chosen = np.flatnonzero(groups == group)
            slots = np.arange(1 << int(group))
            arriving = full_first[chosen][:, None] + slots
            present = slots < full_counts[chosen][:, None]
            incoming = np.full(arriving.shape, -1, dtype=np.int64)
            incoming[present] = sources[arriving[present]]
            pool = np.concatenate([adjacency[full[chosen]].astype(np.int64), incoming], axis=1)
            self._shrink(layer, full[chosen], pool)

    def _shrink(self, layer: int, targets: IdArray, pool: IdArray) -> None:
        """Rebuild the neighbour lists of ``targets`` from the candidate ``pool`` rows."""
        width = self._width(layer)
        chunk = max(1, _PAIR_BUDGET // (pool.shape[1] * max(pool.shape[1], self.dim)))
        for start in range(0, len(targets), chunk):
            part = slice(start, start + chunk)
            ids = pool[part]
            gathered, gathered_sq = self.store.vectors.take(ids, axis=0), self.store.sq_norms[ids]
            dists = rowwise(self.distance, self.store.vectors[targets[part]], gathered, gathered_sq)
            dists[ids < 0] = np.inf
            pairs = pairwise_within(self.distance, gathered, gathered_sq)
            chosen = select_neighbours_lockstep(ids, dists, pairs, width)
            self.layers[layer][targets[part]] = chosen
            self.degrees[layer][targets[part]] = (chosen >= 0).sum(axis=1)

    def _width(self, layer: int) -> int:
        return self.config.m0 if layer == 0 else self.config.m

    def _reserve(self, rows: int) -> None:
        """Grow the per-row arrays (levels, every layer) to hold ``rows`` rows."""
        if rows <= len(self.levels):
            return
        capacity = max(rows, 2 * len(self.levels), 16)
        self.levels = np.concatenate([self.levels, np.zeros(capacity - len(self.levels), np.int8)])
        for layer, adjacency in enumerate(self.layers):
            extra = np.full((capacity - len(adjacency), self._width(layer)), -1, np.int32)
            self.layers[layer] = np.concatenate([adjacency, extra])
            self.degrees[layer] = np.concatenate(
                [self.degrees[layer], np.zeros(capacity - len(adjacency), np.int32)]
            )

    def _ensure_layers(self, level: int) -> None:
        while len(self.layers) <= level:
            width = self._width(len(self.layers))
            self.layers.append(np.full((len(self.levels), width), -1, dtype=np.int32))
            self.degrees.append(np.zeros(len(self.levels), dtype=np.int32))

    # --- searching ------------------------------------------------------------------------
    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[ScoredPoint]:
        """The ``k`` best points for one query; ``ef`` defaults to ``ef_construct`` (as in
        Qdrant) and is raised to ``k`` when smaller."""
        prepared = self.store.check_query(query)  # one query: matrix-vector products only
        return self._answer(prepared[None, :], k, ef, allowed, exact)[0]

    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[list[ScoredPoint]]:
        """:meth:`search` for every row of ``queries``, the queries advancing in lockstep."""
        prepared = self.store.check_queries(queries)
        with one_blas_thread():
            return self._answer(prepared, k, ef, allowed, exact)

    def _answer(
        self,
        queries: FloatArray,
        k: int,
        ef: int | None,
        allowed: Collection[PointId] | None,
        exact: bool,
    ) -> list[list[ScoredPoint]]:
        """Plan (full scan or graph, as Qdrant's planner does), search, filter, and widen."""
        k = check_k(k)
        beam = max(k, self.config.ef_construct if ef is None else check_k(ef, "ef"))
        rows = None if allowed is None else self.store.live_rows(allowed)
        count = len(self.store) if rows is None else len(rows)
        if rows is not None and count:  # a beam this wide holds about k allowed points
            beam = max(beam, -(-k * len(self.store) // count))
        if exact or self.entry_point < 0 or self.uses_full_scan(count) or beam > self._widest():
            found, dists = exact_search(self.store, queries, k, rows)
            return [to_hits(self.store, r, d) for r, d in zip(found, dists, strict=True)]
        mask = None if allowed is None else self.store.admissible_mask(allowed)
        keep = functools.partial(self._keep_admissible, k=k, beam=beam, mask=mask, rows=rows)
        if len(queries) == 1:  # one query: the single-query search, no lockstep machinery
            return [keep(queries[0], self._graph_search(queries[0], beam))]
        many_rows, many_dists = self._graph_search_lockstep(queries, beam)
        return [keep(query, (many_rows[i], many_dists[i])) for i, query in enumerate(queries)]

    def _keep_admissible(
        self,
        query: FloatArray,
        hits: tuple[IdArray, FloatArray],
        *,
        k: int,
        beam: int,
        mask: npt.NDArray[np.bool_] | None,
        rows: IdArray | None,
    ) -> list[ScoredPoint]:
        """The ``k`` best admissible ``hits`` (rows, ``-1`` padded, and distances) of one
        query's beam; widen the search when it holds too few (``mask`` ``None``: no filter)."""
        hit_rows, hit_dists = hits
        admissible = ~self.store.deleted[hit_rows] if mask is None else mask[hit_rows]
        keep = admissible & (hit_rows >= 0)
        count = len(self.store) if rows is None else len(rows)
        if np.count_nonzero(keep) < min(k, count):
            full_mask = self.store.admissible_mask(None) if mask is None else mask
            hit_rows, hit_dists = self._widen(query, k, beam, full_mask, rows)
        else:
            hit_rows, hit_dists = hit_rows[keep][:k], hit_dists[keep][:k]
        return to_hits(self.store, hit_rows, hit_dists)

    def uses_full_scan(self, count: int) -> bool:
        """True when ``count`` candidate points take less than ``full_scan_threshold_kb``
        kilobytes of vectors: Qdrant's planner then scans instead of searching the graph."""
        return count * self.dim * 4 < self.config.full_scan_threshold_kb * 1024

    def _widen(
        self,
        query: FloatArray,
        k: int,
        ef: int,
        mask: npt.NDArray[np.bool_],
        rows: IdArray | None,
    ) -> tuple[IdArray, FloatArray]:
        """Too few allowed points in the beam: double ``ef`` while that is cheaper than a
        scan, then scan the allowed points exactly."""
        while ef < self._widest():
            ef *= 2
            found, dists = self._graph_search(query, ef)
            keep = mask[found]
            if keep.sum() >= k:
                return found[keep][:k], dists[keep][:k]
        found, dists = exact_search(self.store, query[None, :], k, rows)
        return found[0], dists[0]

    def _widest(self) -> int:
        """The widest beam worth searching: past a quarter of the rows a scan is cheaper."""
        return max(self.config.ef_construct, self.store.n_rows // 4)

    def _graph_search(self, query: FloatArray, ef: int) -> tuple[IdArray, FloatArray]:
        """One query: the paper's descent and beam search (one sorted beam, see
        :func:`~refimpl.index.graph.search_layers`)."""
        vectors, sq, distance = self.store.vectors, self.store.sq_norms, self.store.distance
        negated = -query

        def negated_dots(rows: IdArray) -> FloatArray:  # the hot path: one gather, one product
            dots: FloatArray = np.dot(vectors.take(rows, axis=0), negated)
            return dots

        def any_distance(rows: IdArray) -> FloatArray:
            return one_to_many(distance, query, vectors[rows], sq[rows])

        distances_to = negated_dots if distance.higher_is_better else any_distance
        layers = self.layers[: self.top_level + 1]
        expand = max(SINGLE_QUERY_EXPAND, ef // 2)
        return search_layers(distances_to, layers, self.entry_point, ef, expand)

    def _graph_search_lockstep(self, queries: FloatArray, ef: int) -> tuple[IdArray, FloatArray]:
        """Many queries: greedy descent (a beam of 1) on the upper layers, then the beam of
        width ``ef`` on layer 0, all queries advancing together."""
        entries = np.full((len(queries), 1), self.entry_point, dtype=np.int64)
        for layer in range(self.top_level, 0, -1):
            entries, _ = self._search_layer(queries, entries, layer, 1)
        return self._search_layer(queries, entries, 0, ef)

    # --- persistence ----------------------------------------------------------------------
    def save(self, store: ArrayStore) -> None:
        """Write vectors, ids, levels, every layer and the configuration as numpy arrays."""
        n = self.store.n_rows
        arrays: Arrays = self.store.to_arrays()
        config = self.config
        arrays["hnsw_config"] = np.array(
            [
                config.m,
                config.ef_construct,
                config.full_scan_threshold_kb,
                config.seed,
                config.build_batch_max,
            ],
            dtype=np.int64,
        )
        arrays["hnsw_batch_fraction"] = np.array([config.build_batch_fraction])
        arrays["hnsw_graph"] = np.array(
            [self.entry_point, self.top_level, self.graph_rows], dtype=np.int64
        )
        arrays["hnsw_levels"] = self.levels[:n]
        for layer, adjacency in enumerate(self.layers):
            arrays[f"hnsw_layer_{layer}"] = adjacency[:n]
        version, state, gauss = self.rng.getstate()
        arrays["hnsw_rng_state"] = np.array(state, dtype=np.uint64)
        arrays["hnsw_rng_extra"] = np.array(
            [version, math.nan if gauss is None else gauss], dtype=np.float64
        )
        store.write_arrays(arrays)

    @classmethod
    def load(cls, store: ArrayStore) -> Self:
        """Rebuild an index written by :meth:`save`; it continues exactly where it was."""
        arrays = store.read_arrays()
        vectors = VectorStore.from_arrays(arrays)
        m, ef_construct, threshold, seed, batch_max = (int(x) for x in arrays["hnsw_config"])
        config = HnswConfig(
            m, ef_construct, threshold, seed, batch_max, float(arrays["hnsw_batch_fraction"][0])
        )
        version, gauss = arrays["hnsw_rng_extra"]
        rng = random.Random()
        rng.setstate(
            (
                int(version),
                tuple(int(x) for x in arrays["hnsw_rng_state"]),
                None if math.isnan(gauss) else float(gauss),
            )
        )
        index = cls(vectors.dim, vectors.distance, config, rng)
        index.store = vectors
        index.entry_point, index.top_level, index.graph_rows = (
            int(x) for x in arrays["hnsw_graph"]
        )
        index.levels = np.asarray(arrays["hnsw_levels"], dtype=np.int8)
        layer = 0
        while f"hnsw_layer_{layer}" in arrays:
            adjacency = np.asarray(arrays[f"hnsw_layer_{layer}"], dtype=np.int32)
            index.layers.append(adjacency.copy())
            index.degrees.append((adjacency >= 0).sum(axis=1).astype(np.int32))
            layer += 1
        return index

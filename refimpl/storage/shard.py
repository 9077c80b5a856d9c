"""The store of one shard replica: WAL, points, vector index, checkpoints, and the reads.

Rules:

* **Validate, log, apply.** An update is checked completely first (dimension, finite
  components, ids, JSON payloads; a delete-by-filter is resolved to the ids it hits), so a
  bad batch raises :class:`BadRequest` and writes nothing. Then it gets the next operation
  number, is appended to the WAL (fsynced when ``wait``), and only then changes the points.
* **Operation numbers** increase by one per update (Qdrant's ``operation_id``). An update that
  arrives with its number already set (from the replica that assigned it) is applied only if
  the number is new; a repeat is ignored, so redelivery is harmless.
* **Recovery**: load the checkpoint, then replay every WAL record after the checkpoint's
  operation number. Every acknowledged (fsynced) update survives a crash.
* **Checkpoint**: when the WAL grows past ``checkpoint_wal_bytes``, right after an HNSW graph
  is built and then every ``hnsw_checkpoint_every_ops`` updates while the shard has one (a
  graph is slow to rebuild by replay), or on request, the points and the index are written,
  then the WAL keeps only its last ``wal_retain_ops`` records (enough for a lagging replica to
  catch up by delta, :meth:`ShardStore.ops_since`).
* **Index**: an exact (brute-force) index while the shard is small; once its vectors pass
  ``indexing_threshold_kb`` the shard builds an HNSW graph over all points and then updates it
  incrementally (Qdrant's optimizer builds HNSW only above its ``indexing_threshold``).
* **Reads** are Qdrant's: a query returns the best points by score (ties by id), a scroll
  walks ids in order, count and retrieve are exact.
* Not thread-safe: the caller runs one call at a time per shard.

Theory of operation: points live in three dicts keyed by id (prepared vector, payload,
version); the index holds its own copy of the vectors. A scroll sorts the ids once and reuses
the sorted list until the next write.
"""

import bisect
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from refimpl.ids import PointId
from refimpl.index import Distance, ExactIndex, HnswConfig, HnswIndex, MemoryArrayStore
from refimpl.index.blas import one_blas_thread
from refimpl.index.distance import FloatArray, prepare
from refimpl.points import (
    ALL_PAYLOAD,
    BadRequest,
    DeleteByFilter,
    DeletePoints,
    Filter,
    OrderBy,
    PayloadSelector,
    QueryRequest,
    ScrollRequest,
    UpdateOperation,
    UpsertPoints,
    evaluate,
    id_sort_key,
    id_to_json,
    parse_point_id,
)
from refimpl.points.errors import point_not_found, wrong_input
from refimpl.points.requests import with_query_vector
from refimpl.points.results import Record, ScoredRecord, ScrollPage, order_scored
from refimpl.storage.checkpoint import CheckpointData, decode_checkpoint, encode_checkpoint
from refimpl.storage.errors import StorageError
from refimpl.storage.media import DiskMedium, Files, MemoryMedium, ShardMedium
from refimpl.storage.wal import Wal, WalRecord, encode_record

logger = logging.getLogger(__name__)

Payload = dict[str, Any]
Index = ExactIndex | HnswIndex


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """What a shard needs to know about its collection, and its storage limits."""

    dim: int
    distance: Distance = Distance.COSINE
    hnsw: HnswConfig = field(default_factory=HnswConfig)
    indexing_threshold_kb: int = 10_000
    checkpoint_wal_bytes: int = 32 << 20
    wal_retain_ops: int = 1_000
    hnsw_checkpoint_every_ops: int = 16

    def __post_init__(self) -> None:
        assert self.dim > 0, "the collection layer validates the vector size"
        assert self.checkpoint_wal_bytes > 0 and self.wal_retain_ops >= 0
        assert self.hnsw_checkpoint_every_ops > 0

    @property
    def indexing_threshold_points(self) -> int:
        """Points above which the shard uses HNSW (1 kB = 256 float32 components)."""
        return self.indexing_threshold_kb * 1024 // (4 * self.dim)


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """Qdrant's ``UpdateResult``."""

    operation_id: int
    status: Literal["acknowledged", "completed"]

    def to_json(self) -> dict[str, Any]:
        """``{"operation_id": n, "status": "completed"}``."""
        return {"operation_id": self.operation_id, "status": self.status}


class ShardStore:
    """One shard replica's data: open it on a medium (disk or memory), update it, read it."""

    def __init__(self, medium: ShardMedium, config: ShardConfig, name: str = "shard") -> None:
        self.medium = medium
        self.config = config
        self.name = name
        self._vectors: dict[PointId, FloatArray] = {}
        self._payloads: dict[PointId, Payload | None] = {}
        self._versions: dict[PointId, int] = {}
        self._index: Index = ExactIndex(config.dim, config.distance)
        self._sorted: tuple[list[tuple[int, int]], list[PointId]] | None = None
        self._graph_unsaved = False  # an HNSW graph was built and not yet checkpointed
        self.checkpoint_op_num = 0
        self._load_checkpoint()
        self.wal = Wal(medium.log, f"{name}: WAL")
        self.wal.dropped_through = max(self.wal.dropped_through, self.checkpoint_op_num)
        replayed = [r for r in self.wal.records if r.op_num > self.checkpoint_op_num]
        for record in replayed:
            self._apply_record(record)
        self.last_op_num = max(self.checkpoint_op_num, self.wal.last_op_num)
        self.replayed_ops = len(replayed)
        if self._graph_unsaved:  # built during replay: save it so the next start loads it
            self.checkpoint()

    @classmethod
    def open(cls, directory: Path, config: ShardConfig) -> "ShardStore":
        """Open (or create) the shard stored in ``directory``, recovering after a crash."""
        return cls(DiskMedium(directory), config, name=str(directory))

    @classmethod
    def in_memory(cls, config: ShardConfig, medium: MemoryMedium | None = None) -> "ShardStore":
        """The in-memory twin (same behaviour; ``medium.crash()`` simulates power loss)."""
        return cls(medium if medium is not None else MemoryMedium(), config, name="memory shard")

    @classmethod
    def restore(cls, medium: ShardMedium, files: Files, config: ShardConfig) -> "ShardStore":
        """Create a shard on an **empty** medium from checkpoint files (a snapshot's)."""
        if medium.read_checkpoint() is not None or medium.log.size() > 0:
            raise StorageError("a snapshot can only be restored into an empty shard")
        decode_checkpoint(files, "snapshot shard")  # checks every checksum before writing
        medium.write_checkpoint(files)
        return cls(medium, config)

    def replaced_by(self, files: Files) -> "ShardStore":
        """The shard over a snapshot's checkpoint ``files`` instead of this content, replaced
        atomically on the same medium (:meth:`ShardMedium.replace_all`: after a crash the old
        shard or the new one, never a mix or nothing). Do not use this store afterwards."""
        decode_checkpoint(files, "snapshot shard")  # checks every checksum before writing
        self.medium.replace_all(files)
        return type(self)(self.medium, self.config, self.name)

    def _load_checkpoint(self) -> None:
        files = self.medium.read_checkpoint()
        if files is None:
            return
        data = decode_checkpoint(files, self.name)
        if (data.meta.get("dim"), data.meta.get("distance")) != (
            self.config.dim, self.config.distance.value):  # fmt: skip
            raise StorageError(
                f"{self.name}: checkpoint holds {data.meta.get('distance')} vectors of "
                f"dim {data.meta.get('dim')}, the collection expects "
                f"{self.config.distance.value} of dim {self.config.dim}"
            )
        for row, point_id in enumerate(data.ids):
            self._vectors[point_id] = data.vectors[row]
            self._payloads[point_id] = data.payloads[row]
            self._versions[point_id] = int(data.versions[row])
        kind = HnswIndex if data.index_kind == "hnsw" else ExactIndex
        self._index = kind.load(data.index)
        self.checkpoint_op_num = data.op_num

    # --- updates --------------------------------------------------------------------------

    def apply(
        self, op: UpdateOperation, *, wait: bool = True, op_num: int | None = None
    ) -> UpdateResult:
        """Validate, log (fsync if ``wait``) and apply one update; see the module rules."""
        status: Literal["acknowledged", "completed"] = "completed" if wait else "acknowledged"
        logged = self.validate(op)
        if op_num is not None and op_num <= self.last_op_num:
            return UpdateResult(op_num, status)  # a repeat of an operation we already have
        record = WalRecord(self.last_op_num + 1 if op_num is None else op_num, logged)
        encoded = encode_record(record)  # raises BadRequest before anything is written
        self.wal.append(record, encoded, sync=wait)
        self._apply_record(record)
        self.last_op_num = record.op_num
        if self._checkpoint_due():
            self.checkpoint()
        return UpdateResult(record.op_num, status)

    def _checkpoint_due(self) -> bool:
        """The WAL is past its budget, or a graph holds work that replay would redo slowly
        (inserting into HNSW costs far more than reading a checkpoint)."""
        if self._graph_unsaved or self.wal.size_bytes > self.config.checkpoint_wal_bytes:
            return True
        pending = self.last_op_num - self.checkpoint_op_num
        return isinstance(self._index, HnswIndex) and (
            pending >= self.config.hnsw_checkpoint_every_ops
        )

    def validate(self, op: UpdateOperation) -> UpsertPoints | DeletePoints:
        """The operation to log, or :class:`BadRequest`; a filter becomes the ids it hits."""
        if not isinstance(op, DeleteByFilter):
            for point_id in op.ids:  # ops from a peer were parsed there; check again here
                raw: object = point_id
                if isinstance(raw, str) or parse_point_id(raw) != raw:
                    raise wrong_input(f"point id {point_id!r} is not normalised")
        match op:
            case UpsertPoints():
                shape = op.vectors.shape
                if len(shape) != 2 or shape[1] != self.config.dim:
                    got = shape[1] if len(shape) == 2 else shape
                    raise wrong_input(
                        f"Vector dimension error: expected dim: {self.config.dim}, got {got}"
                    )
                if not np.isfinite(op.vectors).all():
                    raise wrong_input("every vector component must be finite (no NaN, no inf)")
                if any(p is not None and not isinstance(p, dict) for p in op.payloads):
                    raise wrong_input("a payload must be a JSON object or null")
                return op
            case DeletePoints():
                return op
            case DeleteByFilter(filter=flt):
                return DeletePoints(tuple(sorted(self.matching_ids(flt), key=id_sort_key)))
            case _:
                raise BadRequest(f"Wrong input: unknown operation {type(op).__name__}")

    def _apply_record(self, record: WalRecord) -> None:
        """Change the points and the index (the record is already logged)."""
        op = record.op
        if isinstance(op, DeletePoints):
            for point_id in op.ids:
                if self._vectors.pop(point_id, None) is not None:
                    del self._payloads[point_id], self._versions[point_id]
                    self._sorted = None
            self._index.delete(op.ids)
            return
        prepared = prepare(self.config.distance, op.vectors)
        for row, point_id in enumerate(op.ids):
            if point_id not in self._vectors:
                self._sorted = None
            self._vectors[point_id] = prepared[row]
            self._payloads[point_id] = op.payloads[row]
            self._versions[point_id] = record.op_num
        self._index.upsert(list(op.ids), prepared)
        self._maybe_build_graph()

    def _maybe_build_graph(self) -> None:
        """Switch from the exact index to HNSW once the shard is past the threshold."""
        if isinstance(self._index, HnswIndex):
            return
        if len(self._vectors) <= self.config.indexing_threshold_points:
            return
        graph = HnswIndex(self.config.dim, self.config.distance, self.config.hnsw)
        ids = list(self._vectors)
        graph.upsert(ids, np.stack([self._vectors[p] for p in ids]))
        self._index = graph
        # Building a graph is costly: checkpoint soon, so a restart loads it instead.
        self._graph_unsaved = True

    def sync(self) -> None:
        """fsync the WAL (acknowledges every earlier ``wait=false`` update durably)."""
        self.wal.sync()

    def _vacuum(self) -> None:
        """Rebuild an exact index whose rows are mostly dead (overwritten or deleted points):
        Qdrant's vacuum optimizer, with its ``deleted_threshold`` of 0.2. An HNSW graph keeps
        its dead elements (they still route searches); rebuilding it is not done inline."""
        store = self._index.store
        dead = store.n_rows - len(store)
        if isinstance(self._index, ExactIndex) and dead >= 256 and dead > 0.2 * store.n_rows:
            fresh = ExactIndex(self.config.dim, self.config.distance)
            if self._vectors:
                ids = list(self._vectors)
                fresh.upsert(ids, np.stack([self._vectors[p] for p in ids]))
            self._index = fresh

    def checkpoint(self) -> None:
        """Write points and index as a checkpoint, then compact the WAL."""
        self.wal.sync()
        self._vacuum()
        ids = list(self._vectors)
        vectors = (
            np.stack([self._vectors[p] for p in ids])
            if ids
            else np.zeros((0, self.config.dim), dtype=np.float32)
        )
        index = MemoryArrayStore()
        self._index.save(index)
        data = CheckpointData(
            op_num=self.last_op_num,
            ids=ids,
            vectors=vectors,
            versions=np.array([self._versions[p] for p in ids], dtype=np.int64),
            payloads=[self._payloads[p] for p in ids],
            index_kind="hnsw" if isinstance(self._index, HnswIndex) else "exact",
            index=index,
            meta={"dim": self.config.dim, "distance": self.config.distance.value},
        )
        self.medium.write_checkpoint(encode_checkpoint(data))
        self.checkpoint_op_num = self.last_op_num
        self._graph_unsaved = False
        self.wal.compact(self._retained_from() - 1)

    def _retained_from(self) -> int:
        """The oldest operation the WAL keeps after a checkpoint: the last
        ``wal_retain_ops`` records that fit in half of ``checkpoint_wal_bytes``."""
        budget, first = self.config.checkpoint_wal_bytes // 2, self.last_op_num + 1
        newest_first = zip(reversed(self.wal.records), reversed(self.wal.sizes), strict=True)
        for kept, (record, size) in enumerate(newest_first):
            if kept >= self.config.wal_retain_ops or size > budget:
                break
            budget -= size
            first = record.op_num
        return first

    def ops_since(self, op_num: int) -> Sequence[WalRecord] | None:
        """The logged operations after ``op_num`` (for a replica catching up), or ``None``
        when the WAL no longer reaches back that far."""
        return self.wal.ops_since(op_num)

    def export_batches(self, batch_points: int = 256) -> Iterator[UpsertPoints]:
        """Every point as upserts of at most ``batch_points``, in id order: what a
        ``stream_records`` shard transfer sends (the receiver applies them in order).
        Takes a consistent view: the ids are listed once, points deleted since are skipped."""
        assert batch_points > 0
        ids = list(self._sorted_ids()[1])
        for start in range(0, len(ids), batch_points):
            chunk = [p for p in ids[start : start + batch_points] if p in self._vectors]
            if chunk:
                vectors = np.stack([self._vectors[p] for p in chunk])
                yield UpsertPoints(tuple(chunk), vectors, tuple(self._payloads[p] for p in chunk))

    def snapshot_files(self) -> Files:
        """A fresh checkpoint's files: everything up to :attr:`last_op_num`."""
        self.checkpoint()
        files = self.medium.read_checkpoint()
        assert files is not None, "a checkpoint was just written"
        return files

    def close(self) -> None:
        """fsync the WAL and release the files."""
        self.wal.sync()
        if isinstance(self.medium, DiskMedium):
            self.medium.close()

    def destroy(self) -> None:
        """Delete the shard and all its files."""
        self.medium.destroy()
        self._vectors.clear()
        self._payloads.clear()
        self._versions.clear()
        self._sorted = None

    # --- reads ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._vectors)

    @property
    def indexed_vectors_count(self) -> int:
        """Points in an HNSW graph (0 while the shard uses the exact index)."""
        return len(self._index) if isinstance(self._index, HnswIndex) else 0

    def __contains__(self, point_id: object) -> bool:
        return point_id in self._vectors

    def vector_of(self, point_id: PointId) -> FloatArray | None:
        """The stored vector (normalised for Cosine), or ``None``."""
        vector = self._vectors.get(point_id)
        return None if vector is None else vector.copy()

    def matching_ids(self, flt: Filter | None) -> list[PointId]:
        """Ids of the points passing ``flt`` (all points for ``None``)."""
        if flt is None:
            return list(self._vectors)
        return [p for p, payload in self._payloads.items() if evaluate(flt, p, payload)]

    def count(self, flt: Filter | None = None) -> int:
        """Number of points passing ``flt``."""
        return len(self._vectors) if flt is None else len(self.matching_ids(flt))

    def _record(
        self, point_id: PointId, with_payload: PayloadSelector, with_vector: bool,
        order_value: float | None = None,
    ) -> Record:  # fmt: skip
        vector = tuple(self._vectors[point_id].tolist()) if with_vector else None
        return Record(point_id, with_payload.select(self._payloads[point_id]), vector, order_value)

    def retrieve(
        self, ids: Iterable[PointId], with_payload: PayloadSelector = ALL_PAYLOAD,
        with_vector: bool = False,
    ) -> list[Record]:  # fmt: skip
        """The points among ``ids`` that exist, in request order, each once."""
        seen: set[PointId] = set()
        out = []
        for point_id in ids:
            if point_id in self._vectors and point_id not in seen:
                seen.add(point_id)
                out.append(self._record(point_id, with_payload, with_vector))
        return out

    def _sorted_ids(self) -> tuple[list[tuple[int, int]], list[PointId]]:
        if self._sorted is None:
            ids = sorted(self._vectors, key=id_sort_key)
            self._sorted = ([id_sort_key(p) for p in ids], ids)
        return self._sorted

    def scroll(self, request: ScrollRequest) -> ScrollPage:
        """A page of points in id order from ``request.offset`` (or by ``order_by``)."""
        if request.order_by is not None:
            return self._scroll_ordered(request, request.order_by)
        keys, ids = self._sorted_ids()
        start = (
            0 if request.offset is None else bisect.bisect_left(keys, id_sort_key(request.offset))
        )
        page: list[PointId] = []
        for point_id in ids[start:]:
            if request.filter is None or evaluate(
                request.filter, point_id, self._payloads[point_id]
            ):
                if len(page) == request.limit:
                    records = (
                        self._record(p, request.with_payload, request.with_vector) for p in page
                    )
                    return ScrollPage(tuple(records), point_id)
                page.append(point_id)
        records = (self._record(p, request.with_payload, request.with_vector) for p in page)
        return ScrollPage(tuple(records), None)

    def _scroll_ordered(self, request: ScrollRequest, order: OrderBy) -> ScrollPage:
        """Points by a numeric payload field; one entry per value; no next offset (Qdrant)."""
        descending = order.direction == "desc"
        entries = [
            (value, point_id)
            for point_id in self.matching_ids(request.filter)
            for value in order.values(self._payloads[point_id])
            if order.start_from is None
            or (value <= order.start_from if descending else value >= order.start_from)
        ]
        entries.sort(key=lambda e: ((-e[0] if descending else e[0]), id_sort_key(e[1])))
        records = tuple(
            self._record(p, request.with_payload, request.with_vector, order_value=v)
            for v, p in entries[: request.limit]
        )
        return ScrollPage(records, None)

    def _resolved(self, request: QueryRequest) -> QueryRequest:
        """A query by point id becomes a query by that point's vector (which it excludes)."""
        if request.nearest_id is None:
            if request.vector is not None and request.vector.shape != (self.config.dim,):
                raise wrong_input(
                    f"Vector dimension error: expected dim: {self.config.dim}, "
                    f"got {request.vector.shape[-1] if request.vector.ndim else 0}"
                )
            return request
        vector = self.vector_of(request.nearest_id)
        if vector is None:
            raise point_not_found(id_to_json(request.nearest_id))
        return with_query_vector(request, vector)

    def search_top(self, request: QueryRequest) -> list[ScoredRecord]:
        """This shard's best ``offset + limit`` points, best first (what a merge needs)."""
        request = self._resolved(request)
        k = request.offset + request.limit
        if request.vector is None:  # no query: points in id order, each scored 1.0
            scroll = ScrollRequest(
                request.filter, k, None, request.with_payload, request.with_vector
            )
            return [
                ScoredRecord(r.id, 1.0, self._versions[r.id], r.payload, r.vector)
                for r in self.scroll(scroll).points
            ]
        allowed = None if request.filter is None else self.matching_ids(request.filter)
        if len(self._index) == 0 or (allowed is not None and not allowed):
            return []
        # One BLAS thread: a query is one matrix-vector product, and on a busy machine a
        # threaded BLAS spends longer waking and spinning its threads than computing (a top-10
        # over 16 700 x 128 took 25 ms instead of 2 on two loaded cores; issue 6).
        with one_blas_thread():
            hits = self._index.search(
                request.vector, k, ef=request.hnsw_ef, allowed=allowed, exact=request.exact
            )
        better = self.config.distance.higher_is_better
        threshold = request.score_threshold
        scored = []
        for hit in hits:
            score = float(np.float32(hit.score))  # Qdrant reports float32 scores
            if threshold is not None and (score <= threshold if better else score >= threshold):
                continue
            scored.append(ScoredRecord(hit.id, score, self._versions[hit.id]))
        return [self._with_data(h, request) for h in order_scored(scored, better)]

    def _with_data(self, hit: ScoredRecord, request: QueryRequest) -> ScoredRecord:
        record = self._record(hit.id, request.with_payload, request.with_vector)
        return ScoredRecord(hit.id, hit.score, hit.version, record.payload, record.vector)

    def search(self, request: QueryRequest) -> list[ScoredRecord]:
        """One page of query results: best first, ties by id, ``offset`` skipped."""
        return self.search_top(request)[request.offset :]

    def search_batch(self, requests: Sequence[QueryRequest]) -> list[list[ScoredRecord]]:
        """:meth:`search` for each request."""
        return [self.search(r) for r in requests]


def shard_config_from_qdrant(
    vectors: Mapping[str, Any],
    hnsw_config: Mapping[str, Any] | None = None,
    optimizers_config: Mapping[str, Any] | None = None,
    wal_config: Mapping[str, Any] | None = None,
) -> ShardConfig:
    """A :class:`ShardConfig` from a collection's Qdrant-shaped config parts
    (``{"size": 4, "distance": "Cosine"}``, ``hnsw_config``, ``optimizers_config``,
    ``wal_config``); absent keys take Qdrant's defaults."""
    try:
        distance = Distance(vectors["distance"])
        dim = int(vectors["size"])
    except (KeyError, ValueError, TypeError) as error:
        raise BadRequest(
            'Wrong input: `vectors` must be {"size": <positive int>, "distance": '
            f'"Cosine" | "Dot" | "Euclid" | "Manhattan"}} ({error})'
        ) from error
    if dim < 1:
        raise BadRequest(f"Wrong input: vector size must be at least 1, got {dim}")
    hnsw, optimizers, wal = hnsw_config or {}, optimizers_config or {}, wal_config or {}
    defaults = HnswConfig()
    graph = HnswConfig(
        m=int(hnsw.get("m") or defaults.m),
        ef_construct=int(hnsw.get("ef_construct") or defaults.ef_construct),
        full_scan_threshold_kb=int(
            hnsw.get("full_scan_threshold") or defaults.full_scan_threshold_kb
        ),
    )
    return ShardConfig(
        dim=dim,
        distance=distance,
        hnsw=graph,
        indexing_threshold_kb=int(optimizers.get("indexing_threshold") or 10_000),
        checkpoint_wal_bytes=int(wal.get("wal_capacity_mb") or 32) << 20,
    )

"""The shard store answers as Qdrant does (issue 6 "The points API"): exact search equals
brute force, scroll visits every point once in id order, a bad batch writes nothing, and a
checkpointed shard recovers to the same state."""

import math
import uuid
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from refimpl.ids import PointId
from refimpl.index import Distance, HnswConfig
from refimpl.points import (
    BadRequest,
    DeleteByFilter,
    DeletePoints,
    QueryRequest,
    ScrollRequest,
    UpsertPoints,
    id_sort_key,
    parse_filter,
    parse_query,
    parse_scroll,
)
from refimpl.points.errors import PointNotFound
from refimpl.points.results import merge_ordered, merge_scored, merge_scroll
from refimpl.storage import MemoryMedium, ShardConfig, ShardStore

DIM = 6


def _ids(n: int, seed: int = 0) -> list[PointId]:
    """Mixed ids: mostly integers, every fifth a UUID."""
    rng = np.random.default_rng(seed)
    return [uuid.UUID(int=int(rng.integers(1, 2**62)) << 60 | i) if i % 5 == 0
            else int(rng.integers(0, 2**63)) for i in range(n)]  # fmt: skip


def _points(n: int, seed: int = 0) -> UpsertPoints:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    payloads = tuple({"group": i % 7, "tags": ["even" if i % 2 == 0 else "odd", f"t{i % 3}"]}
                     for i in range(n))  # fmt: skip
    return UpsertPoints(tuple(_ids(n, seed)), vectors, payloads)


def _brute_force(
    distance: Distance, vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Qdrant's scores computed directly in float64 (an independent oracle)."""
    v, q = vectors.astype(np.float64), query.astype(np.float64)
    match distance:
        case Distance.COSINE:
            out = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        case Distance.DOT:
            out = v @ q
        case Distance.EUCLID:
            out = np.sqrt(((v - q) ** 2).sum(axis=1))
        case Distance.MANHATTAN:
            out = np.abs(v - q).sum(axis=1)
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("distance", list(Distance))
@pytest.mark.parametrize("exact", [True, False])
def test_search_equals_brute_force(distance: Distance, exact: bool) -> None:
    """Top-k by score (ties by id), with filter, offset and score threshold, as brute force."""
    op = _points(400)
    store = ShardStore.in_memory(ShardConfig(DIM, distance))
    store.apply(op)
    rng = np.random.default_rng(1)
    flt = {"must": [{"key": "tags", "match": {"value": "even"}}]}
    for _ in range(10):
        query = rng.normal(size=DIM).astype(np.float32)
        scores = _brute_force(distance, op.vectors, query)
        keep = np.array([p["tags"][0] == "even" for p in op.payloads if p is not None])
        sign = -1.0 if distance.higher_is_better else 1.0
        order = sorted(
            np.flatnonzero(keep), key=lambda i: (sign * scores[i], id_sort_key(op.ids[i]))
        )
        threshold = float(scores[order[25]])
        body = {"query": query.tolist(), "limit": 20, "offset": 5, "filter": flt,
                "params": {"exact": exact}, "score_threshold": threshold}  # fmt: skip
        hits = store.search(parse_query(body, DIM))
        assert [h.id for h in hits] == [op.ids[i] for i in order[5:25]]
        assert [h.score for h in hits] == pytest.approx([scores[i] for i in order[5:25]], rel=1e-5)


def test_search_agrees_with_the_client_local_mode() -> None:
    """Scores and ids equal qdrant-client's local mode for every distance (an external oracle)."""
    from qdrant_client import QdrantClient, models

    op = _points(150, seed=3)
    client = QdrantClient(":memory:")
    query = np.random.default_rng(4).normal(size=DIM).tolist()
    for distance in Distance:
        client.create_collection(
            distance.value, models.VectorParams(size=DIM, distance=models.Distance(distance.value))
        )
        client.upsert(distance.value, [
            models.PointStruct(id=str(p) if isinstance(p, uuid.UUID) else p,
                               vector=op.vectors[i].tolist(), payload=op.payloads[i])
            for i, p in enumerate(op.ids)])  # fmt: skip
        theirs = client.query_points(distance.value, query=query, limit=10).points
        store = ShardStore.in_memory(ShardConfig(DIM, distance))
        store.apply(op)
        ours = store.search(parse_query({"query": query, "limit": 10}, DIM))
        assert [str(h.id) for h in ours] == [str(h.id) for h in theirs]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=2e-5)
    client.close()


@pytest.mark.parametrize("limit", [1, 7, 64, 1000])
def test_scroll_visits_every_point_once_in_id_order(limit: int) -> None:
    """Following next_page_offset visits each matching point exactly once, ints then UUIDs."""
    op = _points(300)
    store = ShardStore.in_memory(ShardConfig(DIM))
    store.apply(op)
    flt = parse_filter({"must_not": [{"key": "group", "match": {"value": 3}}]})
    seen: list[PointId] = []
    offset: PointId | None = None
    while True:
        page = store.scroll(ScrollRequest(filter=flt, limit=limit, offset=offset))
        seen.extend(r.id for r in page.points)
        if page.next_page_offset is None:
            break
        offset = page.next_page_offset
    expected = sorted((p for i, p in enumerate(op.ids) if i % 7 != 3), key=id_sort_key)
    assert seen == expected


def _split(op: UpsertPoints, shards: int, distance: Distance) -> list[ShardStore]:
    parts = [ShardStore.in_memory(ShardConfig(DIM, distance)) for _ in range(shards)]
    for i, part in enumerate(parts):
        rows = list(range(i, len(op.ids), shards))
        part.apply(UpsertPoints(tuple(op.ids[r] for r in rows), op.vectors[rows],
                                tuple(op.payloads[r] for r in rows)))  # fmt: skip
    return parts


def test_scroll_pages_merge_across_shards() -> None:
    """Per-shard pages merged give the pages of one shard holding everything."""
    op = _points(200)
    whole = ShardStore.in_memory(ShardConfig(DIM))
    whole.apply(op)
    parts = _split(op, 3, Distance.COSINE)
    offset: PointId | None = None
    for _ in range(5):
        request = ScrollRequest(limit=17, offset=offset)
        merged = merge_scroll((p.scroll(request) for p in parts), 17)
        assert merged == whole.scroll(request)
        offset = merged.next_page_offset


@pytest.mark.parametrize("distance", [Distance.DOT, Distance.MANHATTAN])
def test_query_and_order_by_answers_merge_across_shards(distance: Distance) -> None:
    """Fan-out then merge (each shard's best offset + limit) equals one shard's answer."""
    op = _points(300)
    whole = ShardStore.in_memory(ShardConfig(DIM, distance))
    whole.apply(op)
    parts = _split(op, 4, distance)
    body = {"query": [0.3, -1, 0.5, 2, 0, 1], "limit": 7, "offset": 4, "with_payload": True,
            "filter": {"should": [{"key": "group", "match": {"any": [1, 2, 3]}}]}}  # fmt: skip
    request = parse_query(body, DIM)
    answers = [p.search_top(request) for p in parts]
    merged = merge_scored(answers, 7, 4, distance.higher_is_better)
    assert merged == whole.search(request)
    order = parse_scroll({"order_by": {"key": "group", "direction": "desc"}, "limit": 9})
    merged_page = merge_ordered((p.scroll(order) for p in parts), 9, descending=True)
    assert [r.order_value for r in merged_page.points] == [
        r.order_value for r in whole.scroll(order).points
    ]


def test_a_batch_with_one_bad_point_writes_nothing() -> None:
    """Validation happens before logging: the WAL, the points and the op number are unchanged."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    store.apply(_points(10))
    size, before = store.medium.log.size(), store.last_op_num
    good = _points(5, seed=9)
    nan_vectors = good.vectors.copy()
    nan_vectors[4, 2] = math.nan
    bad_payload = (*good.payloads[:4], {"x": math.inf})
    wrong_dim = np.zeros((5, DIM + 1), dtype=np.float32)
    for bad in (UpsertPoints(good.ids, nan_vectors, good.payloads),
                UpsertPoints(good.ids, good.vectors, bad_payload),
                UpsertPoints(good.ids, wrong_dim, good.payloads)):  # fmt: skip
        with pytest.raises(BadRequest):
            store.apply(bad)
    assert (store.medium.log.size(), store.last_op_num, len(store)) == (size, before, 10)
    assert not any(p in store for p in good.ids)


def test_delete_by_filter_and_count() -> None:
    """Delete by filter removes exactly the matching points; count with a filter is exact."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    store.apply(_points(70))
    group2 = parse_filter({"must": [{"key": "group", "match": {"value": 2}}]})
    assert store.count(group2) == 10
    result = store.apply(DeleteByFilter(group2), wait=False)
    assert (result.operation_id, result.status) == (2, "acknowledged")
    assert (store.count(group2), len(store)) == (0, 60)
    assert store.apply(DeletePoints((12345,))).to_json() == {
        "operation_id": 3,
        "status": "completed",
    }


def test_replicated_op_numbers_are_idempotent() -> None:
    """An update carrying an op number already applied is ignored (redelivery is harmless)."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    store.apply(_points(3), op_num=5)
    store.apply(DeletePoints(tuple(_ids(3))), op_num=5)
    assert (len(store), store.last_op_num) == (3, 5)
    assert store.apply(DeletePoints(tuple(_ids(3))), op_num=6).operation_id == 6
    assert len(store) == 0


def test_query_by_point_id_excludes_the_point() -> None:
    """``{"nearest": id}`` searches with the point's vector and leaves the point out."""
    store = ShardStore.in_memory(ShardConfig(DIM, Distance.EUCLID))
    op = _points(50)
    store.apply(op)
    hits = store.search(parse_query({"query": {"nearest": op.ids[1]}, "limit": 5}, DIM))
    assert op.ids[1] not in [h.id for h in hits] and len(hits) == 5
    with pytest.raises(PointNotFound, match="Not found: No point with id 7 found"):
        store.search(QueryRequest(nearest_id=7))


def test_scroll_order_by_payload_value() -> None:
    """``order_by`` walks points by a numeric payload field, both directions."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    store.apply(_points(30))
    asc = store.scroll(parse_scroll({"order_by": "group", "limit": 30}))
    assert [r.order_value for r in asc.points] == sorted(i % 7 for i in range(30))
    desc = store.scroll(parse_scroll({"order_by": {"key": "group", "direction": "desc",
                                                   "start_from": 4}, "limit": 3}))  # fmt: skip
    assert [r.order_value for r in desc.points] == [4.0, 4.0, 4.0]
    assert asc.next_page_offset is None


def test_checkpoint_compaction_and_recovery(tmp_path: Path) -> None:
    """Checkpoints bound the WAL; reopening gives the same points, answers and op number;
    ops_since serves recent deltas and says None when they were compacted away."""
    config = ShardConfig(DIM, Distance.DOT, checkpoint_wal_bytes=20_000, wal_retain_ops=5)
    store = ShardStore.open(tmp_path / "s", config)
    for i in range(40):
        store.apply(_points(20, seed=i))
        store.apply(DeletePoints(tuple(_ids(20, seed=i)[:3])))
    assert store.checkpoint_op_num > 0 and len(store.wal.records) < 80
    assert (tmp_path / "s" / "wal.log").stat().st_size <= 20_000
    deltas = store.ops_since(store.last_op_num - 3)
    assert deltas is not None and [r.op_num for r in deltas] == [78, 79, 80]
    assert store.ops_since(0) is None
    query = parse_query({"query": [1.0] * DIM, "limit": 10, "with_payload": True}, DIM)
    again = ShardStore.open(tmp_path / "s", config)
    assert (len(again), again.last_op_num) == (len(store), 80)
    assert again.search(query) == store.search(query)
    assert again.ops_since(77) is not None
    again.close()
    store.destroy()
    assert not (tmp_path / "s").exists()


def test_large_shard_switches_to_hnsw_and_recovers_the_graph(tmp_path: Path) -> None:
    """Past the indexing threshold the shard builds HNSW; recall stays high; the graph is
    checkpointed and reloaded, so answers after recovery are identical."""
    config = ShardConfig(8, Distance.COSINE, HnswConfig(m=8, ef_construct=64),
                         indexing_threshold_kb=4, hnsw_checkpoint_every_ops=4)  # 4 kB = 128 vectors of 8 floats  # fmt: skip
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1500, 8)).astype(np.float32)
    store = ShardStore.open(tmp_path / "h", config)
    for start in range(0, 1500, 250):
        store.apply(UpsertPoints(tuple(range(start, start + 250)), vectors[start:start + 250],
                                 (None,) * 250))  # fmt: skip
    assert store.indexed_vectors_count == 1500
    # Saved at once when the first batch built the graph, then every 4 updates.
    assert store.checkpoint_op_num == 5
    queries = rng.normal(size=(30, 8)).tolist()
    found = exact = 0
    for q in queries:
        approx = {h.id for h in store.search(parse_query({"query": q, "limit": 10}, 8))}
        truth = {h.id for h in store.search(parse_query({"query": q, "limit": 10,
                                                          "params": {"exact": True}}, 8))}  # fmt: skip
        found, exact = found + len(approx & truth), exact + len(truth)
    assert found / exact >= 0.9
    store.checkpoint()
    again = ShardStore.open(tmp_path / "h", config)
    request = parse_query({"query": queries[0], "limit": 10}, 8)
    assert again.indexed_vectors_count == 1500
    assert again.search(request) == store.search(request)
    again.close()
    store.close()


def test_in_memory_twin_checkpoints_and_recovers() -> None:
    """The memory medium behaves as the disk one: checkpoint, crash, recover."""
    medium = MemoryMedium()
    store = ShardStore.in_memory(ShardConfig(DIM), medium)
    store.apply(_points(30))
    store.checkpoint()
    store.apply(DeletePoints(tuple(_ids(30)[:10])))
    medium.crash()
    again = ShardStore.in_memory(ShardConfig(DIM), medium)
    assert (len(again), again.last_op_num, again.replayed_ops) == (20, 2, 1)


def test_checkpoint_vacuums_an_exact_index_full_of_dead_rows() -> None:
    """Overwritten points leave dead rows; a checkpoint drops them (Qdrant's vacuum, 20 %)."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    for seed in range(6):
        store.apply(UpsertPoints(tuple(range(100)), _points(100, seed).vectors, (None,) * 100))
    query = parse_query({"query": [1.0] * DIM, "limit": 5, "params": {"exact": True}}, DIM)
    before = store.search(query)
    assert store._index.store.n_rows == 600
    store.checkpoint()
    assert store._index.store.n_rows == 100
    assert store.search(query) == before


def test_export_batches_rebuild_an_equal_shard() -> None:
    """Streaming every point into an empty shard (a stream_records transfer) copies it."""
    source = ShardStore.in_memory(ShardConfig(DIM, Distance.COSINE))
    source.apply(_points(300))
    source.apply(DeletePoints(tuple(_ids(300)[:50])))
    target = ShardStore.in_memory(ShardConfig(DIM, Distance.COSINE))
    batches = list(source.export_batches(64))
    assert [len(b.ids) for b in batches] == [64, 64, 64, 58]
    for batch in batches:
        target.apply(batch)
    everything = ScrollRequest(limit=1000, with_vector=True)
    ours, theirs = target.scroll(everything).points, source.scroll(everything).points
    assert [(r.id, r.payload) for r in ours] == [(r.id, r.payload) for r in theirs]
    # Cosine vectors are stored normalised; normalising again may move the last bit.
    assert np.allclose([r.vector or () for r in ours], [r.vector or () for r in theirs], atol=1e-7)


def test_extreme_ids_survive_wal_and_checkpoint(tmp_path: Path) -> None:
    """u64 ids up to 2^64 - 1 and UUIDs come back exactly from the WAL and a checkpoint."""
    ids: tuple[PointId, ...] = (0, 2**53 + 1, 2**64 - 1, uuid.UUID(int=2**128 - 1))
    config = ShardConfig(DIM)
    store = ShardStore.open(tmp_path / "x", config)
    store.apply(UpsertPoints(ids, np.ones((4, DIM), dtype=np.float32), (None,) * 4))
    from_wal = ShardStore.open(tmp_path / "x", config)
    assert sorted(from_wal.matching_ids(None), key=id_sort_key) == list(ids)
    from_wal.checkpoint()
    from_checkpoint = ShardStore.open(tmp_path / "x", config)
    assert sorted(from_checkpoint.matching_ids(None), key=id_sort_key) == list(ids)
    for opened in (store, from_wal, from_checkpoint):
        opened.close()


def test_ops_with_invalid_ids_are_refused_before_logging() -> None:
    """An operation built without parsing (e.g. from another peer) is checked again."""
    store = ShardStore.in_memory(ShardConfig(DIM))
    for bad in ((-1,), (2**64,), ("7",), (True,)):
        with pytest.raises(BadRequest, match=r"Unable to parse point id|not normalised"):
            store.apply(DeletePoints(bad))  # type: ignore[arg-type]
    assert (store.last_op_num, store.medium.log.size()) == (0, 0)


def test_a_query_runs_the_index_with_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 6: a threaded BLAS made each top-10 ten times slower on a busy machine; the shard
    limits BLAS to one thread around the index search, and restores it afterwards."""
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas_threads() -> list[int]:
        return [
            i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"
        ]

    if not blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    store = ShardStore.in_memory(ShardConfig(DIM))
    op = _points(50)
    store.apply(op)
    seen: list[list[int]] = []
    real_search = store._index.search

    def spying_search(*args: object, **kwargs: object) -> object:
        seen.append(blas_threads())
        return real_search(*args, **kwargs)  # type: ignore[arg-type]

    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        monkeypatch.setattr(store._index, "search", spying_search)
        hits = store.search(QueryRequest(vector=op.vectors[3], limit=3))
        assert hits[0].id == op.ids[3]
        assert seen and all(n == [1] * len(n) for n in seen)
        assert blas_threads() == [2] * len(blas_threads())

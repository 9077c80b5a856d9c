"""The official qdrant-client against real peer processes: collections and points across shards.

Spec "Sharding": a collection is split into shards spread over the peers, points are placed by
consistent hashing, and any peer answers any request. Answers are compared with the client's own
local mode (``QdrantClient(":memory:")``), an independent exact implementation.
"""

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from refimpl.launcher import LocalCluster

pytestmark = pytest.mark.cluster
TICK_MS = 50
DIM = 24
COLLECTION = "points"


def make_points(n: int, seed: int) -> list[models.PointStruct]:
    """``n`` points with int and UUID ids (half each) and small payloads."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    points = []
    for i in range(n):
        point_id: int | str = i * 7 if i % 2 else str(uuid.UUID(int=int(rng.integers(1 << 62)) + i))
        payload = {"group": i % 5, "value": float(i) / n, "tag": f"t{i % 3}"}
        points.append(models.PointStruct(id=point_id, vector=vectors[i].tolist(), payload=payload))
    return points


def start_cluster(root: Path, peers: int) -> LocalCluster:
    cluster = LocalCluster(root, peers=peers, tick_period_ms=TICK_MS)
    cluster.start_first()
    for i in range(1, peers):
        cluster.start_joiner(i)
    cluster.wait_for_voters(peers, timeout_s=60)
    return cluster


def client(cluster: LocalCluster, index: int) -> QdrantClient:
    return QdrantClient(url=cluster.peers[index].rest_url, timeout=60)


def create(
    qc: QdrantClient, replication_factor: int, indexing_threshold: int, name: str = COLLECTION
) -> None:
    qc.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        shard_number=6,
        replication_factor=replication_factor,
        optimizers_config=models.OptimizersConfigDiff(indexing_threshold=indexing_threshold),
    )


def upload(
    clients: list[QdrantClient], points: list[models.PointStruct], batch: int,
    name: str = COLLECTION,
) -> None:  # fmt: skip
    """Alternate the list and the column-wise batch forms, and the peer that coordinates."""
    for n, start in enumerate(range(0, len(points), batch)):
        part = points[start : start + batch]
        qc = clients[n % len(clients)]
        if n % 2:
            columns = models.Batch(
                ids=[p.id for p in part],
                vectors=[cast(list[float], p.vector) for p in part],
                payloads=[p.payload or {} for p in part],
            )
            result = qc.upsert(name, columns, wait=True)
        else:
            result = qc.upsert(name, part, wait=True)
        assert result.status == models.UpdateStatus.COMPLETED


def oracle_for(points: list[models.PointStruct]) -> QdrantClient:
    oracle = QdrantClient(":memory:")
    oracle.create_collection(
        COLLECTION, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    oracle.upsert(COLLECTION, points)
    return oracle


def assert_same_hits(ours: list[models.ScoredPoint], want: list[models.ScoredPoint]) -> None:
    """Same ids in the same order (equal scores may swap), same scores to float32 precision."""
    assert len(ours) == len(want)
    for a, b in zip(ours, want, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-5)
        if a.id != b.id:
            tied = [w.id for w in want if abs(w.score - a.score) <= 1e-5]
            assert a.id in tied, (a, b)


def query_filters() -> list[models.Filter | None]:
    return [
        None,
        models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=2))]),
        models.Filter(
            must=[models.FieldCondition(key="value", range=models.Range(gte=0.2, lt=0.7))],
            must_not=[models.FieldCondition(key="tag", match=models.MatchValue(value="t1"))],
        ),
        models.Filter(
            should=[
                models.FieldCondition(key="group", match=models.MatchValue(value=0)),
                models.FieldCondition(key="tag", match=models.MatchValue(value="t2")),
            ]
        ),
    ]


def check_exact_queries(qc: QdrantClient, oracle: QdrantClient, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for flt in query_filters():
        for _ in range(3):
            q = rng.normal(size=DIM).tolist()
            ours = qc.query_points(
                COLLECTION, query=q, limit=10, query_filter=flt, with_payload=True,
                search_params=models.SearchParams(exact=True),
            ).points  # fmt: skip
            want = oracle.query_points(
                COLLECTION, query=q, limit=10, query_filter=flt, with_payload=True
            ).points
            assert_same_hits(ours, want)
            assert [p.payload for p in ours[:3]] == [p.payload for p in want[:3]]


def scroll_all(qc: QdrantClient, page: int) -> list[Any]:
    ids: list[Any] = []
    offset = None
    while True:
        records, offset = qc.scroll(COLLECTION, limit=page, offset=offset, with_payload=False)
        ids.extend(r.id for r in records)
        if offset is None:
            return ids


def recall_at_10(qc: QdrantClient, name: str, oracle: QdrantClient, queries: np.ndarray) -> float:
    found = 0
    for q in queries:
        ours = {p.id for p in qc.query_points(name, query=q.tolist(), limit=10).points}
        want = {p.id for p in oracle.query_points(COLLECTION, query=q.tolist(), limit=10).points}
        found += len(ours & want)
    return found / (10 * len(queries))


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("three"), 3)
    with cluster:
        yield cluster


def test_three_peers_serve_every_point_through_every_peer(three: LocalCluster) -> None:
    """Spec "Sharding": 6 shards over 3 peers, any peer answers; results equal the oracle."""
    clients = [client(three, i) for i in range(3)]
    create(clients[1], replication_factor=2, indexing_threshold=10_000)
    info = clients[2].get_collection(COLLECTION)
    assert info.config.params.shard_number == 6
    assert info.config.params.replication_factor == 2
    assert info.status == models.CollectionStatus.GREEN
    points = make_points(2400, seed=1)
    upload(clients, points, batch=200)
    oracle = oracle_for(points)
    all_ids = sorted((p.id for p in points), key=lambda i: (isinstance(i, str), str(i).zfill(40)))

    for i, qc in enumerate(clients):
        assert qc.count(COLLECTION).count == len(points), f"peer {i}"
        some = [points[3].id, points[4].id, points[1001].id, 10**12]
        got = qc.retrieve(COLLECTION, some, with_payload=True)
        assert [r.id for r in got] == some[:3]
        assert [r.payload for r in got] == [points[3].payload, points[4].payload,
                                            points[1001].payload]  # fmt: skip
    scrolled = scroll_all(clients[0], page=333)
    assert len(scrolled) == len(set(scrolled)) == len(points)
    assert scrolled == scroll_all(oracle, page=500)
    assert sorted(scrolled, key=str) == sorted(all_ids, key=str)

    check_exact_queries(clients[2], oracle, seed=5)
    by_id = clients[0].query_points(COLLECTION, query=points[10].id, limit=5).points
    want = oracle.query_points(COLLECTION, query=points[10].id, limit=5).points
    assert_same_hits(by_id, want)

    cluster_views = [qc.collection_cluster_info(COLLECTION) for qc in clients]
    for view in cluster_views:
        assert view.shard_count == 6
        replicas = [(s.shard_id, view.peer_id) for s in view.local_shards]
        replicas += [(s.shard_id, s.peer_id) for s in view.remote_shards]
        assert sorted(s for s, _ in replicas) == sorted(list(range(6)) * 2)
        states = [s.state for s in view.local_shards] + [s.state for s in view.remote_shards]
        assert set(states) == {models.ReplicaState.ACTIVE}
    assert sum(s.points_count for v in cluster_views for s in v.local_shards) == 2 * len(points)


def test_hnsw_shards_reach_recall_095_against_the_exact_oracle(three: LocalCluster) -> None:
    """Shards past their indexing threshold search an HNSW graph; merged top-10 recall >= 0.95."""
    clients = [client(three, i) for i in range(3)]
    create(clients[0], replication_factor=1, indexing_threshold=1, name="graph")
    points = make_points(1200, seed=4)
    upload(clients, points, batch=300, name="graph")
    info = clients[2].get_collection("graph")
    assert info.points_count == len(points)
    indexed = sum(qc.get_collection("graph").indexed_vectors_count or 0 for qc in clients)
    assert indexed == len(points)  # every shard (one replica each) searches a graph
    oracle = oracle_for(points)
    queries = np.random.default_rng(9).normal(size=(30, DIM)).astype(np.float32)
    assert recall_at_10(clients[1], "graph", oracle, queries) >= 0.95
    clients[1].delete_collection("graph")


def test_deletes_by_id_and_filter_match_the_oracle(three: LocalCluster) -> None:
    """Deletes are routed like upserts (by id) or sent to every shard (by filter)."""
    qc, other = client(three, 0), client(three, 2)
    points = make_points(2400, seed=1)
    oracle = oracle_for(points)
    doomed = [p.id for p in points[:300:3]]
    flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=4))])
    for target in (qc, oracle):
        target.delete(COLLECTION, points_selector=models.PointIdsList(points=doomed))
        target.delete(COLLECTION, points_selector=models.FilterSelector(filter=flt))
    assert other.count(COLLECTION).count == oracle.count(COLLECTION).count
    assert scroll_all(other, page=700) == scroll_all(oracle, page=700)
    assert other.retrieve(COLLECTION, doomed[:5]) == []
    check_exact_queries(other, oracle, seed=6)


def test_restart_after_sigkill_keeps_every_acknowledged_point(three: LocalCluster) -> None:
    """A peer killed right after acknowledging writes recovers them from its WAL."""
    qc = client(three, 1)
    late = make_points(300, seed=2)
    qc.upsert(COLLECTION, late, wait=True)
    before = {
        s.shard_id: s.points_count for s in qc.collection_cluster_info(COLLECTION).local_shards
    }
    total = qc.count(COLLECTION).count
    three.kill(1, signal.SIGKILL)
    assert client(three, 0).count(COLLECTION).count == total  # served by other replicas
    three.restart(1)
    three.wait_until("peer 1 answers with its shards", lambda: _local_counts(three, 1) == before)
    assert client(three, 1).count(COLLECTION).count == total
    got = client(three, 1).retrieve(COLLECTION, [p.id for p in late[:50]])
    assert len(got) == 50


def _local_counts(cluster: LocalCluster, index: int) -> dict[int, int] | None:
    try:
        url = f"{cluster.peers[index].rest_url}/collections/{COLLECTION}/cluster"
        shards = httpx.get(url, timeout=2).json()["result"]["local_shards"]
        return {s["shard_id"]: s["points_count"] for s in shards}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("one"), 1)
    with cluster:
        yield cluster


def test_one_peer_holds_all_six_shards(one: LocalCluster) -> None:
    """With one peer every shard is local; answers still equal the oracle."""
    qc = client(one, 0)
    create(qc, replication_factor=1, indexing_threshold=10_000)
    points = make_points(1500, seed=3)
    upload([qc], points, batch=500)
    oracle = oracle_for(points)
    assert qc.count(COLLECTION).count == len(points)
    assert scroll_all(qc, page=250) == scroll_all(oracle, page=250)
    check_exact_queries(qc, oracle, seed=7)
    view = qc.collection_cluster_info(COLLECTION)
    assert sorted(s.shard_id for s in view.local_shards) == list(range(6))
    assert view.remote_shards == []
    assert qc.collection_exists(COLLECTION) and not qc.collection_exists("nope")
    assert [c.name for c in qc.get_collections().collections] == [COLLECTION]


def rest(one: LocalCluster, method: str, path: str, body: Any = None) -> httpx.Response:
    url = f"{one.peers[0].rest_url}{path}"
    if isinstance(body, bytes):
        return httpx.request(method, url, content=body, timeout=30)
    return httpx.request(method, url, json=body, timeout=30)


@pytest.mark.parametrize(
    "case",
    [
        ("PUT", "/collections/points/points", {"points": [{"id": 1, "vector": [0.1] * 3}]},
         400, "Vector dimension error: expected dim: 24, got 3"),
        ("PUT", "/collections/points/points", b'{"points": [{"id": 1, "vector": [NaN' +
         b', 0.1' * 23 + b"]}]}", 400, "finite"),
        ("PUT", "/collections/points/points", {"points": [{"id": -1, "vector": [0.1] * 24}]},
         400, "Unable to parse point id -1"),
        ("PUT", "/collections/points/points", b"{not json", 400, "not valid JSON"),
        ("PUT", "/collections/nope/points", {"points": []}, 404, "Collection `nope` doesn't exist"),
        ("POST", "/collections/points/points/count", {"filter": {"must": [{"key": "a"}]}},
         400, "filter.must[0]"),
        ("PUT", "/collections/bad", {"vectors": {"size": 0, "distance": "Cosine"}}, 400,
         "vectors.size"),
        ("PUT", "/collections/bad", {"vectors": {"size": 4, "distance": "Cos"}}, 400, "Cosine"),
        ("PUT", "/collections/bad", {"vectors": {"size": 4, "distance": "Dot"},
         "write_consistency_factor": 2, "write_concern_factor": 1}, 400, "write_concern_factor"),
        ("PUT", "/collections/points", {"vectors": {"size": 4, "distance": "Dot"}}, 409,
         "already exists"),
    ],
)  # fmt: skip
def test_bad_input_is_a_4xx_envelope_with_a_clear_message(
    one: LocalCluster, case: tuple[str, str, Any, int, str]
) -> None:
    """Bad input answers Qdrant's error envelope with a 4xx and says what to fix."""
    method, path, body, status, message = case
    response = rest(one, method, path, body)
    assert response.status_code == status, response.text
    error = response.json()["status"]["error"]
    assert message in error


def test_a_batch_with_one_bad_point_changes_nothing(one: LocalCluster) -> None:
    """Nothing is half-applied: the whole batch is checked before any shard sees it."""
    qc = client(one, 0)
    before = qc.count(COLLECTION).count
    good = [{"id": 10**9 + i, "vector": [0.5] * DIM} for i in range(50)]
    bad = [*good, {"id": 10**9 + 99, "vector": [0.5] * (DIM - 1)}]
    assert (
        rest(one, "PUT", f"/collections/{COLLECTION}/points?wait=true", {"points": bad}).status_code
        == 400
    )
    assert qc.count(COLLECTION).count == before
    assert qc.retrieve(COLLECTION, [10**9]) == []


def test_patch_and_delete_collection(one: LocalCluster) -> None:
    """PATCH changes parameters through consensus; DELETE removes the collection's files."""
    qc = client(one, 0)
    assert qc.update_collection(
        COLLECTION, optimizers_config=None,
        collection_params=models.CollectionParamsDiff(write_consistency_factor=1,
                                                      replication_factor=1),
        hnsw_config=models.HnswConfigDiff(ef_construct=64),
    )  # fmt: skip
    assert qc.get_collection(COLLECTION).config.hnsw_config.ef_construct == 64
    files = one.peers[0].storage / "collections" / COLLECTION
    assert files.exists()
    assert qc.delete_collection(COLLECTION)
    assert not files.exists()
    assert not qc.collection_exists(COLLECTION)
    assert qc.delete_collection(COLLECTION) is False

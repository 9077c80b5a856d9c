"""Shard snapshots with real peer processes, driven by the official client (facts §7.7, G-8).

Two peers hold one shard (replication factor 2). A shard snapshot is made on peer 0 at T, the
writes go on, and the snapshot is recovered into peer 1's replica: with priority ``replica``
peer 1 ends equal to the Active source (writes after T kept), with ``snapshot`` both replicas
end equal to the snapshot. The client's ``create_shard_snapshot``, ``list_shard_snapshots``,
``recover_shard_snapshot`` and ``delete_shard_snapshot`` work against the server as against
Qdrant; a 503 (no leader for a moment) is retried after its Retry-After, as a client would.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from refimpl.launcher import LocalCluster
from tests.cluster._support import call_retrying, client_retrying, running_cluster, wait_until

pytestmark = pytest.mark.cluster
DIM = 4
NAME = "shardsnap"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root: Path = tmp_path_factory.mktemp("shard-snapshots")
    with running_cluster(root, peers=2, tick_period_ms=50) as c:
        yield c


def _points(ids: range) -> list[models.PointStruct]:
    return [models.PointStruct(id=i, vector=np.random.default_rng(i).normal(size=DIM).round(3)
                               .tolist(), payload={"n": i}) for i in ids]  # fmt: skip


def _local_count(url: str) -> int | None:
    """Points in this peer's replica of shard 0 (None while it is not Active)."""
    info = httpx.get(f"{url}/collections/{NAME}/cluster", timeout=10).json()["result"]
    local = [s for s in info["local_shards"] if s["shard_id"] == 0 and s["state"] == "Active"]
    return int(local[0]["points_count"]) if local else None


def _settled(url: str) -> bool:
    info = httpx.get(f"{url}/collections/{NAME}/cluster", timeout=10).json()["result"]
    states = [s["state"] for s in info["local_shards"] + info["remote_shards"]]
    return states == ["Active", "Active"] and not info["shard_transfers"]


def _ids(qc: QdrantClient) -> list[int]:
    points, _ = qc.scroll(NAME, limit=1000, consistency=models.ReadConsistencyType.ALL)
    return sorted(int(p.id) for p in points)


@pytest.fixture
def clients(cluster: LocalCluster) -> Iterator[tuple[QdrantClient, QdrantClient]]:
    """A fresh collection (1 shard on both peers, points 0..99) and a client per peer."""
    qc0, qc1 = (QdrantClient(url=p.rest_url, timeout=60) for p in cluster.peers)
    if qc0.collection_exists(NAME):
        client_retrying(lambda: qc0.delete_collection(NAME))
        time.sleep(0.5)  # every peer applies the delete before the name is used again
    client_retrying(lambda: qc0.create_collection(
        NAME, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
        shard_number=1, replication_factor=2))  # fmt: skip
    assert wait_until(lambda: _settled(cluster.peers[1].rest_url))
    client_retrying(lambda: qc0.upsert(NAME, _points(range(100)), wait=True))
    for old in qc0.list_shard_snapshots(NAME, 0):  # kept from an earlier test's collection
        assert qc0.delete_shard_snapshot(NAME, 0, old.name) is True
    yield qc0, qc1
    qc0.close()
    qc1.close()


def _snapshot_then_write(qc0: QdrantClient) -> models.SnapshotDescription:
    made = client_retrying(lambda: qc0.create_shard_snapshot(NAME, 0))
    assert made is not None and made.name.startswith(f"{NAME}-shard-0-")
    assert qc0.list_shard_snapshots(NAME, 0) == [made]
    client_retrying(lambda: qc0.upsert(NAME, _points(range(100, 140)), wait=True))
    client_retrying(
        lambda: qc0.delete(NAME, models.PointIdsList(points=list(range(10))), wait=True)
    )
    return made


def test_replica_priority_catches_up_to_the_source(
    cluster: LocalCluster, clients: tuple[QdrantClient, QdrantClient]
) -> None:
    """G-8 with ``replica``: peer 1 restores the older snapshot, then a sync transfer from
    peer 0 brings it to peer 0's content (writes after T kept, deletes too)."""
    qc0, qc1 = clients
    url0, url1 = (p.rest_url for p in cluster.peers)
    made = _snapshot_then_write(qc0)
    location = f"{url0}/collections/{NAME}/shards/0/snapshots/{made.name}"
    assert client_retrying(lambda: qc1.recover_shard_snapshot(
        NAME, 0, location=location, checksum=made.checksum,
        priority=models.SnapshotPriority.REPLICA)) is True  # fmt: skip
    assert wait_until(lambda: _settled(url1) and _local_count(url1) == 130)
    assert _local_count(url0) == 130
    assert _ids(qc1) == list(range(10, 140))
    assert client_retrying(lambda: qc0.delete_shard_snapshot(NAME, 0, made.name)) is True
    assert qc0.list_shard_snapshots(NAME, 0) == []


def test_snapshot_priority_makes_the_snapshot_the_truth(
    cluster: LocalCluster, clients: tuple[QdrantClient, QdrantClient]
) -> None:
    """G-8 with ``snapshot``: peer 1 holds exactly the snapshot when the call returns; peer 0
    is marked Dead, re-syncs from it, and both end with the snapshot's 100 points."""
    qc0, qc1 = clients
    url0, url1 = (p.rest_url for p in cluster.peers)
    made = _snapshot_then_write(qc0)
    location = f"{url0}/collections/{NAME}/shards/0/snapshots/{made.name}"
    assert client_retrying(lambda: qc1.recover_shard_snapshot(
        NAME, 0, location=location, priority=models.SnapshotPriority.SNAPSHOT)) is True  # fmt: skip
    assert _local_count(url1) == 100
    assert wait_until(lambda: _settled(url0) and _local_count(url0) == 100)
    assert _ids(qc0) == list(range(100))


def test_upload_and_refusals(
    cluster: LocalCluster, clients: tuple[QdrantClient, QdrantClient]
) -> None:
    """An upload with ``no_sync`` restores peer 1 only; bad input is a clear 4xx."""
    qc0, _ = clients
    url0, url1 = (p.rest_url for p in cluster.peers)
    made = _snapshot_then_write(qc0)
    base = f"/collections/{NAME}/shards/0/snapshots"
    archive = httpx.get(f"{url0}{base}/{made.name}", timeout=60).content
    files = {"snapshot": ("s.snapshot", archive, "application/octet-stream")}
    answer = call_retrying(url1, "POST", f"{base}/upload?priority=no_sync", files=files)
    assert answer.status_code == 200 and answer.json()["result"] is True, answer.text
    assert _local_count(url1) == 100 and _local_count(url0) == 130
    corrupt = archive[: len(archive) // 2]
    cases = [
        ("POST", f"{base}/upload?priority=sideways", files, 400, "priority"),
        ("POST", f"/collections/{NAME}/shards/7/snapshots/upload", files, 404, "no shard 7"),
        ("POST", "/collections/missing/shards/0/snapshots/upload", files, 404, "doesn't exist"),
        ("POST", f"{base}/upload", {"snapshot": ("s", corrupt)}, 400, "nothing changed"),
    ]
    for method, path, body, status, why in cases:
        refused = call_retrying(url1, method, path, files=body)
        assert refused.status_code == status, refused.text
        assert why in refused.json()["status"]["error"]
    assert _local_count(url1) == 100


def test_recovery_from_a_keyed_peer_sends_the_api_key(tmp_path: Path) -> None:
    """With ``service.api_key`` set, the download route wants the key too: a recovery from
    a URL passes the body's ``api_key`` on (facts §7.7), and without it the download's 401
    is reported as a 400 that names the answer."""
    key = "rest-key-4d2a"
    env = {"QDRANT__SERVICE__API_KEY": key}
    with LocalCluster(tmp_path, peers=1, tick_period_ms=50, extra_env=env) as c:
        c.start_first()
        c.wait_for_voters(1, timeout_s=60)
        url = c.peers[0].rest_url
        headers = {"api-key": key}
        body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1}
        created = call_retrying(url, "PUT", f"/collections/{NAME}", body, headers=headers)
        assert created.status_code == 200
        points = {"points": [p.model_dump() for p in _points(range(20))]}
        call_retrying(url, "PUT", f"/collections/{NAME}/points?wait=true", points, headers=headers)
        base = f"/collections/{NAME}/shards/0/snapshots"
        made = call_retrying(url, "POST", base, headers=headers).json()["result"]
        recover = {"location": f"{url}{base}/{made['name']}"}
        without = call_retrying(url, "PUT", f"{base}/recover", recover, headers=headers)
        assert without.status_code == 400 and "answered 401" in without.json()["status"]["error"]
        with_key = call_retrying(
            url, "PUT", f"{base}/recover", {**recover, "api_key": key}, headers=headers
        )
        assert with_key.status_code == 200, with_key.text
        count = call_retrying(url, "POST", f"/collections/{NAME}/points/count", {}, headers=headers)
        assert count.json()["result"]["count"] == 20

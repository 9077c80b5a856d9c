"""Collection snapshots with real peer processes: create, list, download, delete, recover.

Spec "Recover from snapshot" and facts §7.7: a snapshot holds the shards of the peer that made
it; recovering from a file:// path or another peer's URL puts the content back; a corrupt
archive is refused with a clear error and changes nothing.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from refimpl.launcher import LocalCluster
from tests.cluster._support import call as _call
from tests.cluster._support import call_retrying, running_cluster, wait_until
from tests.cluster._support import ok as _ok

pytestmark = pytest.mark.cluster
DIM = 4
NAME = "snap"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root: Path = tmp_path_factory.mktemp("snapshots")
    with running_cluster(root, peers=2, tick_period_ms=50) as c:
        yield c


def _points(ids: range) -> list[dict[str, Any]]:
    rng = np.random.default_rng(len(ids))
    return [{"id": i, "vector": rng.normal(size=DIM).round(3).tolist(), "payload": {"n": i}}
            for i in ids]  # fmt: skip


def _ids(url: str) -> list[int]:
    page = _ok(url, "POST", f"/collections/{NAME}/points/scroll", {"limit": 1000})
    return sorted(p["id"] for p in page["points"])


def test_snapshot_create_list_download_recover_delete(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """A snapshot taken on the peer holding every replica, restored after points were
    deleted, brings them back; list, download and delete follow Qdrant's shapes."""
    url0, url1 = cluster.peers[0].rest_url, cluster.peers[1].rest_url
    body = {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 2,
            "replication_factor": 2}  # fmt: skip
    assert _ok(url0, "PUT", f"/collections/{NAME}", body) is True
    _ok(url0, "PUT", f"/collections/{NAME}/points?wait=true", {"points": _points(range(300))})
    made = _ok(url0, "POST", f"/collections/{NAME}/snapshots")
    assert set(made) == {"name", "creation_time", "size", "checksum"}
    assert made["name"].startswith(f"{NAME}-") and made["name"].endswith(".snapshot")
    assert _ok(url0, "GET", f"/collections/{NAME}/snapshots") == [made]
    download = _call(url0, "GET", f"/collections/{NAME}/snapshots/{made['name']}")
    assert download.status_code == 200 and len(download.content) == made["size"]

    _ok(url0, "POST", f"/collections/{NAME}/points/delete?wait=true",
        {"points": list(range(100))})  # fmt: skip
    assert _ids(url0) == list(range(100, 300))

    # Recover on peer 1 from peer 0's download URL: peer 1's replicas get the content, and
    # peer 0's are marked Dead and pull it back by transfer.
    location = f"{url0}/collections/{NAME}/snapshots/{made['name']}"
    recovered = {"location": location, "checksum": made["checksum"]}
    assert _ok(url1, "PUT", f"/collections/{NAME}/snapshots/recover", recovered) is True
    assert _ids(url1) == list(range(300))
    assert wait_until(lambda: _ids(url0) == list(range(300)))
    assert wait_until(lambda: _all_active(url0))

    assert _ok(url0, "DELETE", f"/collections/{NAME}/snapshots/{made['name']}") is True
    assert _ok(url0, "GET", f"/collections/{NAME}/snapshots") == []
    gone = _call(url0, "GET", f"/collections/{NAME}/snapshots/{made['name']}")
    assert gone.status_code == 404


def _all_active(url: str) -> bool:
    info = _ok(url, "GET", f"/collections/{NAME}/cluster")
    states = [s["state"] for s in info["local_shards"] + info["remote_shards"]]
    return bool(states) and set(states) == {"Active"} and not info["shard_transfers"]


def test_a_corrupt_snapshot_is_refused_and_changes_nothing(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """A flipped byte, a wrong checksum or a snapshot of another shape: 400 with the reason,
    and the points stay as they were."""
    url0 = cluster.peers[0].rest_url
    before = _ids(url0)
    made = _ok(url0, "POST", f"/collections/{NAME}/snapshots")
    data = bytearray(_call(url0, "GET", f"/collections/{NAME}/snapshots/{made['name']}").content)
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(bytes(data))
    path = f"/collections/{NAME}/snapshots/recover"
    refused = _call(url0, "PUT", path, {"location": bad.as_uri()})
    assert refused.status_code == 400
    assert "snapshot refused, nothing changed" in refused.json()["status"]["error"]
    wrong_sum = _call(url0, "PUT", path, {"location": bad.as_uri(), "checksum": "0" * 64})
    assert wrong_sum.status_code == 400 and "checksum" in wrong_sum.json()["status"]["error"]
    missing = _call(url0, "PUT", path, {"location": (tmp_path / "none").as_uri()})
    assert missing.status_code == 400 and "cannot read" in missing.json()["status"]["error"]
    assert _call(url0, "GET", f"/collections/{NAME}/snapshots/x.snapshot").status_code == 404
    assert _ids(url0) == before


def test_replica_priority_and_upload(cluster: LocalCluster, tmp_path: Path) -> None:
    """Facts §7.7: priority ``replica`` restores the snapshot, then syncs from the Active
    replica, so later writes win; an upload (multipart field ``snapshot``) recovers like a
    location does; an unknown priority is refused by name."""
    url0, url1 = cluster.peers[0].rest_url, cluster.peers[1].rest_url
    name = "snaprep"
    body = {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 1,
            "replication_factor": 2}  # fmt: skip
    assert call_retrying(url0, "PUT", f"/collections/{name}", body).status_code == 200
    _ok(url0, "PUT", f"/collections/{name}/points?wait=true", {"points": _points(range(50))})
    made = _ok(url1, "POST", f"/collections/{name}/snapshots")
    archive = _call(url1, "GET", f"/collections/{name}/snapshots/{made['name']}").content
    _ok(url0, "PUT", f"/collections/{name}/points?wait=true", {"points": _points(range(50, 80))})

    def ids(url: str) -> list[int]:
        page = _ok(url, "POST", f"/collections/{name}/points/scroll?consistency=all",
                   {"limit": 1000})  # fmt: skip
        return sorted(p["id"] for p in page["points"])

    def local_count(url: str) -> int | None:
        info = _ok(url, "GET", f"/collections/{name}/cluster")
        active = [s["points_count"] for s in info["local_shards"] if s["state"] == "Active"]
        return active[0] if active else None

    files = {"snapshot": ("s.snapshot", archive, "application/octet-stream")}
    bad = call_retrying(
        url1, "POST", f"/collections/{name}/snapshots/upload?priority=x", files=files
    )
    assert bad.status_code == 400 and "priority" in bad.json()["status"]["error"]
    path = f"/collections/{name}/snapshots/upload?priority=replica"
    answer = call_retrying(url1, "POST", path, files=files)
    assert answer.status_code == 200, answer.text
    assert wait_until(lambda: local_count(url1) == 80 and _all_active_in(url1, name))
    assert ids(url1) == list(range(80))
    saved = tmp_path / "s.snapshot"
    saved.write_bytes(archive)
    recover = {"location": saved.as_uri(), "priority": "snapshot"}
    answer = call_retrying(url1, "PUT", f"/collections/{name}/snapshots/recover", recover)
    assert answer.status_code == 200, answer.text
    assert local_count(url1) == 50
    assert wait_until(lambda: local_count(url0) == 50 and _all_active_in(url0, name))


def _all_active_in(url: str, name: str) -> bool:
    info = _ok(url, "GET", f"/collections/{name}/cluster")
    states = [s["state"] for s in info["local_shards"] + info["remote_shards"]]
    return bool(states) and set(states) == {"Active"} and not info["shard_transfers"]


def test_a_shard_with_no_copy_left_is_recovered_from_a_snapshot(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """Spec "Node Failure Recovery": the only peer holding a shard is removed (force=true drops
    its replica), then the collection is recovered from that peer's earlier snapshot on
    another peer: the shard is re-created there in Recovery, filled, and Active."""
    url0, url1 = cluster.peers[0].rest_url, cluster.peers[1].rest_url
    lonely = "lonely"
    body = {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 1}
    assert _ok(url0, "PUT", f"/collections/{lonely}", body) is True
    info = _ok(url0, "GET", f"/collections/{lonely}/cluster")
    holder_url = url0 if info["local_shards"] else url1
    other_url = url1 if holder_url == url0 else url0
    holder_id = _ok(holder_url, "GET", "/cluster")["peer_id"]
    _ok(holder_url, "PUT", f"/collections/{lonely}/points?wait=true",
        {"points": _points(range(120))})  # fmt: skip
    made = _ok(holder_url, "POST", f"/collections/{lonely}/snapshots")
    saved = tmp_path / made["name"]
    saved.write_bytes(httpx.get(f"{holder_url}/collections/{lonely}/snapshots/{made['name']}",
                                timeout=60).content)  # fmt: skip
    removed = _call(other_url, "DELETE", f"/cluster/peer/{holder_id}?force=true")
    assert removed.status_code == 200, removed.text
    assert wait_until(
        lambda: _ok(other_url, "GET", f"/collections/{lonely}/cluster")["remote_shards"] == []
    )
    lost = _call(other_url, "POST", f"/collections/{lonely}/points/count", {"exact": True})
    assert lost.status_code >= 500, "no replica of the shard is left"
    recover = {"location": saved.as_uri(), "checksum": made["checksum"]}
    # If the removed peer was the leader, the survivor elects itself first: until then the
    # API answers 503 with Retry-After (documented as retryable), so retry like a client would.
    assert wait_until(
        lambda: (
            _call(other_url, "GET", "/cluster").json()["result"]["raft_info"]["leader"] is not None
        )
    )
    answer = _call(other_url, "PUT", f"/collections/{lonely}/snapshots/recover", recover)
    for _ in range(50):
        if answer.status_code != 503:
            break
        time.sleep(0.2)
        answer = _call(other_url, "PUT", f"/collections/{lonely}/snapshots/recover", recover)
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] is True
    view = _ok(other_url, "GET", f"/collections/{lonely}/cluster")
    assert view["local_shards"] == [{"shard_id": 0, "points_count": 120, "state": "Active"}]
    page = _ok(other_url, "POST", f"/collections/{lonely}/points/scroll", {"limit": 500})
    assert sorted(p["id"] for p in page["points"]) == list(range(120))

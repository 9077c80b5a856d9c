"""The ``snapshot`` and ``wal_delta`` transfer methods with real peer processes (facts §6.1).

A client keeps upserting while a shard is replicated by snapshot and then moved by WAL delta:
every replica ends with every acknowledged point, and the transfers show the Recovery stage.
An unknown method is refused with a message naming the three.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refimpl.launcher import LocalCluster
from tests.cluster._support import call as _call
from tests.cluster._support import ok as _ok
from tests.cluster._support import running_cluster

pytestmark = pytest.mark.cluster
DIM = 8
NAME = "methods"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root: Path = tmp_path_factory.mktemp("methods")
    with running_cluster(root, peers=3, tick_period_ms=50) as c:
        yield c


def _points(ids: range) -> list[dict[str, Any]]:
    rng = np.random.default_rng(ids.start)
    return [{"id": i, "vector": rng.normal(size=DIM).round(4).tolist(), "payload": {"n": i}}
            for i in ids]  # fmt: skip


def _peer_id(url: str) -> int:
    return int(_ok(url, "GET", "/cluster")["peer_id"])


def _holders(url: str) -> dict[int, str]:
    info = _ok(url, "GET", f"/collections/{NAME}/cluster")
    out = {r["peer_id"]: r["state"] for r in info["remote_shards"]}
    for r in info["local_shards"]:
        out[info["peer_id"]] = r["state"]
    return out


def _wait(url: str, predicate: Any, timeout_s: float = 60.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout_s
    seen: list[dict[int, str]] = []
    while True:
        holders = _holders(url)
        if not seen or seen[-1] != holders:
            seen.append(holders)
        if (
            predicate(holders)
            and not _ok(url, "GET", f"/collections/{NAME}/cluster")["shard_transfers"]
        ):
            return holders
        assert time.monotonic() < deadline, f"never reached the state; seen {seen}"
        time.sleep(0.05)


def test_replicate_by_snapshot_then_move_by_wal_delta_under_writes(cluster: LocalCluster) -> None:
    """Replicate shard 0 by ``snapshot``, then move the original replica away by
    ``wal_delta``, while a client upserts with wait=true: the peers' logs show the snapshot
    restored and the WAL delta prepared, and every replica at the end holds every
    acknowledged point (and nothing else: a refused write is sent again before the check)."""
    url = cluster.peers[0].rest_url
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1}
    assert _ok(url, "PUT", f"/collections/{NAME}", body) is True
    for start in range(0, 2000, 500):
        _ok(url, "PUT", f"/collections/{NAME}/points?wait=true",
            {"points": _points(range(start, start + 500))})  # fmt: skip
    urls = {_peer_id(p.rest_url): p.rest_url for p in cluster.peers}
    (source,) = _holders(url)
    first, second = [p for p in sorted(urls) if p != source]
    acked: list[int] = list(range(2000))
    refused: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        n = 10_000
        while not stop.is_set():
            batch = range(n, n + 5)
            response = _call(urls[first], "PUT", f"/collections/{NAME}/points?wait=true",
                             {"points": _points(batch)})  # fmt: skip
            (acked if response.status_code == 200 else refused).extend(batch)
            n += 5

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        replicate = {"replicate_shard": {"shard_id": 0, "from_peer_id": source,
                                         "to_peer_id": first, "method": "snapshot"}}  # fmt: skip
        assert _ok(url, "POST", f"/collections/{NAME}/cluster", replicate) is True
        _wait(url, lambda h: h == {source: "Active", first: "Active"})
        move = {"move_shard": {"shard_id": 0, "from_peer_id": source, "to_peer_id": second,
                               "method": "wal_delta"}}  # fmt: skip
        assert _ok(url, "POST", f"/collections/{NAME}/cluster", move) is True
        _wait(url, lambda h: h == {first: "Active", second: "Active"})
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    for i in range(0, len(refused), 5):  # what was refused is indefinite: send it again
        _ok(urls[first], "PUT", f"/collections/{NAME}/points?wait=true",
            {"points": _points(range(refused[i], refused[i] + 5))})  # fmt: skip
    want = sorted(set(acked) | set(refused))
    for peer in (first, second):
        info = _ok(urls[peer], "GET", f"/collections/{NAME}/cluster")
        assert info["local_shards"] == [
            {"shard_id": 0, "points_count": len(want), "state": "Active"}
        ], peer
    got = _ok(urls[second], "POST", f"/collections/{NAME}/points/scroll",
              {"limit": 100_000, "with_payload": True})["points"]  # fmt: skip
    assert [r["id"] for r in got] == want
    assert all(r["payload"] == {"n": r["id"]} for r in got)
    logs = "".join(cluster.peers[i].log_path.read_text() for i in range(3))
    assert f"restored {NAME}/0 from a transferred snapshot" in logs
    assert f"prepared {NAME}/0 for a wal_delta transfer" in logs
    assert len(acked) > 2010, "the client kept writing during the transfers"


def test_an_unknown_method_is_refused_naming_the_three(cluster: LocalCluster) -> None:
    url = cluster.peers[0].rest_url
    ids = sorted(_peer_id(p.rest_url) for p in cluster.peers)
    body = {"replicate_shard": {"shard_id": 0, "from_peer_id": ids[0], "to_peer_id": ids[1],
                                "method": "carrier_pigeon"}}  # fmt: skip
    if NAME not in [c["name"] for c in _ok(url, "GET", "/collections")["collections"]]:
        _ok(url, "PUT", f"/collections/{NAME}", {"vectors": {"size": DIM, "distance": "Dot"}})
    response = _call(url, "POST", f"/collections/{NAME}/cluster", body)
    assert response.status_code == 400
    error = response.json()["status"]["error"]
    assert all(m in error for m in ("stream_records", "snapshot", "wal_delta")), error

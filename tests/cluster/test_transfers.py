"""Shard transfers with real peer processes: move, replicate, drop and abort over REST.

Spec "Cluster scaling": a shard moves between peers while the cluster keeps serving writes; the
target is Partial until the switch, which goes through consensus; no acknowledged write is lost.
Facts §7.5 give the request shapes and the refusals checked here.
"""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from refimpl.launcher import LocalCluster
from tests.cluster._support import call as _call
from tests.cluster._support import ok as _ok
from tests.cluster._support import running_cluster

pytestmark = pytest.mark.cluster
TICK_MS = 50
DIM = 8
NAME = "moving"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root: Path = tmp_path_factory.mktemp("transfers")
    with running_cluster(root, peers=3, tick_period_ms=TICK_MS) as c:
        yield c


def _points(ids: range, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"id": i, "vector": rng.normal(size=DIM).round(4).tolist(), "payload": {"n": i}}
        for i in ids
    ]


def _wait_cluster(url: str, predicate: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        info: dict[str, Any] = _ok(url, "GET", f"/collections/{NAME}/cluster")
        if predicate(info):
            return info
        assert time.monotonic() < deadline, f"cluster never reached the state: {info}"
        time.sleep(0.1)


def _holders(info: dict[str, Any], me: int, shard: int) -> dict[int, str]:
    out = {r["peer_id"]: r["state"] for r in info["remote_shards"] if r["shard_id"] == shard}
    for r in info["local_shards"]:
        if r["shard_id"] == shard:
            out[me] = r["state"]
    return out


def _peer_ids(url: str) -> list[int]:
    return sorted(int(p) for p in _ok(url, "GET", "/cluster")["peers"])


def test_move_shard_under_concurrent_writes_loses_no_acknowledged_write(
    cluster: LocalCluster,
) -> None:
    """Moving a shard while a client upserts with wait=true: afterwards the only replica (on
    the target) holds every acknowledged point, and nothing the client never sent (spec
    "Cluster scaling"). A write refused during the switch is indefinite, as in Qdrant: a replica
    may have applied it, so it may be present or absent, but never half (all 5 points or none)."""
    url = cluster.peers[0].rest_url
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1}
    assert _ok(url, "PUT", f"/collections/{NAME}", body) is True
    _ok(url, "PUT", f"/collections/{NAME}/points?wait=true", {"points": _points(range(3000), 1)})
    me = _ok(url, "GET", "/cluster")["peer_id"]
    info = _wait_cluster(url, lambda i: set(_holders(i, me, 0).values()) == {"Active"})
    (source,) = _holders(info, me, 0)
    target = next(p for p in _peer_ids(url) if p != source)
    acked: list[int] = []
    refused: list[list[int]] = []  # batches answered with an error: indefinite
    stop = threading.Event()

    def writer() -> None:
        next_id = 10_000
        n = 0
        while not stop.is_set():
            batch = _points(range(next_id, next_id + 5), next_id)
            peer_url = cluster.peers[n % 3].rest_url
            response = _call(peer_url, "PUT", f"/collections/{NAME}/points?wait=true",
                             {"points": batch})  # fmt: skip
            if response.status_code == 200:
                acked.extend(p["id"] for p in batch)
            else:
                refused.append([p["id"] for p in batch])
            next_id, n = next_id + 5, n + 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        move = {"shard_id": 0, "from_peer_id": source, "to_peer_id": target}
        before = len(acked)
        assert _ok(url, "POST", f"/collections/{NAME}/cluster", {"move_shard": move}) is True
        moving = _ok(url, "GET", f"/collections/{NAME}/cluster")
        shown = _holders(moving, me, 0)
        assert shown.get(target) in {"Partial", "Active"}, moving
        source_url = next(p.rest_url for p in cluster.peers if _peer_id(p.rest_url) == source)
        for t in _ok(source_url, "GET", f"/collections/{NAME}/cluster")["shard_transfers"]:
            assert t["from"] == source and isinstance(t["comment"], str), t  # the source says
        _wait_cluster(url, lambda i: _holders(i, me, 0) == {target: "Active"}, 60)
        during = len(acked) - before
        # keep writing a little after the switch: writes go to the new holder
        switched = len(acked)
        while len(acked) < switched + 20:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert during >= 10, f"the writer must run during the move ({during} acknowledged)"
    wanted = list(range(3000)) + acked
    got = _ok(url, "POST", f"/collections/{NAME}/points", {"ids": wanted, "with_payload": True})
    assert sorted(r["id"] for r in got) == sorted(wanted)
    assert all(r["payload"] == {"n": r["id"]} for r in got)
    indefinite = {i for batch in refused for i in batch}
    everything = _ok(url, "POST", f"/collections/{NAME}/points/scroll",
                     {"limit": 100_000, "with_payload": False})["points"]  # fmt: skip
    present = {r["id"] for r in everything}
    assert set(wanted) <= present, "an acknowledged write was lost"
    assert present - set(wanted) <= indefinite, "a point nobody wrote appeared"
    for batch in refused:  # a refused batch is all in or all out, never half applied
        assert len(present & set(batch)) in {0, len(batch)}, (batch, present & set(batch))
    target_index = next(i for i, p in enumerate(cluster.peers) if _peer_id(p.rest_url) == target)
    target_view = _ok(cluster.peers[target_index].rest_url, "GET", f"/collections/{NAME}/cluster")
    assert target_view["local_shards"] == [
        {"shard_id": 0, "points_count": len(present), "state": "Active"}
    ]
    assert target_view["shard_transfers"] == []


def _peer_id(url: str) -> int:
    return int(_ok(url, "GET", "/cluster")["peer_id"])


def test_replicate_then_drop_replica_and_refusals(cluster: LocalCluster) -> None:
    """replicate_shard adds an Active copy holding every point; drop_replica removes one; the
    last active replica cannot be dropped; bad requests get 4xx with Qdrant's wording
    (facts §7.5)."""
    url = cluster.peers[1].rest_url
    me = _peer_id(url)
    info = _wait_cluster(url, lambda i: len(_holders(i, me, 0)) == 1 and not i["shard_transfers"])
    ((holder, _),) = _holders(info, me, 0).items()
    other = next(p for p in _peer_ids(url) if p != holder)
    path = f"/collections/{NAME}/cluster"
    rep = {"replicate_shard": {"shard_id": 0, "from_peer_id": holder, "to_peer_id": other}}
    assert _ok(url, "POST", path, rep) is True
    _wait_cluster(url, lambda i: _holders(i, me, 0) == {holder: "Active", other: "Active"}, 60)
    count = _ok(url, "POST", f"/collections/{NAME}/points/count", {"exact": True})["count"]
    other_url = next(p.rest_url for p in cluster.peers if _peer_id(p.rest_url) == other)
    other_view = _ok(other_url, "GET", path)
    assert other_view["local_shards"][0]["points_count"] == count

    drop = {"drop_replica": {"shard_id": 0, "peer_id": holder}}
    assert _ok(url, "POST", path, drop) is True
    _wait_cluster(url, lambda i: _holders(i, me, 0) == {other: "Active"})
    last = _call(url, "POST", path, {"drop_replica": {"shard_id": 0, "peer_id": other}})
    assert last.status_code == 400
    assert "at least one active replica" in last.json()["status"]["error"]

    refusals = [
        ({"move_shard": {"shard_id": 0, "from_peer_id": other, "to_peer_id": 12345}}, 400,
         "Peer 12345 does not exist"),
        ({"move_shard": {"shard_id": 7, "from_peer_id": other, "to_peer_id": holder}}, 400,
         "Shard 7 of moving does not exist"),
        ({"move_shard": {"shard_id": 0, "from_peer_id": holder, "to_peer_id": other}}, 400,
         f"has no replica on peer {holder}"),
        ({"move_shard": {"shard_id": 0, "from_peer_id": other, "to_peer_id": holder,
                         "method": "teleport"}}, 400, "`move_shard.method` must be one of"),
        ({"abort_transfer": {"shard_id": 0, "from_peer_id": other, "to_peer_id": holder}}, 404,
         "no transfer of shard 0"),
        ({"create_sharding_key": {"shard_key": "a"}}, 400, "not implemented"),
        ({"move_shard": {}, "drop_replica": {}}, 400, "exactly one"),
    ]  # fmt: skip
    for body, status, words in refusals:
        response = _call(url, "POST", path, body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["status"]["error"], (body, response.text)
    missing = _call(url, "POST", "/collections/nope/cluster", drop)
    assert missing.status_code == 404


def test_a_dead_replica_recovers_by_itself_after_restart(cluster: LocalCluster) -> None:
    """A peer killed while writes continue has its replica marked Dead (before the writes are
    acknowledged); once restarted it pulls a transfer itself: Dead -> Partial -> Active, with
    every point (spec "Node Failure Recovery"; facts §4.4)."""
    url = cluster.peers[0].rest_url
    name = "healing"
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1,
            "replication_factor": 2}  # fmt: skip
    assert _ok(url, "PUT", f"/collections/{name}", body) is True
    me = _peer_id(url)
    path = f"/collections/{name}/cluster"
    info = _wait_cluster_of(url, name, lambda i: len(_holders(i, me, 0)) == 2)
    holders = sorted(_holders(info, me, 0))
    victim = next(i for i, p in enumerate(cluster.peers) if _peer_id(p.rest_url) in holders)
    victim_id = _peer_id(cluster.peers[victim].rest_url)
    survivor = next(i for i in range(3) if i != victim)
    s_url = cluster.peers[survivor].rest_url
    _ok(s_url, "PUT", f"/collections/{name}/points?wait=true", {"points": _points(range(500), 3)})
    cluster.kill(victim)
    _ok(s_url, "PUT", f"/collections/{name}/points?wait=true",
        {"points": _points(range(500, 700), 4)})  # fmt: skip
    # The write was acknowledged only after the failed replica was marked Dead.
    dead = _ok(s_url, "GET", path)
    assert _holders(dead, _peer_id(s_url), 0)[victim_id] == "Dead"
    cluster.restart(victim)
    v_url = cluster.peers[victim].rest_url
    # Right after the restart the peer may still replay an old log (its replica looks
    # Active); it catches up, sees itself Dead, pulls a transfer and ends Active with all.
    want = [{"shard_id": 0, "points_count": 700, "state": "Active"}]
    healed = _wait_cluster_of(v_url, name, lambda i: i["local_shards"] == want, 60)
    assert set(_holders(healed, victim_id, 0).values()) == {"Active"}
    assert healed["shard_transfers"] == []
    log = cluster.peers[victim].log_path.read_text()
    # Recovery prefers a WAL delta (as Qdrant); a stream is the fallback when the WAL is short.
    assert f"prepared {name}/0 for a wal_delta transfer" in log or (
        f"prepared {name}/0 for a transfer" in log
    )


def _wait_cluster_of(
    url: str, name: str, predicate: Any, timeout_s: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            info: dict[str, Any] = _ok(url, "GET", f"/collections/{name}/cluster")
        except (httpx.HTTPError, AssertionError):
            info = {}
        if info and predicate(info):
            return info
        assert time.monotonic() < deadline, f"cluster never reached the state: {info}"
        time.sleep(0.1)

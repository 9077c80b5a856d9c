"""Scaling a cluster of real peer processes: what every peer reports, downscale, upscale.

Spec "Cluster scaling": the Collection Cluster info API tells where the shards are; to
downscale, move all shards away from a peer, then remove it with ``DELETE /cluster/peer/{id}``
(refused while it holds replicas), after which the instance can be shut down; to upscale, a new
peer joins with ``--bootstrap`` and shards are moved or replicated onto it — all without
downtime. A client keeps reading and writing through the whole sequence, retrying a 503 after
its Retry-After as a client would; anything else than 200 or 503 fails the test.
"""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from refimpl.launcher import LocalCluster
from tests.cluster._support import call_retrying, ok_retrying, running_cluster

pytestmark = pytest.mark.cluster
TICK_MS = 50
DIM = 4
SHARDS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    root: Path = tmp_path_factory.mktemp("scaling")
    with running_cluster(root, peers=3, tick_period_ms=TICK_MS) as c:
        yield c


def _points(ids: range) -> list[dict[str, Any]]:
    rng = np.random.default_rng(ids.start)
    return [{"id": i, "vector": rng.normal(size=DIM).round(3).tolist()} for i in ids]


def _placement(url: str, name: str) -> tuple[dict[tuple[int, int], str], list[Any], dict[int, int]]:
    """One peer's view: {(shard, peer id): state}, the transfers, {local shard: points}."""
    info = ok_retrying(url, "GET", f"/collections/{name}/cluster")
    me = info["peer_id"]
    replicas = {(s["shard_id"], me): s["state"] for s in info["local_shards"]}
    replicas |= {(s["shard_id"], s["peer_id"]): s["state"] for s in info["remote_shards"]}
    local = {s["shard_id"]: s["points_count"] for s in info["local_shards"]}
    return replicas, info["shard_transfers"], local


def _settled(url: str, name: str) -> bool:
    replicas, transfers, _ = _placement(url, name)
    return not transfers and set(replicas.values()) == {"Active"}


def _peer_id(url: str) -> int:
    return int(ok_retrying(url, "GET", "/cluster")["peer_id"])


def _move(cluster: LocalCluster, url: str, shard: int, src: int, dst: int) -> None:
    move = {"move_shard": {"shard_id": shard, "from_peer_id": src, "to_peer_id": dst}}
    assert ok_retrying(url, "POST", "/collections/scaled/cluster", move) is True
    cluster.wait_until(f"shard {shard} moved to {dst}", lambda: _settled(url, "scaled"), 60)
    assert (shard, dst) in _placement(url, "scaled")[0]


def test_every_peer_reports_the_same_shard_distribution(cluster: LocalCluster) -> None:
    """The Collection Cluster info API: every peer lists every replica once (its own as local
    shards with their point counts, the others as remote), all peers agree on the placement,
    and the local counts of the whole cluster add up to the collection's points."""
    urls = [p.rest_url for p in cluster.peers[:3]]
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": SHARDS,
            "replication_factor": 2}  # fmt: skip
    assert ok_retrying(urls[0], "PUT", "/collections/where", body) is True
    ok_retrying(
        urls[1], "PUT", "/collections/where/points?wait=true", {"points": _points(range(900))}
    )
    cluster.wait_until("all replicas Active", lambda: _settled(urls[2], "where"))
    views = [_placement(url, "where") for url in urls]
    assert all(v[0] == views[0][0] for v in views), "peers disagree on the placement"
    assert sorted({shard for shard, _ in views[0][0]}) == list(range(SHARDS))
    ids = {_peer_id(url) for url in urls}
    assert {peer for _, peer in views[0][0]} == ids
    for shard in range(SHARDS):  # two replicas per shard, on two different peers
        assert len([p for s, p in views[0][0] if s == shard]) == 2
    per_shard: dict[int, set[int]] = {}
    for _, _, local in views:
        for shard, points in local.items():
            per_shard.setdefault(shard, set()).add(points)
    assert all(len(counts) == 1 for counts in per_shard.values()), per_shard  # replicas agree
    assert sum(counts.pop() for counts in per_shard.values()) == 900
    ok_retrying(urls[0], "DELETE", "/collections/where")


class _Client:
    """Writes batches of 5 and counts, through the given peers, until stopped; remembers what
    was acknowledged and every answer that was neither 200 nor a retried 503."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.acked: list[int] = []
        self.unexpected: list[str] = []
        self.low_counts: list[tuple[int, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        next_id, n = 10_000, 0
        while not self.stop.is_set():
            url = self.urls[n % len(self.urls)]
            batch = _points(range(next_id, next_id + 5))
            put = call_retrying(
                url, "PUT", "/collections/scaled/points?wait=true", {"points": batch}
            )
            if put.status_code == 200:
                self.acked.extend(p["id"] for p in batch)
            else:
                self.unexpected.append(f"PUT {put.status_code} {put.text}")
            floor = 1000 + len(self.acked)
            got = call_retrying(url, "POST", "/collections/scaled/points/count", {"exact": True})
            if got.status_code != 200:
                self.unexpected.append(f"count {got.status_code} {got.text}")
            elif got.json()["result"]["count"] < floor:
                self.low_counts.append((got.json()["result"]["count"], floor))
            next_id, n = next_id + 5, n + 1


def test_downscale_then_upscale_without_downtime(cluster: LocalCluster) -> None:
    """Empty a peer and remove it (refused while it holds replicas), shut it down, then add a
    peer with --bootstrap and move shards onto it, while a client keeps writing and counting
    through the other peers: every write and every read is answered (after 503 retries), no
    count ever misses an acknowledged point, and every acknowledged point is there at the end."""
    urls = [p.rest_url for p in cluster.peers[:3]]
    leader = cluster.wait_for_leader()
    victim = 2 if leader != 2 else 1
    others = [i for i in range(3) if i != victim]
    url = urls[others[0]]
    ids = [_peer_id(u) for u in urls]
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": SHARDS}
    assert ok_retrying(url, "PUT", "/collections/scaled", body) is True
    ok_retrying(
        url, "PUT", "/collections/scaled/points?wait=true", {"points": _points(range(1000))}
    )
    client = _Client([urls[i] for i in others])
    client.thread.start()
    try:
        _downscale(cluster, url, ids, victim, others)
        before_join = len(client.acked)
        new = _upscale(cluster, url, others)
        assert len(client.acked) > before_join, "the client was not writing during the upscale"
    finally:
        client.stop.set()
        client.thread.join()
    assert client.unexpected == [], client.unexpected[:5]
    assert client.low_counts == [], client.low_counts[:5]
    assert len(client.acked) >= 20, "the client must have been writing during the scaling"
    wanted = list(range(1000)) + client.acked
    new_url = cluster.peers[new].rest_url
    got = ok_retrying(new_url, "POST", "/collections/scaled/points", {"ids": wanted})
    assert sorted(r["id"] for r in got) == sorted(wanted)
    counted = ok_retrying(new_url, "POST", "/collections/scaled/points/count", {"exact": True})
    count = counted["count"]
    assert count == len(wanted), "a point nobody acknowledged appeared, or one is missing"


def _downscale(
    cluster: LocalCluster, url: str, ids: list[int], victim: int, others: list[int]
) -> None:
    replicas, _, _ = _placement(url, "scaled")
    held = sorted(shard for shard, peer in replicas if peer == ids[victim])
    assert held, "the even placement gives every peer shards"
    refused = httpx.delete(f"{url}/cluster/peer/{ids[victim]}", timeout=30)
    assert refused.status_code == 400, refused.text
    assert f"Cannot remove peer {ids[victim]} as there are shards on it" in refused.text
    assert _placement(url, "scaled")[0] == replicas, "a refused removal changes nothing"
    for n, shard in enumerate(held):
        _move(cluster, url, shard, ids[victim], ids[others[n % 2]])
    assert all(peer != ids[victim] for _, peer in _placement(url, "scaled")[0])
    assert ok_retrying(url, "DELETE", f"/cluster/peer/{ids[victim]}") is True
    cluster.wait_for_voters(2, among=others, timeout_s=60)
    for i in others:
        info = cluster.cluster_info(i)
        assert info is not None and str(ids[victim]) not in info["peers"]
    cluster.wait_until(
        "the removed peer stops its consensus",
        lambda: (
            (info := cluster.cluster_info(victim)) is not None
            and info["consensus_thread_status"]["consensus_thread_status"] == "stopped"
        ),
    )
    cluster.kill(victim)  # "ready for the shutdown": nothing of the collection was on it


def _upscale(cluster: LocalCluster, url: str, others: list[int]) -> int:
    new = cluster.add_peer_slot().index
    cluster.start_joiner(new, via=others[1])
    cluster.wait_for_voters(3, among=[*others, new], timeout_s=60)
    new_id = _peer_id(cluster.peers[new].rest_url)
    replicas, _, _ = _placement(url, "scaled")
    assert all(peer != new_id for _, peer in replicas), "joining moves no data by itself"
    for _ in range(2):  # 3 + 3 + 0 -> 2 + 2 + 2
        replicas, _, _ = _placement(url, "scaled")
        load = {i: [s for s, p in replicas if p == _peer_id(cluster.peers[i].rest_url)]
                for i in others}  # fmt: skip
        busiest = max(others, key=lambda i: len(load[i]))
        src = _peer_id(cluster.peers[busiest].rest_url)
        _move(cluster, url, load[busiest][0], src, new_id)
    replicas, _, local = _placement(cluster.peers[new].rest_url, "scaled")
    assert sorted(peer for _, peer in replicas).count(new_id) == 2 and len(local) == 2
    return new

"""Spec "Node Failure Recovery", second scenario: a dead peer is excluded with the remove-peer
API (force), an empty peer joins with --bootstrap, and shards are replicated onto it."""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from refimpl.launcher import LocalCluster, fetch_placement

pytestmark = pytest.mark.cluster


def test_a_dead_peer_is_replaced_and_its_replicas_recreated(tmp_path: Path) -> None:
    """After force-removing a dead peer and replicating onto a new one, every shard again has
    two Active replicas and no acknowledged point is missing."""
    with LocalCluster(tmp_path, peers=3, tick_period_ms=50) as cluster:
        cluster.start_first()
        cluster.start_joiner(1)
        cluster.start_joiner(2)
        cluster.wait_for_voters(3, timeout_s=60)

        def call(peer: int, method: str, path: str, body: Any = None) -> Any:
            url = cluster.peers[peer].rest_url + path
            response = httpx.request(method, url, json=body, timeout=60)
            assert response.status_code == 200, response.text
            return response.json()["result"]

        ids = {call(i, "GET", "/cluster")["peer_id"]: i for i in range(3)}
        body = {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3,
                "replication_factor": 2}  # fmt: skip
        call(0, "PUT", "/collections/c", body)
        rng = np.random.default_rng(5)
        pts = [{"id": i, "vector": rng.normal(size=4).tolist()} for i in range(500)]
        call(0, "PUT", "/collections/c/points?wait=true", {"points": pts})
        victim_id = call(2, "GET", "/cluster")["peer_id"]
        cluster.kill(2)
        call(0, "PUT", "/collections/c/points?wait=true", {"points": pts[:50]})
        assert call(0, "DELETE", f"/cluster/peer/{victim_id}?force=true") is True
        new = cluster.add_peer_slot().index
        cluster.start_joiner(new, via=0)
        cluster.wait_for_voters(3, among=[0, 1, new], timeout_s=60)
        new_id = call(new, "GET", "/cluster")["peer_id"]
        info = call(0, "GET", "/collections/c/cluster")
        replicas = [(s["shard_id"], info["peer_id"]) for s in info["local_shards"]]
        replicas += [(s["shard_id"], s["peer_id"]) for s in info["remote_shards"]]
        assert victim_id not in {peer for _, peer in replicas}
        for shard in range(3):
            holders = [peer for s, peer in replicas if s == shard]
            if len(holders) < 2:
                op = {"replicate_shard": {"shard_id": shard, "from_peer_id": holders[0],
                                          "to_peer_id": new_id}}  # fmt: skip
                call(ids[holders[0]], "POST", "/collections/c/cluster", op)

        def all_active() -> bool:
            view = call(new, "GET", "/collections/c/cluster")
            states = [s["state"] for s in view["local_shards"] + view["remote_shards"]]
            return states.count("Active") == 6

        _wait_until(all_active)
        placement = fetch_placement(cluster.peers[new].rest_url, timeout_s=10)
        assert [state for _, _, state in placement["c"]] == ["Active"] * 6
        assert {peer for _, peer, _ in placement["c"]} == {*ids.keys(), new_id} - {victim_id}
        for peer in (0, 1, new):
            count = call(peer, "POST", "/collections/c/points/count", {"exact": True})["count"]
            assert count == 500


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)

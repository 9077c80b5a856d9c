"""`GET /cluster` shows how the peer's requests to other peers use their pooled connections."""

from __future__ import annotations

from pathlib import Path

from refimpl.peer.tcp import POOL_LIMIT
from tests.cluster._support import ok, running_cluster

BATCHES = 20


def test_forwarded_writes_reuse_a_few_pooled_connections(tmp_path: Path) -> None:
    """Twenty upserts through peer 0 each forward part of their batch to peer 1's shard. With
    pooling they travel over at most ``POOL_LIMIT`` connections, opened once and then reused;
    a transport that dialled per request would show twenty openings and no reuse."""
    with running_cluster(tmp_path, peers=2) as cluster:
        url = cluster.peers[0].rest_url
        body = {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 2}
        ok(url, "PUT", "/collections/pool", body)
        before = ok(url, "GET", "/cluster")["p2p_request_connections"]
        for b in range(BATCHES):
            points = [{"id": 100 * b + i, "vector": [1.0, 0.0, 0.0, float(i)]} for i in range(20)]
            ok(url, "PUT", "/collections/pool/points?wait=true", {"points": points})
        after = ok(url, "GET", "/cluster")["p2p_request_connections"]
        opened = after.get("opened", 0) - before.get("opened", 0)
        reused = after.get("reused", 0) - before.get("reused", 0)
        assert opened <= POOL_LIMIT, after
        assert reused >= BATCHES - POOL_LIMIT, after
        assert set(after) <= {"opened", "reused", "stale", "idle_closed", "broken"}, after

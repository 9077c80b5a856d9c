"""REST collections and points over a simulated 3-peer cluster (in-process, virtual time)."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
import trio
import trio.testing
from starlette.routing import Route

from refimpl.api.app import ApiContext, create_app
from refimpl.api.openapi import DATA_PATHS, DOCUMENTED_PATHS
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.replication import ReplicaState
from tests.peer._sim import three_voters

DIM = 4


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=5, with_data=True)
        nursery.cancel_scope.cancel()


three = three_voters  # three peers, each counting three voters and three peers


def http(sim_peer: SimPeer) -> httpx.AsyncClient:
    assert sim_peer.peer is not None
    app = create_app(ApiContext(sim_peer.peer, True, sim_peer.plane))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://peer")


async def call(sim_peer: SimPeer, method: str, path: str, body: Any = None) -> Any:
    async with http(sim_peer) as client:
        response = await client.request(method, path, json=body)
    assert response.status_code == 200, response.text
    return response.json()["result"]


async def test_every_data_route_is_documented(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """The OpenAPI document lists exactly the routes served, collections and points included."""
    first = await sim.start_first()
    assert first.peer is not None
    app = create_app(ApiContext(first.peer, True, first.plane))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    documented = {
        (path, m) for paths in (DOCUMENTED_PATHS, DATA_PATHS) for path, ops in paths.items()
        for m in ops
    }  # fmt: skip
    assert served == documented


async def test_placement_is_even_and_every_replica_becomes_active(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec "Sharding": shards spread evenly over the peers; replicas Initializing -> Active."""
    peers = await three(sim)
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 6,
            "replication_factor": 2, "write_concern_factor": 2}  # fmt: skip
    assert await call(peers[1], "PUT", "/collections/c", body) is True
    views = [await call(p, "GET", "/collections/c/cluster") for p in peers]
    for view in views:
        assert view["shard_count"] == 6
        assert len(view["local_shards"]) == 4  # 12 replicas over 3 peers
        states = {s["state"] for s in view["local_shards"] + view["remote_shards"]}
        assert states == {ReplicaState.Active.value}
    info = await call(peers[2], "GET", "/collections/c")
    assert info["config"]["params"]["write_consistency_factor"] == 2
    assert info["status"] == "green"


async def test_points_written_anywhere_are_read_everywhere(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Any peer routes writes by the hash ring and answers reads over every shard."""
    peers = await three(sim)
    await call(peers[0], "PUT", "/collections/c",
               {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 6})  # fmt: skip
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, DIM))
    ids: list[Any] = [i if i % 2 else str(uuid.UUID(int=i)) for i in range(60)]
    batch = {"ids": ids, "vectors": vectors.tolist(), "payloads": [{"g": i % 3} for i in range(60)]}
    result = await call(peers[1], "PUT", "/collections/c/points?wait=true", {"batch": batch})
    assert result["status"] == "completed"
    for p in peers:
        assert (await call(p, "POST", "/collections/c/points/count", {}))["count"] == 60
    query = rng.normal(size=DIM)
    hits = await call(peers[2], "POST", "/collections/c/points/query",
                      {"query": query.tolist(), "limit": 5})  # fmt: skip
    best = np.argsort(-(vectors.astype(np.float32) @ query.astype(np.float32)))[:5]
    assert [h["id"] for h in hits["points"]] == [ids[i] for i in best]
    page = await call(peers[0], "POST", "/collections/c/points/scroll", {"limit": 100})
    assert [r["id"] for r in page["points"]] == sorted(ids[1::2]) + sorted(ids[0::2])
    await call(peers[2], "POST", "/collections/c/points/delete?wait=true",
               {"filter": {"must": [{"key": "g", "match": {"value": 1}}]}})  # fmt: skip
    assert (await call(peers[1], "POST", "/collections/c/points/count", {}))["count"] == 40


async def test_a_recreated_collection_starts_empty(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Deleting a collection drops its shards; a new one of the same name is a new incarnation."""
    peers = await three(sim)
    create = {"vectors": {"size": DIM, "distance": "Cosine"}, "shard_number": 3}
    await call(peers[0], "PUT", "/collections/c", create)
    point = {"points": [{"id": 1, "vector": [1.0, 0.0, 0.0, 0.0]}]}
    await call(peers[0], "PUT", "/collections/c/points?wait=true", point)
    assert await call(peers[1], "DELETE", "/collections/c") is True
    assert await call(peers[1], "DELETE", "/collections/c") is False
    await trio.sleep(1.0)  # let every peer apply the delete before re-creating (virtual time)
    await call(peers[2], "PUT", "/collections/c", create)
    assert (await call(peers[0], "POST", "/collections/c/points/count", {}))["count"] == 0
    assert await call(peers[0], "POST", "/collections/c/points", {"ids": [1]}) == []


async def test_oversized_and_malformed_bodies_are_4xx(
    sim: SimCluster, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body over the limit is refused with 413, bad JSON with 400, before any shard sees it."""
    import refimpl.api.data

    first = await sim.start_first()
    await sim.wait_until(lambda: sim.leader() is not None)
    await call(first, "PUT", "/collections/c", {"vectors": {"size": DIM, "distance": "Dot"}})
    monkeypatch.setattr(refimpl.api.data, "BODY_BYTES_MAX", 1000)
    points = {"points": [{"id": i, "vector": [0.0] * DIM} for i in range(100)]}
    async with http(first) as client:
        big = await client.put("/collections/c/points", json=points)
        bad = await client.put("/collections/c/points", content=b'{"points": [')
        wait = await client.put("/collections/c/points?wait=yes", json={"points": []})
    assert big.status_code == 413 and "over 1000" in big.json()["status"]["error"]
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["status"]["error"]
    assert wait.status_code == 400 and "`wait`" in wait.json()["status"]["error"]
    assert (await call(first, "POST", "/collections/c/points/count", {}))["count"] == 0

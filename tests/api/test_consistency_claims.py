"""Spec "Consistency guarantees": read-after-write with wcf = rf, no ordering across peers, and
the read ``consistency`` parameter over REST (accepted values, 400 for the rest, a clean 503
when too few replicas can answer)."""

from collections.abc import AsyncIterator

import numpy as np
import pytest
import trio
import trio.testing

from refimpl.ids import ShardId
from refimpl.index import Distance
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.points import parse_upsert
from refimpl.replication import ReplicaState
from refimpl.storage import ShardConfig, ShardStore
from tests.api.test_data_api import call, http, three


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=23, with_data=True)
        nursery.cancel_scope.cancel()


async def test_sequential_write_then_read_through_other_peers_sees_the_write(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """With write_consistency_factor == replication_factor, every read after an acknowledged
    write, through any peer, returns that write."""
    peers = await three(sim)
    await call(peers[0], "PUT", "/collections/c",
               {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 2,
                "replication_factor": 3, "write_consistency_factor": 3})  # fmt: skip
    for i in range(30):
        writer, reader = peers[i % 3], peers[(i + 1) % 3]
        await call(writer, "PUT", "/collections/c/points?wait=true",
                   {"points": [{"id": 7, "vector": [float(i), 1.0]}]})  # fmt: skip
        got = await call(reader, "POST", "/collections/c/points",
                         {"ids": [7], "with_vector": True})  # fmt: skip
        assert got[0]["vector"][0] == float(i)


def test_replicas_apply_updates_in_arrival_order_so_concurrent_writes_can_diverge() -> None:
    """Two updates of one point reaching two replicas in opposite orders leave them different:
    nothing orders point operations across peers."""
    config = ShardConfig(dim=2, distance=Distance.DOT)
    first = parse_upsert({"points": [{"id": 7, "vector": [1.0, 0.0]}]}, 2)
    second = parse_upsert({"points": [{"id": 7, "vector": [0.0, 1.0]}]}, 2)
    replica_a, replica_b = ShardStore.in_memory(config), ShardStore.in_memory(config)
    for op in (first, second):
        replica_a.apply(op, wait=True)
    for op in (second, first):
        replica_b.apply(op, wait=True)
    a, b = replica_a.vector_of(7), replica_b.vector_of(7)
    assert a is not None and b is not None
    assert np.array_equal(a, [0.0, 1.0]) and np.array_equal(b, [1.0, 0.0])


READS = [
    ("POST", "/collections/c/points", {"ids": [1, 2]}),
    ("POST", "/collections/c/points/scroll", {"limit": 5}),
    ("POST", "/collections/c/points/count", {"exact": True}),
    ("POST", "/collections/c/points/query", {"query": [1.0, 0.0], "limit": 3}),
    ("POST", "/collections/c/points/query/batch", {"searches": [{"query": [1.0, 0.0]}]}),
    ("POST", "/collections/c/points/search", {"vector": [1.0, 0.0], "limit": 3}),
]


async def _three_replicas(sim: SimCluster, wcf: int) -> list[SimPeer]:
    peers = await three(sim)
    await call(peers[0], "PUT", "/collections/c",
               {"vectors": {"size": 2, "distance": "Dot"}, "shard_number": 1,
                "replication_factor": 3, "write_consistency_factor": wcf})  # fmt: skip
    points = [{"id": i, "vector": [float(i), 1.0]} for i in range(1, 6)]
    await call(peers[0], "PUT", "/collections/c/points?wait=true", {"points": points})
    return peers


@pytest.mark.parametrize("value", ["0", "-1", "most", "1.5", "", "majority,all", "ALL x"])
async def test_a_bad_consistency_is_a_400_saying_what_is_accepted(
    value: str, sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Every read refuses a ``consistency`` that is neither a positive integer nor a level."""
    peers = await _three_replicas(sim, wcf=1)
    async with http(peers[1]) as client:
        for method, path, body in READS:
            response = await client.request(method, path, params={"consistency": value},
                                            json=body)  # fmt: skip
            assert response.status_code == 400, (path, response.text)
            error = response.json()["status"]["error"]
            assert "`consistency` must be a positive integer, majority, quorum or all" in error


async def test_every_level_is_accepted_on_every_read(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Integers (larger than the replica count too: clamped) and the three levels, as
    qdrant-client sends them, answer the same points on a healthy cluster."""
    peers = await _three_replicas(sim, wcf=3)
    async with http(peers[2]) as client:
        for method, path, body in READS:
            answers = []
            for value in ("1", "2", "7", "majority", "quorum", "all"):
                response = await client.request(method, path, params={"consistency": value},
                                                json=body)  # fmt: skip
                assert response.status_code == 200, (path, value, response.text)
                answers.append(response.json()["result"])
            assert all(a == answers[0] for a in answers), (path, answers)


async def test_all_fails_with_a_retryable_503_while_a_replica_is_dead_and_1_answers(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """A killed peer's replica is marked Dead by the next write (wcf = 1). Then ``all`` (and
    ``majority``, which asks every replica, as Qdrant's code does) cannot be served: a 503 in
    Qdrant's envelope with Retry-After, naming the shard and the replicas; consistency 1 and
    ``quorum`` (2 of 3) still answer."""
    peers = await _three_replicas(sim, wcf=1)
    sim.kill(peers[2])
    await call(peers[0], "PUT", "/collections/c/points?wait=true",
               {"points": [{"id": 9, "vector": [9.0, 1.0]}]})  # fmt: skip

    def dead_seen_by_reader() -> bool:
        assert peers[1].plane is not None
        replicas = peers[1].plane.collections.view.cluster.collections["c"].replicas[ShardId(0)]
        return replicas[peers[2].peer_id] is ReplicaState.Dead

    await sim.wait_until(dead_seen_by_reader)  # committed before the ack; applied here soon
    async with http(peers[1]) as client:
        for value in ("all", "majority", "3"):
            response = await client.post("/collections/c/points", params={"consistency": value},
                                         json={"ids": [9]})  # fmt: skip
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "1"
            error = response.json()["status"]["error"]
            assert "shard 0 of `c` does not have enough active replicas" in error, error
            assert f"{peers[2].peer_id}: {ReplicaState.Dead.value}" in error, error
        for value in ("1", "2", "quorum"):
            response = await client.post("/collections/c/points", params={"consistency": value},
                                         json={"ids": [9]})  # fmt: skip
            assert response.status_code == 200, response.text
            assert [p["id"] for p in response.json()["result"]] == [9]

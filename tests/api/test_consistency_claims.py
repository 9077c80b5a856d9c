"""Spec "Consistency guarantees": read-after-write with wcf = rf, and no ordering across peers."""

from collections.abc import AsyncIterator

import numpy as np
import pytest
import trio
import trio.testing

from refimpl.index import Distance
from refimpl.peer.harness import SimCluster
from refimpl.points import parse_upsert
from refimpl.storage import ShardConfig, ShardStore
from tests.api.test_data_api import call, three


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

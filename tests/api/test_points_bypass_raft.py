"""Spec "Raft": operations with points do not go through the consensus infrastructure."""

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from refimpl.peer.harness import SimCluster
from tests.api.test_data_api import call, three


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=11, with_data=True)
        nursery.cancel_scope.cancel()


async def test_point_writes_add_nothing_to_the_raft_log(
    sim: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Creating a collection commits Raft entries; upserting and deleting points commits none."""
    peers = await three(sim)
    before_create = max(p.node.commit_index for p in sim.running())
    await call(peers[0], "PUT", "/collections/c", {"vectors": {"size": 2, "distance": "Dot"}})
    await trio.sleep(1.0)  # let activations settle: they are consensus operations too
    after_create = max(p.node.commit_index for p in sim.running())
    assert after_create > before_create
    points = [{"id": i, "vector": [float(i), 1.0]} for i in range(50)]
    await call(peers[1], "PUT", "/collections/c/points?wait=true", {"points": points})
    await call(peers[2], "POST", "/collections/c/points/delete?wait=true", {"points": [1, 2, 3]})
    await trio.sleep(1.0)
    assert max(p.node.commit_index for p in sim.running()) == after_create
    assert (await call(peers[0], "POST", "/collections/c/points/count", {}))["count"] == 47

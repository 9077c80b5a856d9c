"""Shared pieces of the peer-simulation tests (tests/peer/test_sim_*.py, tests/api/).

The seeds a simulated scenario runs over (:func:`seeds`: a few by default, as many as
``REFIMPL_SIM_SEEDS`` says in a soak); for the simulations with data
(``SimCluster(with_data=True)``): shard files on disk (:func:`disk_shards`, a fixture the test
modules import), the same deterministic points, three started peers, and views into one peer's
copy of a collection (replica states, the local store and its content) and its router.
"""

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from refimpl.ids import PeerId, ShardId
from refimpl.peer import harness
from refimpl.peer.data_plane import attach_shards
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.peer.router import Router
from refimpl.peer.shards import LocalShards
from refimpl.points import ALL_PAYLOAD, ScrollRequest
from refimpl.replication import ReplicaState
from refimpl.storage import ShardStore

__all__ = [
    "DIM",
    "disk_shards",
    "peer_by_id",
    "points_body",
    "replica_states",
    "router_of",
    "seeds",
    "shard_content",
    "shard_store",
    "three_peers",
    "three_voters",
    "watch_states",
]

DIM = 4
S0 = ShardId(0)
SEEDS_ENV = "REFIMPL_SIM_SEEDS"
SEEDS_ENV_OLD = "REFIMPL_GROUP_G_SEEDS"  # its first name, when only group G read it


def seeds(default: int | Sequence[int]) -> Sequence[int]:
    """The seeds one simulated scenario runs over: ``default`` (a count, from seed 0, or the
    seeds the test was written with), or the first N seeds when ``REFIMPL_SIM_SEEDS=N`` is
    set (``make soak`` sets 40; ``REFIMPL_GROUP_G_SEEDS`` is an older name for it)."""
    soak = os.environ.get(SEEDS_ENV) or os.environ.get(SEEDS_ENV_OLD)
    if soak:
        return range(int(soak))
    return range(default) if isinstance(default, int) else list(default)


@pytest.fixture
def disk_shards(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Give every simulated peer shard directories under ``tmp_path``: they survive a crash
    of the peer (the harness cancels it), as on a real disk, and so does what a snapshot
    writes next to them."""
    made: list[LocalShards] = []

    def on_disk(peer_id: PeerId, machine: Any, root: Any, *, threaded: bool = True) -> Any:
        shards = attach_shards(peer_id, machine, tmp_path / str(peer_id), threaded=threaded)
        made.append(shards)
        return shards

    monkeypatch.setattr(harness, "attach_shards", on_disk)
    yield
    for shards in made:  # a crashed peer's files stay open until the test ends
        shards.close()


def points_body(ids: Iterable[int]) -> dict[str, Any]:
    """An upsert body: point ``i`` has a vector drawn from seed ``i`` and payload ``{"n": i}``."""
    out = []
    for i in ids:
        vector = np.random.default_rng(i).normal(size=DIM).round(3).tolist()
        out.append({"id": i, "vector": vector, "payload": {"n": i}})
    return {"points": out}


async def three_peers(nursery: trio.Nursery, seed: int) -> tuple[SimCluster, SimPeer]:
    """A simulated cluster of three peers with data planes, the first one founding it and the
    other two joining through it; returned once every running peer knows all three."""
    sim = SimCluster(nursery, seed=seed, with_data=True)
    first = await sim.start_first()
    await sim.wait_until(lambda: sim.leader() is not None)
    await sim.join(first)
    await sim.join(first)
    await sim.wait_until(lambda: all(len(p.state.peers()) == 3 for p in sim.running()))
    return sim, first


async def three_voters(sim: SimCluster) -> list[SimPeer]:
    """Three peers started on ``sim`` (the first founds the cluster, two join through it),
    returned once each of them counts three voters and knows three peers."""
    first = await sim.start_first()
    await sim.wait_until(lambda: sim.leader() is not None)
    await sim.join(first)
    await sim.join(first)
    await sim.wait_until(
        lambda: (
            len(sim.running()) == 3
            and all(len(p.node.membership.voters) == 3 for p in sim.running())
            and all(len(p.state.peers()) == 3 for p in sim.running())
        )
    )
    return sim.peers


def replica_states(p: SimPeer, name: str, shard: ShardId = S0) -> dict[PeerId, ReplicaState]:
    """The replicas of ``shard`` as ``p`` has applied them (empty before the collection)."""
    assert p.plane is not None
    coll = p.plane.collections.view.cluster.collections.get(name)
    return {} if coll is None else dict(coll.replicas[shard])


def shard_store(p: SimPeer, name: str, shard: ShardId = S0) -> ShardStore:
    """``p``'s local store of ``shard``."""
    assert p.plane is not None
    local = p.plane.shards.get(name, shard)
    assert local is not None and local.store is not None
    return local.store


def shard_content(
    p: SimPeer, name: str, shard: ShardId = S0
) -> dict[Any, tuple[tuple[float, ...], Any]]:
    """Every point of ``p``'s replica: id -> (vector rounded to 3 places, payload)."""
    request = ScrollRequest(limit=1_000_000, with_payload=ALL_PAYLOAD, with_vector=True)
    page = shard_store(p, name, shard).scroll(request)
    return {r.id: (tuple(round(x, 3) for x in r.vector or ()), r.payload) for r in page.points}


def peer_by_id(peers: list[SimPeer], peer_id: PeerId) -> SimPeer:
    """The simulated peer with this id."""
    return next(p for p in peers if p.peer_id == peer_id)


def router_of(p: SimPeer) -> Router:
    """``p``'s router (points in and out through the whole cluster)."""
    assert p.plane is not None
    return p.plane.router


def watch_states(nursery: trio.Nursery, of: SimPeer, seen_by: SimPeer, name: str) -> list[Any]:
    """The distinct successive states of ``of``'s replica of shard 0 of ``name``, as
    ``seen_by`` applies them (filled in the background)."""
    seen: list[Any] = []

    async def watch() -> None:
        while True:
            state = replica_states(seen_by, name).get(of.peer_id)
            if not seen or seen[-1] is not state:
                seen.append(state)
            await trio.sleep(0.002)

    nursery.start_soon(watch)
    return seen

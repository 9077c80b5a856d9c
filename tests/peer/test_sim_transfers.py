"""Shard transfers and Dead-replica recovery in the peer simulation (virtual time, many seeds).

Spec "Cluster scaling" and "Node Failure Recovery"; raft-scenarios group G: a shard moved while
writes keep arriving loses no acknowledged write, and a replica that missed writes while its
peer was down is marked Dead and comes back Active with every point.
"""

from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from refimpl.consensus import AbortTransfer, ShardTransfer, StartTransfer, encode_operation
from refimpl.ids import ShardId
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.peer.router import ShardUnavailableError
from refimpl.replication import ReplicaState
from tests.peer._sim import (
    peer_by_id,
    replica_states,
    seeds,
    shard_store,
    three_voters,
    watch_states,
)

DIM = 4
NAME = "c"


def _points(lo: int, hi: int) -> dict[str, Any]:
    rng = np.random.default_rng(lo)
    return {"points": [{"id": i, "vector": rng.normal(size=DIM).tolist(), "payload": {"n": i}}
                       for i in range(lo, hi)]}  # fmt: skip


async def _setup(nursery: trio.Nursery, seed: int, rf: int) -> tuple[SimCluster, list[SimPeer]]:
    sim = SimCluster(nursery, seed=seed, with_data=True)
    peers = await three_voters(sim)
    plane = peers[0].plane
    assert plane is not None
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1,
            "replication_factor": rf}  # fmt: skip
    await plane.collections.create(NAME, body, 10)
    await sim.wait_until(
        lambda: set(replica_states(peers[0], NAME).values()) == {ReplicaState.Active}
    )
    await plane.router.upsert(NAME, _points(0, 300), wait=True)
    return sim, peers


@pytest.mark.parametrize("seed", seeds(6))
async def test_move_under_writes_keeps_every_acknowledged_point(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """A move proposed while three coordinators keep upserting: afterwards the target alone
    holds the shard, with exactly the acknowledged points (spec "Cluster scaling")."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _setup(nursery, seed, rf=1)
        (source,) = replica_states(peers[0], NAME)
        target = next(p.peer_id for p in peers if p.peer_id != source)
        acked: list[int] = []
        refused: list[int] = []
        done = trio.Event()

        async def writer(coordinator: SimPeer, base: int) -> None:
            assert coordinator.plane is not None
            n = base
            while not done.is_set():
                try:
                    await coordinator.plane.router.upsert(NAME, _points(n, n + 3), wait=True)
                except ShardUnavailableError:
                    # Not acknowledged (e.g. this coordinator still routes to a replica that the
                    # switch just dropped); the client would retry. Only acks are promised.
                    refused.append(n)
                else:
                    acked.extend(range(n, n + 3))
                n += 3
                await trio.sleep(0.01)

        async with trio.open_nursery() as writers:
            for i, p in enumerate(peers):
                writers.start_soon(writer, p, 10_000 * (i + 1))
            await trio.sleep(0.1)
            move = StartTransfer(NAME, ShardTransfer(ShardId(0), source, target, sync=False))
            assert await peers[1].peer.propose(encode_operation(move)) is True  # type: ignore[union-attr]
            await sim.wait_until(
                lambda: replica_states(peers[0], NAME) == {target: ReplicaState.Active}
            )
            await trio.sleep(0.2)
            done.set()
        await sim.wait_until(
            lambda: all(replica_states(p, NAME) == {target: ReplicaState.Active} for p in peers)
        )
        stored = set(shard_store(peer_by_id(peers, target), NAME).matching_ids(None))
        # No write is refused around the switch any more: a coordinator whose write met the
        # replica set changing under it sends it again to the fresh replicas (router), and a
        # replica dropped by the switch refuses late updates instead of swallowing them
        # (shards). So the target holds exactly the 300 first points and every acknowledged
        # write. (How many writes a seed manages depends on the machine's load: the router
        # checks a batch in a worker thread, and virtual time may jump while it runs.)
        assert refused == []
        assert stored == set(range(300)) | set(acked)
        assert acked
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(6))
async def test_a_replica_that_missed_writes_recovers_dead_partial_active(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """Kill a replica's peer (its in-memory shard is lost), write: it is marked Dead before the
    write is acknowledged; restarted, it pulls a ``wal_delta`` transfer (as Qdrant prefers)
    and ends Active with every point, having passed through Recovery (the delta is applied)
    and Partial (coordinators write to it too) (facts §4.2, §4.4)."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _setup(nursery, seed, rf=2)
        holders = sorted(replica_states(peers[0], NAME))
        victim = peer_by_id(peers, holders[0])
        coordinator = next(p for p in peers if p is not victim)
        assert coordinator.plane is not None
        sim.kill(victim)
        await coordinator.plane.router.upsert(NAME, _points(300, 400), wait=True)
        assert replica_states(coordinator, NAME)[victim.peer_id] is ReplicaState.Dead
        seen = watch_states(nursery, victim, coordinator, NAME)
        await sim.restart(victim)
        await sim.wait_until(
            lambda: (
                victim.plane is not None
                and replica_states(victim, NAME).get(victim.peer_id) is ReplicaState.Active
                and replica_states(coordinator, NAME)[victim.peer_id] is ReplicaState.Active
            )
        )
        await trio.sleep(0.01)  # the watcher polls every 2 ms
        assert len(shard_store(victim, NAME)) == 400
        assert seen == [
            ReplicaState.Dead, ReplicaState.Recovery, ReplicaState.Partial, ReplicaState.Active
        ]  # fmt: skip
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(3))
async def test_a_move_to_a_dead_target_is_aborted_and_the_source_keeps_the_shard(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """The target dies right after the move starts: the source's attempts fail, it proposes
    the abort, the moving target replica is removed and the source stays Active with every
    point (facts §6.2: up to 3 attempts, then abort)."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _setup(nursery, seed, rf=1)
        (source,) = replica_states(peers[0], NAME)
        target = peer_by_id(peers, next(p.peer_id for p in peers if p.peer_id != source))
        watcher = next(p for p in peers if p is not target)
        assert watcher.peer is not None
        move = StartTransfer(NAME, ShardTransfer(ShardId(0), source, target.peer_id, sync=False))
        sim.kill(target)
        await sim.wait_until(lambda: sim.leader() is not None)  # it may have been the leader
        assert await watcher.peer.propose(encode_operation(move)) is True
        assert replica_states(watcher, NAME)[target.peer_id] is ReplicaState.Partial
        waited = await sim.wait_until(
            lambda: replica_states(watcher, NAME) == {source: ReplicaState.Active}, timeout_s=120
        )
        assert waited >= 1.0 + 2.0, "three attempts, 1 s x attempt apart, before the abort"
        assert len(shard_store(peer_by_id(peers, source), NAME)) == 300
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([11]))
async def test_a_user_abort_of_a_replication_leaves_the_target_dead_then_it_recovers(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """``abort_transfer`` of a replication makes the target Dead (facts §6.2 step 7); the
    target's peer then recovers it by itself (facts §4.4)."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _setup(nursery, seed, rf=1)
        (source,) = replica_states(peers[0], NAME)
        target = next(p.peer_id for p in peers if p.peer_id != source)
        peer = peers[0].peer
        assert peer is not None
        t = ShardTransfer(ShardId(0), source, target, sync=True)
        assert await peer.propose(encode_operation(StartTransfer(NAME, t))) is True
        abort = AbortTransfer(NAME, ShardId(0), source, target, "user request")
        assert await peer.propose(encode_operation(abort)) is True
        assert replica_states(peers[0], NAME)[target] is ReplicaState.Dead
        await sim.wait_until(
            lambda: (
                replica_states(peers[0], NAME)
                == {source: ReplicaState.Active, target: ReplicaState.Active}
            )
        )
        assert len(shard_store(peer_by_id(peers, target), NAME)) == 300
        nursery.cancel_scope.cancel()

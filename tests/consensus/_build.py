"""Helpers shared by the consensus tests: build small cluster states by applying operations."""

from refimpl.consensus import (
    AddPeer,
    Applied,
    ApplyResult,
    ClusterState,
    CollectionConfig,
    CreateCollection,
    Distance,
    Operation,
    SetReplicaState,
    VectorParams,
    apply,
    plan_placement,
)
from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaEvent, ReplicaState


def must(state: ClusterState, op: Operation) -> ClusterState:
    """Apply ``op`` and fail the test unless it applied."""
    new, result = apply(state, op)
    assert isinstance(result, Applied), result
    return new


def run(state: ClusterState, op: Operation) -> tuple[ClusterState, ApplyResult]:
    return apply(state, op)


def config(shards: int = 2, rf: int = 2, wcf: int = 1) -> CollectionConfig:
    return CollectionConfig(
        vectors=VectorParams(4, Distance.Cosine),
        shard_number=shards,
        replication_factor=rf,
        write_consistency_factor=wcf,
    )


def cluster(peers: int = 3, shards: int = 2, rf: int = 2, activate: bool = True) -> ClusterState:
    """``peers`` peers and a collection ``c`` placed by plan_placement, replicas Active."""
    state = ClusterState()
    for p in range(1, peers + 1):
        state = must(state, AddPeer(PeerId(p), f"http://peer{p}:6335"))
    placement = plan_placement(sorted(state.peers), shards, rf)
    state = must(state, CreateCollection("c", config(shards, rf), placement))
    if activate:
        for shard, hosts in enumerate(placement):
            for peer in hosts:
                state = must(
                    state, SetReplicaState("c", ShardId(shard), peer, ReplicaEvent.ACTIVATED)
                )
    return state


def replicas(state: ClusterState, shard: int = 0) -> dict[PeerId, ReplicaState]:
    return dict(state.collections["c"].replicas[ShardId(shard)])

"""Shard placement: which peers host the replicas of each shard of a new collection.

Rules (spec "Sharding": during the creation of the collection, shards are evenly distributed
across all existing nodes; spec "Replication": replicas are spread among the cluster):

* each shard gets ``min(replication_factor, peers)`` replicas, never two on the same peer;
* across the new collection, the number of replicas per peer differs by at most one;
* the answer is a pure function of its inputs, computed by the proposing peer *before* it
  proposes ``CreateCollection``, so the placement travels in the Raft entry and every peer
  applies exactly the same one (as Qdrant does).

Theory of operation: lay the ``shard_number x k`` replica slots in a row (shard 0's replicas,
then shard 1's, ...) and deal them round-robin over the peers, least loaded first. Round-robin
gives the even spread; since ``k`` consecutive slots of a shard are ``k <= peers`` consecutive
positions modulo the peer count, they always land on distinct peers.
"""

from collections.abc import Mapping, Sequence

from refimpl.ids import PeerId


class PlacementError(ValueError):
    """A placement cannot be computed from these inputs."""


def plan_placement(
    peers: Sequence[PeerId],
    shard_number: int,
    replication_factor: int,
    load: Mapping[PeerId, int] | None = None,
) -> tuple[tuple[PeerId, ...], ...]:
    """Return, for each shard ``0..shard_number-1``, the peers that host its replicas.

    ``load`` (replicas a peer already hosts) makes less loaded peers come first in the deal.
    """
    if not peers:
        raise PlacementError("cannot place shards: the cluster has no peers")
    if shard_number < 1 or replication_factor < 1:
        raise PlacementError(
            f"shard_number and replication_factor must be at least 1, "
            f"got {shard_number} and {replication_factor}"
        )
    load = load or {}
    order = sorted(set(peers), key=lambda p: (load.get(p, 0), p))
    per_shard = min(replication_factor, len(order))
    placement = tuple(
        tuple(order[(shard * per_shard + r) % len(order)] for r in range(per_shard))
        for shard in range(shard_number)
    )
    assert all(len(set(replicas)) == per_shard for replicas in placement)
    return placement


__all__ = ["PlacementError", "plan_placement"]

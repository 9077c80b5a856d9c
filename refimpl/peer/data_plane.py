"""The data plane of one peer: its local shards, the points router and the collections service,
wired to the peer's consensus.

Rules:

* Build it *before* the :class:`refimpl.peer.node.Peer`: :func:`attach_shards` makes the local
  shards follow every change of the cluster state from the very first applied entry (or the
  snapshot the peer loads at start), so a restarted peer reopens every shard it holds.
* :meth:`DataPlane.run` must run in the peer's nursery: it proposes the activation of new
  replicas and finishes deferred shard deletions.
* The two shard request kinds of the p2p protocol (``shard_update``, ``shard_read``) are
  answered by the router; ``shard_update`` and ``transfer_init`` pass through the shard
  transfers first (:mod:`refimpl.peer.transfers`), which forward updates during a transfer.

Theory of operation: plain wiring, shared by the process runner and the peer simulation.
"""

from dataclasses import dataclass
from pathlib import Path

import trio

from refimpl.ids import PeerId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.collections import Collections
from refimpl.peer.node import Peer
from refimpl.peer.router import Router
from refimpl.peer.shards import LocalShards
from refimpl.peer.transfers import ShardTransfers

__all__ = ["DataPlane", "attach_shards"]


def attach_shards(
    peer_id: PeerId, machine: ClusterStateMachine, root: Path | None, *, threaded: bool = True
) -> LocalShards:
    """Local shards (under ``root``, or in memory) that follow ``machine``'s state;
    ``threaded=False`` runs shard calls inline (the simulation in virtual time)."""
    shards = LocalShards(peer_id, root, threaded=threaded)
    machine.listeners.append(lambda: shards.reconcile(machine))
    shards.reconcile(machine)
    return shards


@dataclass(slots=True)
class DataPlane:
    """Shards, router and collections of one peer."""

    peer: Peer
    shards: LocalShards
    router: Router
    collections: Collections
    transfers: ShardTransfers

    @classmethod
    def build(cls, peer: Peer, machine: ClusterStateMachine, shards: LocalShards) -> "DataPlane":
        """Wire the router and collections to ``peer`` and register the shard requests."""
        router = Router(peer, machine, shards)
        collections = Collections(peer, machine, shards, router)
        peer.request_handlers["shard_update"] = router.handle_request
        peer.request_handlers["shard_read"] = router.handle_request
        transfers = ShardTransfers(peer, machine, shards, router.handle_request)
        router.after_local_update = transfers.forward
        return cls(peer, shards, router, collections, transfers)

    async def run(self) -> None:
        """Background work: replica activation, deferred shard deletion, shard transfers and
        the recovery of Dead replicas."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.transfers.run)
            await self.shards.run_activator(self.peer.propose)

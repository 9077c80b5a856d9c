"""Peer-level simulation: several full peers in one trio process over a :class:`MemoryNetwork`.

Rules:

* Each simulated peer is the real :class:`refimpl.peer.node.Peer` with a
  :class:`refimpl.raft.MemoryStorage` (which survives :meth:`SimCluster.kill`, as a disk
  survives a crash) and the minimal cluster state.
* Joining follows the real protocol: a ``join`` request to the bootstrap peer, retried while
  the cluster has no leader; a joiner without a URI gets one derived from its address.
* Killing a peer cancels its task and takes it off the network; restarting builds a new Peer
  on the same storage and re-applies the committed log, as a restarted process does.
* Peer ids, election timeouts and network faults come from the seeded generator; trio's
  scheduling order does not (see :mod:`refimpl.peer.memnet`), so runs agree in outcome, not in
  every millisecond.

Theory of operation: run inside ``trio.run(..., clock=MockClock(autojump_threshold=0))``;
:meth:`SimCluster.wait_until` polls a predicate every tick of virtual time.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from refimpl.ids import PeerId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.data_plane import DataPlane, attach_shards
from refimpl.peer.identity import new_peer_id
from refimpl.peer.memnet import MemoryNetwork
from refimpl.peer.node import Peer, PeerOptions
from refimpl.peer.state import StateMachine
from refimpl.peer.transport import TransportError
from refimpl.raft import Membership, MemoryStorage, Role

__all__ = ["SimCluster", "SimPeer"]

P2P_PORT = 6335


@dataclass(slots=True)
class SimPeer:
    """One simulated peer: its identity and storage, and its running Peer (if up)."""

    index: int
    peer_id: PeerId
    address: str
    uri: str | None
    storage: MemoryStorage
    known_peers: dict[PeerId, str] = field(default_factory=dict)
    peer: Peer | None = None
    scope: trio.CancelScope | None = None
    plane: DataPlane | None = None
    """Collections and points, when the cluster was built ``with_data``."""

    @property
    def up(self) -> bool:
        """True while the peer runs and takes part in consensus."""
        return self.peer is not None and not self.peer.stopped


class SimCluster:
    """Start, join, kill, restart and partition simulated peers."""

    def __init__(
        self,
        nursery: trio.Nursery,
        seed: int,
        tick_period_s: float = 0.1,
        state_factory: Callable[[], StateMachine] = ClusterStateMachine,
        *,
        with_data: bool = False,
    ) -> None:
        self._nursery = nursery
        self._state_factory = state_factory
        self.with_data = with_data
        """Give each peer a data plane (in-memory shards, lost when the peer is killed)."""
        self.rng = random.Random(seed)
        self.network = MemoryNetwork(nursery, random.Random(self.rng.random()))
        self.tick_period_s = tick_period_s
        self.peers: list[SimPeer] = []
        self.compact_log_entries = 128

    def _new_slot(self, with_uri: bool, address: str | None = None) -> SimPeer:
        i = len(self.peers)
        address = address or f"http://10.0.0.{i + 1}:{P2P_PORT}/"
        sim = SimPeer(
            i, new_peer_id(self.rng), address, address if with_uri else None, MemoryStorage()
        )
        self.peers.append(sim)
        return sim

    async def _launch(self, sim: SimPeer) -> None:
        transport = self.network.endpoint(sim.address)
        options = PeerOptions(
            sim.peer_id,
            sim.uri,
            self.tick_period_s,
            request_timeout_s=5.0,
            compact_log_entries=self.compact_log_entries,
        )
        rng = random.Random(self.rng.random())
        state = self._state_factory()
        shards = None
        if self.with_data:
            assert isinstance(state, ClusterStateMachine), "a data plane needs the full state"
            shards = attach_shards(sim.peer_id, state, None, threaded=False)
        peer = Peer(options, sim.storage, state, transport, rng, known_peers=sim.known_peers)
        if shards is not None:
            assert isinstance(state, ClusterStateMachine)
            sim.plane = DataPlane.build(peer, state, shards)
        peer.on_peers_changed = sim.known_peers.update
        sim.peer = peer
        scope = trio.CancelScope()
        sim.scope = scope
        self.network.register(sim.address, peer)

        plane = sim.plane

        async def run_peer(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                if plane is None:
                    await peer.run(task_status=task_status)
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(plane.run)
                    await peer.run(task_status=task_status)
                    nursery.cancel_scope.cancel()  # the peer left the cluster

        await self._nursery.start(run_peer)

    async def start_first(self) -> SimPeer:
        """Start the first peer of a new cluster (a single voter)."""
        sim = self._new_slot(with_uri=True)
        sim.storage = MemoryStorage.bootstrap(Membership(frozenset({sim.peer_id})))
        await self._launch(sim)
        return sim

    async def join(
        self,
        via: SimPeer,
        with_uri: bool = True,
        timeout_s: float = 30.0,
        address: str | None = None,
    ) -> SimPeer:
        """Start a new peer and join it through ``via``; return once the join was accepted.

        ``address`` reuses a network address (a machine that came back with wiped storage).
        """
        sim = self._new_slot(with_uri, address)
        transport = self.network.endpoint(sim.address)
        body = {"kind": "join", "peer_id": sim.peer_id, "uri": sim.uri, "port": P2P_PORT}
        with trio.fail_after(timeout_s):
            while True:
                try:
                    answer = await transport.request(via.address, body, timeout_s=5.0)
                except TransportError:
                    answer = {"ok": False, "retryable": True}
                if answer.get("ok") is True:
                    break
                await trio.sleep(self.tick_period_s * 2)
        sim.uri = str(answer["uri"])
        sim.known_peers = {PeerId(int(k)): str(v) for k, v in dict(answer["peers"]).items()}
        await self._launch(sim)
        return sim

    def kill(self, sim: SimPeer) -> None:
        """Crash ``sim``: its task is cancelled, its storage stays."""
        assert sim.scope is not None
        sim.scope.cancel()
        self.network.unregister(sim.address)
        sim.peer = None

    async def restart(self, sim: SimPeer) -> None:
        """Start ``sim`` again from its storage."""
        assert sim.peer is None, "restart a killed peer only"
        await self._launch(sim)

    def running(self) -> list[Peer]:
        """The peers that are up."""
        return [s.peer for s in self.peers if s.peer is not None and not s.peer.stopped]

    def leader(self) -> Peer | None:
        """The one peer that is leader with every running peer agreeing, if any."""
        peers = self.running()
        leaders = [p for p in peers if p.node.role == Role.LEADER]
        if len(leaders) != 1:
            return None
        if any(p.node.leader_id != leaders[0].id for p in peers):
            return None
        return leaders[0]

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 60.0) -> float:
        """Wait (virtual time) until ``predicate()``; return the time it took."""
        start = trio.current_time()
        with trio.fail_after(timeout_s):
            while not predicate():
                await trio.sleep(self.tick_period_s)
        return trio.current_time() - start

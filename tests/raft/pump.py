"""A tiny in-test message pump for driving RaftNodes by hand (the full simulator lives in
refimpl.sim). It follows the driver loop of refimpl.raft.core: persist, then send, then apply."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import (
    Entry,
    EntryKind,
    Membership,
    MemoryStorage,
    Message,
    RaftConfig,
    RaftNode,
    ReadState,
    Role,
    Snapshot,
)


def peer_ids(n: int) -> list[PeerId]:
    return [PeerId(i) for i in range(1, n + 1)]


@dataclass
class Pump:
    """Nodes, their storages, a FIFO network with link cuts, and what each node applied."""

    nodes: dict[PeerId, RaftNode]
    storages: dict[PeerId, MemoryStorage]
    inflight: list[Message] = field(default_factory=list)
    cut: set[tuple[PeerId, PeerId]] = field(default_factory=set)
    down: set[PeerId] = field(default_factory=set)
    applied: dict[PeerId, list[Entry]] = field(default_factory=dict)
    read_states: dict[PeerId, list[ReadState]] = field(default_factory=dict)
    snapshots: dict[PeerId, list[Snapshot]] = field(default_factory=dict)
    delivered: list[Message] = field(default_factory=list)
    drop: Callable[[Message], bool] = lambda _m: False

    @classmethod
    def create(
        cls, n: int, seed: int = 1, learners: Iterable[PeerId] = (), **options: object
    ) -> Pump:
        ids = peer_ids(n)
        learner_set = frozenset(learners)
        membership = Membership(frozenset(ids) - learner_set, learner_set)
        pump = cls({}, {})
        for pid in ids:
            pump.add_node(pid, MemoryStorage.bootstrap(membership), seed, **options)
        return pump

    def add_node(
        self, pid: PeerId, storage: MemoryStorage, seed: int = 1, **options: object
    ) -> RaftNode:
        config = RaftConfig(id=pid, **options)  # type: ignore[arg-type]
        node = RaftNode(config, storage, random.Random(seed * 1000 + pid))
        self.nodes[pid] = node
        self.storages[pid] = storage
        self.applied.setdefault(pid, [])
        self.read_states.setdefault(pid, [])
        self.snapshots.setdefault(pid, [])
        return node

    def isolate(self, pid: PeerId) -> None:
        for other in self.nodes:
            if other != pid:
                self.cut |= {(pid, other), (other, pid)}

    def heal(self) -> None:
        self.cut.clear()

    def handle_ready(self, pid: PeerId) -> None:
        node, storage = self.nodes[pid], self.storages[pid]
        while node.has_ready():
            rd = node.ready()
            if rd.snapshot is not None:
                storage.apply_snapshot(rd.snapshot)
                self.snapshots[pid].append(rd.snapshot)
            storage.append(rd.entries)
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            self.inflight.extend(rd.messages)
            self.applied[pid].extend(rd.committed_entries)
            self.read_states[pid].extend(rd.read_states)
            node.advance(rd)

    def deliver_all(self, max_messages: int = 100_000) -> None:
        """Deliver messages (FIFO) until the network is quiet."""
        for pid in self.nodes:
            if pid not in self.down:
                self.handle_ready(pid)
        count = 0
        while self.inflight:
            count += 1
            assert count < max_messages, "message storm"
            m = self.inflight.pop(0)
            if (m.src, m.dst) in self.cut or m.dst in self.down or m.dst not in self.nodes:
                continue
            if self.drop(m):
                continue
            self.delivered.append(m)
            self.nodes[m.dst].step(m)
            self.handle_ready(m.dst)

    def tick(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for pid, node in self.nodes.items():
                if pid not in self.down:
                    node.tick()
            self.deliver_all()

    def leader(self) -> PeerId | None:
        leaders = [p for p, n in self.nodes.items() if n.role is Role.LEADER and p not in self.down]
        return max(leaders, key=lambda p: self.nodes[p].term) if leaders else None

    def elect(self, max_ticks: int = 200) -> PeerId:
        for _ in range(max_ticks):
            self.tick()
            leader = self.leader()
            if leader is not None and all(
                self.nodes[p].leader_id == leader
                for p in self.nodes
                if p not in self.down and not self._separated(p, leader)
            ):
                return leader
        raise AssertionError("no leader elected")

    def _separated(self, a: PeerId, b: PeerId) -> bool:
        return (a, b) in self.cut or (b, a) in self.cut

    def campaign(self, pid: PeerId) -> None:
        """Make ``pid`` time out now (ticks only that node until it campaigns)."""
        node = self.nodes[pid]
        for _ in range(10 * node.config.election_timeout_ticks):
            node.tick()
            if node.role is not Role.FOLLOWER:
                break
        self.deliver_all()

    def normal_data(self, pid: PeerId) -> list[bytes]:
        return [e.data for e in self.applied[pid] if e.kind is EntryKind.NORMAL]

    def commit_of(self, pid: PeerId) -> LogIndex:
        return self.nodes[pid].commit_index

    def compact(self, pid: PeerId) -> Snapshot:
        """Snapshot ``pid`` at its applied index (data = the applied commands) and compact."""
        node = self.nodes[pid]
        index = node.applied_index
        snap = node.compact(index, b"|".join(self.normal_data(pid)))
        self.storages[pid].compact(index, snap)
        return snap

    def restart(self, pid: PeerId, seed: int = 99, **options: object) -> RaftNode:
        """Crash and restart ``pid`` from its storage (MemoryStorage keeps everything written)."""
        self.applied[pid] = []
        self.inflight = [m for m in self.inflight if pid not in (m.dst, m.src)]
        return self.add_node(pid, self.storages[pid], seed, **options)

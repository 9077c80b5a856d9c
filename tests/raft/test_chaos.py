"""Randomized fault runs of the core with in-test invariant checks (Raft §5.2 Election Safety,
§5.3 Log Matching, State Machine Safety). The full seeded simulator lives in refimpl.sim; this is
the core's own quick smoke test of the same properties."""

from __future__ import annotations

import itertools
import random

import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    ConfChange,
    ConfChangeKind,
    Entry,
    InstallSnapshot,
    MemoryStorage,
    NotLeader,
    ProposalDropped,
    RaftError,
)
from tests.raft.pump import Pump

P = PeerId


class Chaos:
    """Drops, duplicates, reorders, partitions and crash-restarts, with invariants checked."""

    def __init__(self, seed: int, n: int, **options: object) -> None:
        self.rng = random.Random(seed)
        self.pump = Pump.create(n, seed, (), **options)
        self.options = options
        self.leaders: dict[Term, PeerId] = {}
        self.applied_at: dict[LogIndex, Entry] = {}
        self.next_applied: dict[PeerId, int] = {}
        self.proposed = 0
        self.votes: dict[tuple[PeerId, Term], PeerId] = {}
        self.read_floor: dict[bytes, int] = {}  # read ctx -> highest index applied anywhere before
        self.reads_checked = 0

    def step_network(self) -> None:
        pump = self.pump
        for _ in range(len(pump.inflight)):
            if not pump.inflight:
                break
            m = pump.inflight.pop(self.rng.randrange(len(pump.inflight)))
            roll = self.rng.random()
            if roll < 0.1 or (m.src, m.dst) in pump.cut or m.dst in pump.down:
                continue
            if roll < 0.15:
                pump.inflight.append(m)  # duplicate
            pump.delivered.append(m)
            pump.nodes[m.dst].step(m)
            pump.handle_ready(m.dst)
            self.check()

    def check(self) -> None:
        for pid, node in self.pump.nodes.items():
            if node.role.name == "LEADER":
                assert self.leaders.setdefault(node.term, pid) == pid, "two leaders in a term"
            applied = self.pump.applied[pid]
            start = self.next_applied.get(pid, 0)
            for entry in applied[start:]:
                first = self.applied_at.setdefault(entry.index, entry)
                assert first == entry, f"apply disagreement at {entry.index}"
            self.next_applied[pid] = len(applied)
            for read in self.pump.read_states[pid]:
                # Linearizable read: the read point covers every write applied before the request.
                assert read.index >= self.read_floor.pop(read.request_ctx), "stale read index"
                self.reads_checked += 1
            self.pump.read_states[pid].clear()

    def check_logs(self) -> None:
        """Log Matching on committed prefixes, and one vote per (peer, term) on disk."""
        nodes = list(self.pump.nodes.items())
        for pid, _node in nodes:
            hs = self.pump.storages[pid].hard_state()
            if hs.voted_for is not None:
                key = (pid, hs.term)
                assert self.votes.setdefault(key, hs.voted_for) == hs.voted_for, "vote changed"
        for (_, a), (_, b) in itertools.pairwise(nodes):
            hi = LogIndex(min(a.commit_index, b.commit_index) + 1)
            ours, theirs = a.log_entries(LogIndex(0), hi), b.log_entries(LogIndex(0), hi)
            overlap = min(len(ours), len(theirs))  # both end at hi - 1; prefixes may be compacted
            assert overlap == 0 or ours[-overlap:] == theirs[-overlap:], "committed logs differ"

    def run(self, rounds: int) -> None:
        pump = self.pump
        for _ in range(rounds):
            roll = self.rng.random()
            if roll < 0.03:
                pump.heal()
                a, b = self.rng.sample(sorted(pump.nodes), 2)
                pump.cut |= {(a, b), (b, a)}
            elif roll < 0.05:
                pump.heal()
            elif roll < 0.06:
                self.crash_restart(self.rng.choice(sorted(pump.nodes)))
            leader = pump.leader()
            if leader is not None and self.rng.random() < 0.3:
                self.propose(leader)
            for pid, node in pump.nodes.items():
                node.tick()
                pump.handle_ready(pid)
            self.step_network()
            self.check_logs()

    def propose(self, leader: PeerId) -> None:
        try:
            self.pump.nodes[leader].propose(f"op{self.proposed}".encode())
            self.proposed += 1
            if self.rng.random() < 0.3:
                ctx = f"read{self.proposed}".encode()
                self.read_floor[ctx] = (
                    max(e.index for e in self.applied_at.values()) if self.applied_at else 0
                )
                self.pump.nodes[leader].read_index(ctx)
        except (NotLeader, ProposalDropped):
            pass

    def crash_restart(self, pid: PeerId) -> None:
        self.next_applied[pid] = 0
        self.pump.restart(pid, seed=self.rng.randrange(1000), **self.options)
        self.pump.handle_ready(pid)
        self.check()


@pytest.mark.parametrize("seed", range(12))
def test_random_faults_keep_safety_and_recover(seed: int) -> None:
    """Under drops, duplicates, reordering, partitions and restarts: one leader per term,
    identical entries at every applied index; after healing, a new proposal commits on all."""
    options: dict[str, object] = {}
    if seed % 3 == 1:
        options = {"pre_vote": False, "check_quorum": False}
    chaos = Chaos(
        seed, 3 + 2 * (seed % 2), max_entries_per_message=4, max_inflight_messages=4, **options
    )
    chaos.run(400)
    pump = chaos.pump
    pump.heal()
    for _ in range(300):
        pump.tick()
        chaos.check()
        if pump.leader() is not None and all(
            n.leader_id == pump.leader() for n in pump.nodes.values()
        ):
            break
    leader = pump.leader()
    assert leader is not None
    index = pump.nodes[leader].propose(b"final")
    pump.tick(10)
    chaos.check()
    assert all(n.applied_index >= index for n in pump.nodes.values())
    assert chaos.applied_at[index].data == b"final"
    assert chaos.reads_checked > 0


@pytest.mark.parametrize("seed", range(4))
def test_random_faults_with_compaction_and_membership_changes(seed: int) -> None:
    """The same faults plus snapshots and learner add/promote keep apply agreement."""
    chaos = Chaos(100 + seed, 3, max_entries_per_message=3)
    pump = chaos.pump
    pump.add_node(P(4), MemoryStorage())
    for round_ in range(10):
        chaos.run(60)
        leader = pump.leader()
        if leader is None:
            continue
        node = pump.nodes[leader]
        try:
            if round_ >= 2 and P(4) not in node.membership.members:
                node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(4)))
            if round_ >= 5 and P(4) in node.membership.learners:
                node.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE_VOTER, P(4)))
        except RaftError:
            pass  # a pending change or a lost leadership: try again next round
        for pid, n in pump.nodes.items():
            if n.applied_index - pump.storages[pid].first_index() > 10:
                pump.compact(pid)
    pump.heal()
    pump.tick(200)
    chaos.check()
    leader = pump.leader()
    assert leader is not None
    index = pump.nodes[leader].propose(b"final")
    pump.tick(20)
    chaos.check()
    assert pump.nodes[leader].membership.voters == {P(1), P(2), P(3), P(4)}
    assert all(n.applied_index >= index for n in pump.nodes.values())
    assert any(isinstance(m, InstallSnapshot) for m in pump.delivered)

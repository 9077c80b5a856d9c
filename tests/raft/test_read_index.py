"""ReadIndex linearizable reads (Raft thesis §6.4; spec "Consistency guarantees", scenarios F1-F2)."""

from __future__ import annotations

import pytest

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import AppendEntries, AppendEntriesResponse, NotLeader, Role
from tests.raft.pump import Pump

P = PeerId


def test_read_index_confirmed_by_heartbeat_quorum_returns_commit_index() -> None:
    """The leader records its commit index, confirms leadership with a heartbeat round to a
    quorum, and only then emits the ReadState."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    node.read_index(b"r1")
    node.read_index(b"r2")
    rd = node.ready()
    assert rd.read_states == ()
    rounds = [m for m in rd.messages if isinstance(m, AppendEntries) and m.read_ctx > 0]
    assert len(rounds) == 2  # one heartbeat per follower, shared by both reads
    node.advance(rd)
    pump.inflight.extend(rd.messages)
    pump.deliver_all()
    assert [(r.request_ctx, r.index) for r in pump.read_states[leader]] == [
        (b"r1", node.commit_index),
        (b"r2", node.commit_index),
    ]


def test_single_voter_read_is_immediate() -> None:
    """With one voter, the leader alone is a quorum."""
    pump = Pump.create(1)
    pump.elect()
    pump.tick(2)
    pump.nodes[P(1)].read_index(b"x")
    pump.deliver_all()
    assert [r.request_ctx for r in pump.read_states[P(1)]] == [b"x"]


def test_read_on_follower_raises_not_leader_with_hint() -> None:
    """Only the leader serves ReadIndex; a follower gives a definite rejection naming the leader."""
    pump = Pump.create(3)
    leader = pump.elect()
    f = next(p for p in pump.nodes if p != leader)
    with pytest.raises(NotLeader) as info:
        pump.nodes[f].read_index(b"x")
    assert info.value.leader_id == leader


def test_new_leader_postpones_reads_until_it_commits_in_its_term() -> None:
    """Scenario F2: before its NOOP commits, a new leader's commit index may be stale, so the
    read waits (no heartbeat round starts) until an entry of its own term is committed."""
    pump = Pump.create(3)
    pump.drop = lambda m: isinstance(m, AppendEntriesResponse)  # nothing commits
    pump.campaign(P(1))
    node = pump.nodes[P(1)]
    assert node.role is Role.LEADER
    stale_commit = node.commit_index
    node.read_index(b"early")
    rd = node.ready()
    assert not any(isinstance(m, AppendEntries) and m.read_ctx for m in rd.messages)
    node.advance(rd)
    pump.tick(2)
    assert pump.read_states[P(1)] == []
    pump.drop = lambda m: False
    pump.tick(2)
    assert [r.request_ctx for r in pump.read_states[P(1)]] == [b"early"]
    index = pump.read_states[P(1)][0].index
    assert index > stale_commit
    assert node.log_entries(index, LogIndex(index + 1))[0].term == node.term


def test_partitioned_leader_never_emits_read_state() -> None:
    """Scenario F1: a deposed leader cut off from the majority never confirms a read."""
    pump = Pump.create(5)
    leader = pump.elect()
    pump.tick(2)
    buddy = next(p for p in pump.nodes if p != leader)
    majority = [p for p in pump.nodes if p not in (leader, buddy)]
    for a in (leader, buddy):
        for b in majority:
            pump.cut |= {(a, b), (b, a)}
    pump.nodes[leader].read_index(b"stale?")
    pump.tick(60)
    assert pump.read_states[leader] == []
    new = pump.leader()
    assert new in majority


def test_late_ack_of_old_round_confirms_earlier_reads_only() -> None:
    """An acknowledgement of round k confirms reads of rounds <= k, never later ones."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    f = next(p for p in pump.nodes if p != leader)
    node.read_index(b"a")
    node.advance(node.ready())  # round 1
    node.read_index(b"b")
    node.advance(node.ready())  # round 2
    match, _ = node.progress()[f]
    node.step(
        AppendEntriesResponse(node.term, f, leader, True, match, match, node.term, read_ctx=1)
    )
    rd = node.ready()
    assert [r.request_ctx for r in rd.read_states] == [b"a"]

"""Learners and single-step membership changes (Raft thesis §4.1-4.2; spec "Cluster scaling")."""

from __future__ import annotations

import pytest

from refimpl.ids import PeerId
from refimpl.raft import (
    ConfChange,
    ConfChangeDecodeError,
    ConfChangeKind,
    EntryKind,
    InstallSnapshot,
    InvalidRequestError,
    Membership,
    MemoryStorage,
    ProposalDropped,
    Role,
)
from tests.raft.pump import Pump

P = PeerId


def _change(pump: Pump, leader: PeerId, change: ConfChange, ticks: int = 5) -> None:
    pump.nodes[leader].propose_conf_change(change)
    pump.tick(ticks)


def test_conf_change_round_trips_through_bytes() -> None:
    """A CONF_CHANGE entry's data is ConfChange.encode(); context (e.g. a URI) survives."""
    change = ConfChange(ConfChangeKind.ADD_LEARNER, P(2**53 - 1), b"http://10.0.0.2:6335")
    assert ConfChange.decode(change.encode()) == change
    with pytest.raises(ConfChangeDecodeError):
        ConfChange.decode(b"\x09" + bytes(8))


def test_joiner_learns_membership_from_snapshot_then_is_promoted() -> None:
    """Scenario E1: an empty joiner added as learner is brought up by the leader's snapshot
    (whose metadata carries the membership), catches up, and is promoted to voter."""
    pump = Pump.create(1)
    pump.elect()
    pump.nodes[P(1)].propose(b"before")
    pump.tick(2)
    joiner = pump.add_node(P(2), MemoryStorage())
    assert joiner.membership.voters == frozenset()
    _change(pump, P(1), ConfChange(ConfChangeKind.ADD_LEARNER, P(2), b"http://peer2"))
    assert any(isinstance(m, InstallSnapshot) and m.dst == P(2) for m in pump.delivered)
    assert joiner.membership == Membership(frozenset({P(1)}), frozenset({P(2)}))
    assert pump.normal_data(P(2)) == [b"before"]
    added = [e for e in pump.applied[P(2)] if e.kind is EntryKind.CONF_CHANGE]
    assert ConfChange.decode(added[0].data).context == b"http://peer2"
    _change(pump, P(1), ConfChange(ConfChangeKind.PROMOTE_VOTER, P(2)))
    assert all(n.membership.voters == {P(1), P(2)} for n in pump.nodes.values())
    assert pump.nodes[P(1)].role is Role.LEADER


def test_learner_is_not_counted_in_commit_quorum() -> None:
    """Learners receive entries but are never counted in quorums."""
    pump = Pump.create(3, learners=[P(3)])
    leader = pump.elect()
    other_voter = P(1) if leader == P(2) else P(2)
    pump.isolate(other_voter)
    index = pump.nodes[leader].propose(b"x")
    pump.tick(5)
    assert pump.nodes[P(3)].last_log_index >= index  # the learner has it ...
    assert pump.nodes[leader].commit_index < index  # ... but it does not count


def test_single_voter_with_learner_commits_alone() -> None:
    """A one-voter cluster commits by itself even while its learner is unreachable."""
    pump = Pump.create(2, learners=[P(2)])
    pump.isolate(P(2))
    pump.elect()
    index = pump.nodes[P(1)].propose(b"x")
    pump.tick(2)
    assert pump.nodes[P(1)].commit_index >= index


def test_at_most_one_conf_change_is_pending() -> None:
    """Single-step changes: a second change is refused until the first is applied."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(9)))
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(10)))
    pump.tick(3)
    node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(10)))


def test_conf_change_takes_effect_when_applied_not_when_appended() -> None:
    """Membership changes apply on commit (when the entry is applied), not on append."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(9)))
    assert P(9) not in node.membership.learners
    pump.tick(3)
    assert all(P(9) in n.membership.learners for n in pump.nodes.values())


def test_invalid_conf_changes_are_rejected_with_a_typed_error() -> None:
    """Bad input raises a typed error: promoting a non-learner, removing the last voter."""
    pump = Pump.create(1)
    pump.elect()
    pump.tick(2)
    node = pump.nodes[P(1)]
    with pytest.raises(InvalidRequestError):
        node.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE_VOTER, P(5)))
    with pytest.raises(InvalidRequestError):
        node.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_PEER, P(1)))


def test_removed_leader_steps_down_and_the_rest_elect_a_new_one() -> None:
    """A leader removed from the voters steps down; it never campaigns again; the rest go on."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    _change(pump, leader, ConfChange(ConfChangeKind.REMOVE_PEER, leader), ticks=3)
    assert pump.nodes[leader].role is Role.FOLLOWER
    pump.tick(60)
    new = pump.leader()
    assert new is not None and new != leader
    assert pump.nodes[new].membership.voters == frozenset(pump.nodes) - {leader}
    pump.nodes[new].propose(b"after")
    pump.tick(3)
    rest = [p for p in pump.nodes if p != leader]
    assert all(pump.normal_data(p) == [b"after"] for p in rest)
    assert pump.nodes[leader].role is Role.FOLLOWER


def test_removed_follower_cannot_disrupt_the_cluster() -> None:
    """A removed peer that never learned of its removal cannot depose the leader."""
    pump = Pump.create(3, pre_vote=False, check_quorum=False)
    leader = pump.elect()
    pump.tick(2)
    victim = next(p for p in pump.nodes if p != leader)
    pump.isolate(victim)
    _change(pump, leader, ConfChange(ConfChangeKind.REMOVE_PEER, victim))
    term = pump.nodes[leader].term
    pump.heal()
    pump.tick(100)
    assert pump.nodes[victim].term > term  # it keeps campaigning (it thinks it is a voter) ...
    assert pump.leader() == leader  # ... but nobody listens
    assert pump.nodes[leader].term == term

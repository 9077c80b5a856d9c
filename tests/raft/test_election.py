"""Leader election: randomized timeouts, PreVote, CheckQuorum and the leader lease (Raft §5.2,
§5.4.1, thesis §9.6; spec "Raft")."""

from __future__ import annotations

import random

import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    AppendEntriesResponse,
    Membership,
    MemoryStorage,
    NotLeader,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
    Role,
)
from tests.raft.pump import Pump

P = PeerId


def test_exactly_one_leader_is_elected_and_terms_agree() -> None:
    """Raft §5.2: a candidate that wins a majority becomes leader; the others follow it."""
    pump = Pump.create(3)
    leader = pump.elect(max_ticks=30)
    assert [n.role for n in pump.nodes.values()].count(Role.LEADER) == 1
    assert {n.term for n in pump.nodes.values()} == {pump.nodes[leader].term}
    assert all(n.leader_id == leader for n in pump.nodes.values())


def test_single_voter_elects_itself() -> None:
    """A one-voter cluster is its own majority."""
    pump = Pump.create(1)
    assert pump.elect(max_ticks=25) == 1


def test_randomized_timeout_is_redrawn_in_range_each_term() -> None:
    """Raft §5.2: election timeouts are random in [ET, 2*ET), drawn again for each election."""
    storage = MemoryStorage.bootstrap(Membership(frozenset({P(1), P(2), P(3)})))
    node = RaftNode(RaftConfig(id=P(1), pre_vote=False), storage, random.Random(7))
    timeouts = []
    for _ in range(40):
        ticks = 0
        term = node.term
        while node.term == term:
            node.tick()
            ticks += 1
        timeouts.append(ticks)
    assert all(10 <= t < 20 for t in timeouts)
    assert len(set(timeouts)) > 3


def test_quiet_cluster_keeps_its_term_and_sends_bounded_heartbeats() -> None:
    """Scenario A1: over 50 ET of idleness no term change, at most 2(n-1) messages per tick."""
    pump = Pump.create(3)
    leader = pump.elect()
    term = pump.nodes[leader].term
    pump.delivered.clear()
    pump.tick(500)
    assert {n.term for n in pump.nodes.values()} == {term}
    assert pump.leader() == leader
    assert len(pump.delivered) <= 500 * 2 * 2


def test_isolated_nodes_do_not_raise_their_term_with_prevote() -> None:
    """Scenario A3 / thesis §9.6: with PreVote an isolated node never increments its term."""
    pump = Pump.create(3)
    pump.elect()
    terms = {p: n.term for p, n in pump.nodes.items()}
    for pid in pump.nodes:
        pump.isolate(pid)
    pump.tick(300)
    assert {p: n.term for p, n in pump.nodes.items()} == terms
    assert pump.leader() is None or pump.nodes[pump.leader() or P(0)].role is not Role.LEADER


def test_isolated_nodes_raise_their_term_without_prevote() -> None:
    """Scenario A3 teaching mode: without PreVote an isolated node's term keeps growing."""
    pump = Pump.create(3, pre_vote=False, check_quorum=False)
    pump.elect()
    for pid in pump.nodes:
        pump.isolate(pid)
    before = pump.nodes[P(2)].term
    pump.tick(300)
    assert pump.nodes[P(2)].term >= before + 10


def test_check_quorum_leader_steps_down_when_isolated() -> None:
    """Scenario A8a: with CheckQuorum an isolated leader reports follower within 2 ET."""
    pump = Pump.create(5)
    leader = pump.elect()
    pump.isolate(leader)
    pump.tick(20)
    assert pump.nodes[leader].role is Role.FOLLOWER
    with pytest.raises(NotLeader):
        pump.nodes[leader].propose(b"too late")  # a definite "not leader" answer


def test_leader_without_check_quorum_stays_leader_when_isolated() -> None:
    """Without CheckQuorum nothing tells an isolated leader it lost the cluster."""
    pump = Pump.create(3, check_quorum=False)
    leader = pump.elect()
    pump.isolate(leader)
    pump.tick(100)
    assert pump.nodes[leader].role is Role.LEADER


def test_stale_leader_rejoins_as_follower_without_raising_terms() -> None:
    """Scenario A2: a returning old leader follows the new one; the term is not bumped by it."""
    pump = Pump.create(3)
    old = pump.elect()
    pump.isolate(old)
    pump.tick(60)
    new = pump.leader()
    assert new is not None and new != old
    new_term = pump.nodes[new].term
    pump.heal()
    pump.tick(3)
    assert pump.nodes[old].role is Role.FOLLOWER
    assert pump.leader() == new and pump.nodes[new].term == new_term


def test_asymmetric_partition_does_not_depose_a_healthy_leader() -> None:
    """Scenario A7: A<->C cut, A<->B, B<->C up; with PreVote + CheckQuorum leader C stays."""
    pump = Pump.create(3, seed=3)
    leader = pump.elect()
    a = next(p for p in pump.nodes if p != leader)
    pump.cut |= {(a, leader), (leader, a)}
    term = pump.nodes[leader].term
    pump.tick(1000)
    assert pump.leader() == leader
    assert pump.nodes[leader].term == term


def test_asymmetric_partition_without_prevote_and_check_quorum_churns() -> None:
    """Scenario A7 teaching mode: with both off the cut-off peer deposes the healthy leader."""
    pump = Pump.create(3, seed=3, pre_vote=False, check_quorum=False)
    leader = pump.elect()
    a = next(p for p in pump.nodes if p != leader)
    pump.cut |= {(a, leader), (leader, a)}
    term = pump.nodes[leader].term
    pump.tick(100)
    assert max(n.term for n in pump.nodes.values()) > term
    assert pump.leader() != leader


def test_follower_in_lease_ignores_higher_term_vote_requests() -> None:
    """CheckQuorum leader lease: a follower that heard from the leader within ET ignores votes."""
    pump = Pump.create(3)
    leader = pump.elect()
    follower = next(p for p in pump.nodes if p != leader)
    other = next(p for p in pump.nodes if p not in (leader, follower))
    node = pump.nodes[follower]
    term = node.term
    node.step(RequestVote(Term(term + 5), other, follower, LogIndex(99), Term(99), pre_vote=False))
    assert node.term == term and node.voted_for != other
    assert not any(isinstance(m, RequestVoteResponse) for m in node.ready().messages)


def test_vote_refused_to_candidate_with_shorter_log() -> None:
    """Raft §5.4.1 / scenario A6: a candidate missing a committed entry cannot win."""
    pump = Pump.create(5, seed=5, check_quorum=False)
    leader = pump.elect()
    laggard = next(p for p in pump.nodes if p != leader)
    pump.isolate(laggard)
    pump.nodes[leader].propose(b"e")
    pump.tick(2)
    pump.heal()
    pump.down.add(leader)
    node = pump.nodes[laggard]
    for pid in pump.nodes:  # every up-to-date peer rejects the laggard
        if pid not in (leader, laggard):
            other = pump.nodes[pid]
            last = node.last_log_index
            other.step(
                RequestVote(Term(other.term + 1), laggard, pid, last, node.last_log_term, False)
            )
            responses = [m for m in other.ready().messages if isinstance(m, RequestVoteResponse)]
            assert responses and not responses[0].granted


def test_split_votes_terminate_and_each_node_votes_once_per_term() -> None:
    """Scenario A5: with many seeds an election finishes; nobody votes twice in one term."""
    for seed in range(20):
        pump = Pump.create(4, seed=seed, pre_vote=False)
        votes: dict[tuple[PeerId, Term], PeerId] = {}
        for _ in range(400):
            pump.tick()
            for pid, node in pump.nodes.items():
                if node.voted_for is not None:
                    assert votes.setdefault((pid, node.term), node.voted_for) == node.voted_for
            if pump.leader() is not None:
                break
        assert pump.leader() is not None, seed


def test_request_vote_from_non_member_is_ignored() -> None:
    """Removed or unknown peers must not disrupt the cluster with higher-term RequestVotes."""
    pump = Pump.create(3)
    leader = pump.elect()
    node = pump.nodes[leader]
    term = node.term
    node.step(RequestVote(Term(term + 9), P(77), leader, LogIndex(99), Term(99), False, True))
    assert node.term == term and node.role is Role.LEADER


def test_lower_term_append_response_makes_stale_sender_learn_nothing_but_step_down() -> None:
    """Raft Figure 2: any RPC with a higher term makes the receiver a follower of that term."""
    pump = Pump.create(3)
    leader = pump.elect()
    node = pump.nodes[leader]
    other = next(p for p in pump.nodes if p != leader)
    node.step(
        AppendEntriesResponse(
            Term(node.term + 1), other, leader, False, LogIndex(0), LogIndex(0), Term(0)
        )
    )
    assert node.role is Role.FOLLOWER and node.leader_id is None


def test_learner_never_campaigns() -> None:
    """A node not in voters never campaigns (learners only listen)."""
    pump = Pump.create(3, learners=[P(3)])
    pump.isolate(P(3))
    pump.tick(200)
    assert pump.nodes[P(3)].role is Role.FOLLOWER
    assert pump.nodes[P(3)].term == 0

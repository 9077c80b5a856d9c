"""Group E of raft-scenarios.md: membership change (single-step, learners first, Qdrant's flow)."""

from __future__ import annotations

import contextlib
import random

import pytest

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import (
    ConfChange,
    ConfChangeKind,
    EntryKind,
    InvalidRequestError,
    NotLeader,
    ProposalDropped,
    Role,
)
from refimpl.sim import Faults, SimCluster, Workload, check_liveness
from refimpl.testing import check_history
from tests.scenarios.support import ET, check_golden, elect, make_cluster, put, seeds


def _applied_at(c: SimCluster, peer: int, index: LogIndex) -> bool:
    return c.node(peer).sm.applied_index >= index


def _change(c: SimCluster, leader: int, change: ConfChange, max_ticks: int = 10 * ET) -> None:
    """Propose ``change`` at ``leader`` (retrying while another is pending) until applied there."""
    for _ in range(max_ticks):
        try:
            index = c.propose_conf_change(leader, change)
            break
        except ProposalDropped:
            c.tick()
    else:
        raise AssertionError(f"{change} never accepted")
    assert c.run_until(lambda c: _applied_at(c, leader, index), max_ticks)


def _caught_up(c: SimCluster, leader: int, peer: int) -> bool:
    raft = c.node(leader).raft
    assert raft is not None
    return raft.progress().get(PeerId(peer), (0, 0))[0] >= raft.commit_index


def _add_via_bootstrap(c: SimCluster, leader: int, peer: int) -> None:
    """Qdrant's join: add as learner (with its URI), wait until caught up, promote."""
    uri = f"http://n{peer}:6335".encode()
    _change(c, leader, ConfChange(ConfChangeKind.ADD_LEARNER, PeerId(peer), uri))
    assert c.run_until(lambda c: _caught_up(c, leader, peer), 10 * ET)
    _change(c, leader, ConfChange(ConfChangeKind.PROMOTE_VOTER, PeerId(peer)))


def _e1(with_client: bool) -> tuple[SimCluster, Workload | None]:
    c = make_cluster(3, seed=41, voters=[1])
    leader = elect(c)
    assert leader == 1
    w = Workload(c, clients=1, ops_every_ticks=ET, seed=41) if with_client else None
    for peer in (2, 3):
        _add_via_bootstrap(c, leader, peer)
    c.run(3 * ET)
    return c, w


def test_e1_add_peers_via_bootstrap() -> None:
    """E1: a 1-node cluster grows to 3 voters, each joining as a learner first (Qdrant flow)."""
    c, _ = _e1(with_client=False)
    voters = {frozenset(n.raft.membership.voters) for n in c.live() if n.raft}
    assert voters == {frozenset({1, 2, 3})}
    assert all(not n.raft.membership.learners for n in c.live() if n.raft)
    check_golden(c, "e1_add_via_bootstrap")


def test_e1_clients_keep_working_during_joins() -> None:
    """E1: a client proposing 1 op/ET sees at least 95 % success while peers join."""
    _, w = _e1(with_client=True)
    assert w is not None
    w.finish()
    assert w.committed >= 0.95 * w.proposals
    assert check_history(w.history).ok


def test_e1_one_conf_change_at_a_time() -> None:
    """E1/E2: a second conf change while one is pending is refused definitely (retryable)."""
    c = make_cluster(5, seed=42, voters=[1, 2, 3])
    leader = elect(c)
    c.propose_conf_change(leader, ConfChange(ConfChangeKind.ADD_LEARNER, PeerId(4)))
    with pytest.raises(ProposalDropped):
        c.propose_conf_change(leader, ConfChange(ConfChangeKind.ADD_LEARNER, PeerId(5)))


@pytest.mark.parametrize("seed", seeds(4))
def test_e2_concurrent_joins(seed: int) -> None:
    """E2: two joins in the same tick both finish within 30·ET; never two pending conf changes."""
    c = make_cluster(5, seed, voters=[1, 2, 3])
    leader = elect(c)
    start = c.now
    todo = {4: ConfChangeKind.ADD_LEARNER, 5: ConfChangeKind.ADD_LEARNER}
    while todo and c.now - start < 30 * ET:
        for peer, kind in sorted(todo.items()):
            if kind is ConfChangeKind.PROMOTE_VOTER and not _caught_up(c, leader, peer):
                continue
            with contextlib.suppress(ProposalDropped):
                c.propose_conf_change(leader, ConfChange(kind, PeerId(peer)))
                todo[peer] = ConfChangeKind.PROMOTE_VOTER
                if kind is ConfChangeKind.PROMOTE_VOTER:
                    del todo[peer]
        raft = c.node(leader).raft
        assert raft is not None
        pending = [
            e
            for e in raft.log_entries(
                LogIndex(raft.commit_index + 1), LogIndex(raft.last_log_index + 1)
            )
            if e.kind is EntryKind.CONF_CHANGE
        ]
        assert len(pending) <= 1
        c.tick()
    raft = c.node(leader).raft
    assert raft is not None
    assert c.run_until(lambda c: len(raft.membership.voters) == 5, 5 * ET)


def test_e3_remove_a_follower() -> None:
    """E3: after removing n5 commits need 3 of the other 4; n5 cannot disturb the cluster."""
    c = make_cluster(5, seed=43)
    leader = elect(c)
    removed = max(p for p in c.nodes if p != leader)
    _change(c, leader, ConfChange(ConfChangeKind.REMOVE_PEER, PeerId(removed)))
    term = c.node(leader).term
    rest = [p for p in c.nodes if p not in (leader, removed)]
    c.partition([leader, rest[0]], rest[1:], [removed])  # 2 of 4: no quorum
    index = put(c, leader, "e3", "a", 1)
    c.run(3 * ET)
    assert c.checker.max_applied < index
    c.partition([leader, *rest[:2]], [rest[2]], [removed])  # 3 of 4: quorum
    assert c.run_until(lambda c: c.checker.max_applied >= index, 5 * ET) or c.leader() != leader
    c.heal()  # the removed node still runs and may campaign
    c.run(20 * ET)
    assert c.leader() is not None and c.node(c.leader() or 0).term >= term
    assert removed not in c.node(c.leader() or 0).raft.membership.members  # type: ignore[union-attr]


def test_e4_remove_the_leader() -> None:
    """E4: a leader that removes itself steps down; the other two elect a leader; nothing lost."""
    c = make_cluster(3, seed=44)
    leader = elect(c)
    committed = put(c, leader, "e4", "kept", 1)
    c.propose_conf_change(leader, ConfChange(ConfChangeKind.REMOVE_PEER, PeerId(leader)))
    assert c.run_until(lambda c: c.node(leader).role is Role.FOLLOWER, 5 * ET)
    with pytest.raises(NotLeader):
        put(c, leader, "e4", "refused", 2)
    assert c.run_until(lambda c: c.leader() not in (None, leader), 10 * ET)
    new = c.leader()
    assert new is not None and c.node(new).sm.data["e4"] == "kept"
    assert c.checker.applied[committed][1] is not None
    c.crash(leader)  # the removed node is not needed for the new quorum
    index = put(c, new, "e4", "after", 3)
    assert c.run_until(lambda c: c.checker.max_applied >= index, 5 * ET)
    check_golden(c, "e4_remove_leader")


@pytest.mark.parametrize("seed", seeds(4))
def test_e6_membership_change_under_faults(seed: int) -> None:
    """E6: removals and additions with partitions and crashes keep G1–G4 and linearizability."""
    c = make_cluster(7, seed, voters=[1, 2, 3, 4, 5], faults=Faults(torn_writes=True))
    w = Workload(c, clients=2, ops_every_ticks=3, seed=seed)
    rng = random.Random(seed)
    spares = [6, 7]
    for round_ in range(8):
        c.run(rng.randint(ET, 4 * ET))
        leader = c.leader()
        if leader is None:
            continue
        raft = c.node(leader).raft
        assert raft is not None
        voters = sorted(raft.membership.voters)
        try:
            if round_ % 2 == 0 and len(voters) > 3:
                victim = rng.choice([v for v in voters if v != leader])
                c.propose_conf_change(leader, ConfChange(ConfChangeKind.REMOVE_PEER, victim))
            elif spares:
                learners = sorted(raft.membership.learners)
                if learners:
                    change = ConfChange(ConfChangeKind.PROMOTE_VOTER, learners[0])
                else:
                    change = ConfChange(ConfChangeKind.ADD_LEARNER, PeerId(spares.pop(0)))
                c.propose_conf_change(leader, change)
        except (ProposalDropped, NotLeader, InvalidRequestError):
            pass
        if rng.random() < 0.4:
            c.partition([rng.choice(sorted(c.nodes))])
        elif rng.random() < 0.3:
            c.crash(rng.choice(sorted(c.nodes)))
        else:
            c.heal_all()
    w.finish()
    c.heal_all()
    assert check_liveness(c) is None
    assert check_history(w.history).ok

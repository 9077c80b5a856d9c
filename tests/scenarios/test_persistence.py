"""Group C of raft-scenarios.md: persistence and crash-restart (Raft Figure 2 "persistent state")."""

from __future__ import annotations

import contextlib
import random

import pytest

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import Entry, NotLeader, ProposalDropped, RequestVote, RequestVoteResponse, Role
from refimpl.sim import Faults, SimCluster, Workload, check_liveness
from refimpl.testing import check_history
from tests.scenarios.support import (
    ET,
    applied_everywhere,
    check_golden,
    elect,
    make_cluster,
    put,
    seeds,
)


def test_c1_whole_cluster_restart() -> None:
    """C1: after crashing every node, each re-applies the same commands; terms never go back."""
    c = make_cluster(3, seed=21)
    leader = elect(c)
    last = LogIndex(0)
    for seq in range(5):
        last = put(c, leader, "c1", str(seq), seq)
    assert c.run_until(applied_everywhere(last), 2 * ET)
    terms = {p: n.term for p, n in c.nodes.items()}
    applied: dict[int, list[tuple[int, bytes]]] = {p: [] for p in c.nodes}

    def record(peer: PeerId, entry: Entry, result: object) -> None:
        if entry.index <= last:
            applied[peer].append((entry.index, entry.data))

    for p in list(c.nodes):
        c.crash(p)
    c.apply_hooks.append(record)
    for p in list(c.nodes):
        c.restart(p)
        assert c.node(p).term >= terms[p]
    assert c.run_until(applied_everywhere(last), 10 * ET)
    assert len({tuple(v) for v in applied.values()}) == 1
    assert [i for i, _ in applied[1]][-5:] == list(range(last - 4, last + 1))
    leader = elect(c)
    assert put(c, leader, "c1", "new", 10) > last


def _c2(crash_before_fsync: bool) -> SimCluster:
    c = make_cluster(3, seed=22, pre_vote=False, check_quorum=False)
    a, b, cc = 1, 2, 3
    # Hold A's vote request to C and B's answer to A: we deliver them by hand.
    c.intercept = lambda m: (
        (isinstance(m, RequestVote) and m.src == a and m.dst == cc)
        or (isinstance(m, RequestVoteResponse) and m.src == b)
    )
    if crash_before_fsync:
        c.crash_at_next_sync.add(PeerId(b))
    c.force_timeout(a)
    c.tick()  # B receives A's request, persists its vote, answers (held) -- or loses power
    grants = [m for m in c.held if isinstance(m, RequestVoteResponse) and m.granted]
    assert bool(grants) is not crash_before_fsync
    c.crash(b)
    c.restart(b)
    c.intercept = None
    c.force_timeout(cc)  # C campaigns in the same term and asks B
    c.run(2)
    for m in grants:
        c.deliver(m)
    c.run(3 * ET)
    return c


def test_c2_vote_durability() -> None:
    """C2: a vote persisted and sent survives a crash: B refuses C in the same term (G1, G5)."""
    c = _c2(crash_before_fsync=False)
    term = min(c.checker.leaders)
    assert c.checker.leaders[term] == 1, "only A can lead the term in which B voted for A"
    check_golden(c, "c2_vote_durability")


def test_c2_vote_lost_before_fsync_was_never_sent() -> None:
    """C2 variant: power loss during the fsync of a vote means the grant never left B."""
    c = _c2(crash_before_fsync=True)
    assert c.leader() is not None  # G1/G5 were checked after every event


@pytest.mark.parametrize("seed", seeds(8))
def test_c3_term_durability_under_simultaneous_restart(seed: int) -> None:
    """C3: all restart at once (one late by 1·ET) with clients writing: terms never go back."""
    c = make_cluster(3, seed)
    w = Workload(c, clients=2, ops_every_ticks=2, seed=seed)
    c.run(20 * ET)
    terms = {p: n.term for p, n in c.nodes.items()}
    for p in list(c.nodes):
        c.crash(p, torn=True)
    for early in (1, 3):
        c.restart(early)
    c.run(ET)
    c.restart(2)
    assert all(c.node(p).term >= terms[p] for p in c.nodes)
    c.run(20 * ET)
    w.finish()
    assert check_liveness(c) is None
    assert check_history(w.history).ok


@pytest.mark.parametrize("seed", seeds(12))
def test_c4_power_loss_with_write_back_cache(seed: int) -> None:
    """C4: power loss (torn, unsynced writes lost) on a minority, the leader or a majority."""
    c = make_cluster(5, seed, faults=Faults(torn_writes=True))
    w = Workload(c, clients=3, ops_every_ticks=2, seed=seed)
    rng = random.Random(seed)
    for _ in range(6):
        c.run(rng.randint(5, 3 * ET))
        leader = c.leader()
        ids = sorted(c.nodes)
        shape = rng.choice(["minority", "leader", "majority"])
        if shape == "leader" and leader is not None:
            victims = [leader]
        else:
            victims = rng.sample(ids, 2 if shape == "minority" else 3)
        if rng.random() < 0.5:
            c.partition(rng.sample(ids, 2))
        for p in victims:
            c.crash(p)
        c.run(rng.randint(1, ET))
        for p in victims:
            c.restart(p)
        c.heal()
    w.finish()
    assert check_liveness(c) is None
    assert check_history(w.history).ok


@pytest.mark.parametrize("seed", seeds(6))
def test_c6_rolling_crashes(seed: int) -> None:
    """C6 (Persist2): 5 rounds of crash 2, commit with 3, crash 3, restart in steps: nothing lost."""
    c = make_cluster(5, seed)
    rng = random.Random(seed)
    acked: list[LogIndex] = []
    seq = 0

    def commit() -> None:
        nonlocal seq
        leader = elect(c, 20 * ET)
        seq += 1
        index = put(c, leader, "c6", str(seq), seq)
        assert c.run_until(lambda c: c.checker.max_applied >= index, 10 * ET)
        acked.append(index)

    for _ in range(5):
        commit()
        first = rng.sample(sorted(c.nodes), 2)
        for p in first:
            c.crash(p)
        commit()
        rest = [p for p in c.nodes if p not in first]
        for p in rest:
            c.crash(p)
        for p in first:
            c.restart(p)
        c.run(ET)
        c.restart(rest[0])
        commit()
        for p in rest[1:]:
            c.restart(p)
    assert check_liveness(c) is None
    for index in acked:
        assert all(n.term_at(index) in (c.checker.applied[index][0], None) for n in c.live())


@pytest.mark.parametrize(("seed", "unreliable"), [(s, s % 2 == 1) for s in seeds(8)])
def test_c7_churn_with_concurrent_clients(seed: int, unreliable: bool) -> None:
    """C7: 20 rounds of disconnect/restart/crash with 3 clients: the history is linearizable."""
    faults = Faults(drop_probability=0.1, duplicate_probability=0.05, delay_max_ticks=4)
    c = make_cluster(5, seed, faults=faults if unreliable else Faults(torn_writes=True))
    w = Workload(c, clients=3, ops_every_ticks=2, seed=seed)
    rng = random.Random(seed)
    for _ in range(20):
        roll = rng.random()
        victim = rng.choice(sorted(c.nodes))
        if roll < 0.2:
            c.partition([victim])
        elif roll < 0.7:
            c.heal()
            for p, n in c.nodes.items():
                if not n.alive:
                    c.restart(p)
                    break
        elif roll < 0.9:
            c.crash(victim)
        c.run(7)
    w.finish()
    c.faults = c.network.faults = Faults()
    c.heal_all()
    assert check_liveness(c) is None
    result = check_history(w.history)
    assert result.ok, result


def test_c8_crash_between_commit_and_apply() -> None:
    """C8: a restarted node applies its durable committed entries without waiting for a leader."""
    c = make_cluster(3, seed=28)
    leader = elect(c)
    last = LogIndex(0)
    for seq in range(4):
        last = put(c, leader, "c8", str(seq), seq)
    assert c.run_until(applied_everywhere(last), 2 * ET)
    follower = min(p for p in c.nodes if p != leader)
    durable_commit = c.node(follower).disk.durable.hard_state().commit
    c.partition([follower])
    c.crash(follower)
    c.restart(follower)  # isolated: no leader can tell it anything
    node = c.node(follower)
    assert node.role is Role.FOLLOWER
    assert node.sm.applied_index == durable_commit
    assert node.sm.data == c.node(leader).sm.data or durable_commit < last
    with contextlib.suppress(NotLeader, ProposalDropped):
        put(c, follower, "c8", "x", 99)
        raise AssertionError("an isolated follower accepted a proposal")

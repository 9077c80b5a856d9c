"""Group B of raft-scenarios.md: log replication and commitment (Raft §5.3, §5.4.2, Figure 8)."""

from __future__ import annotations

import contextlib
import random

import pytest

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    Message,
    NotLeader,
    ProposalDropped,
)
from refimpl.sim import Faults, Workload, check_liveness
from refimpl.sim.scenarios import figure8
from refimpl.testing import check_history
from tests.scenarios.support import (
    ET,
    applied_everywhere,
    caught_up,
    check_golden,
    command,
    elect,
    led_by_one_of,
    make_cluster,
    put,
    seeds,
)


def test_b1_basic_agreement() -> None:
    """B1: sequential proposals are applied at consecutive indices, equal to the returned ones."""
    c = make_cluster(3, seed=11)
    leader = elect(c)
    indexes = []
    for seq in range(1, 4):
        index = put(c, leader, "k", str(seq), seq)
        assert not any(n.sm.applied_index >= index for n in c.live()), "applied before proposed"
        assert c.run_until(applied_everywhere(index), 2 * ET)
        indexes.append(index)
    assert indexes == [indexes[0], indexes[0] + 1, indexes[0] + 2]
    for i, seq in zip(indexes, range(1, 4), strict=True):
        assert c.checker.applied[LogIndex(i)][1] == command("k", str(seq), seq)


@pytest.mark.parametrize("seed", seeds(10))
def test_b2_follower_failure_and_catch_up(seed: int) -> None:
    """B2: a disconnected follower misses 4 commits, then catches up in order within 5·ET."""
    c = make_cluster(3, seed)
    leader = elect(c)
    follower = min(p for p in c.nodes if p != leader)
    c.partition([follower])
    last = LogIndex(0)
    for seq in range(4):
        last = put(c, leader, "k", str(seq), seq)
    assert c.run_until(lambda c: c.checker.max_applied >= last, 2 * ET)
    assert c.node(follower).sm.applied_index < last
    c.heal()
    assert c.run_until(lambda c: c.node(follower).sm.applied_index >= last, 5 * ET)
    leader2 = c.leader()
    assert leader2 is not None
    more = [put(c, leader2, "k", str(seq), seq) for seq in (5, 6)]
    assert c.run_until(lambda c: c.all_applied(more[-1]), 2 * ET)


@pytest.mark.parametrize("seed", seeds(10))
def test_b3_no_commit_without_majority(seed: int) -> None:
    """B3: with 3 of 5 followers cut off nothing commits; after heal all agree at that index."""
    c = make_cluster(5, seed)
    leader = elect(c)
    cut = [p for p in c.nodes if p != leader][:3]
    c.partition(*[[p] for p in cut])
    k = put(c, leader, "p", "1", 1)
    c.run(20 * ET)
    assert all(n.sm.applied_index < k for n in c.live())
    c.heal()
    assert check_liveness(c) is None
    terms = {c.node(p).term_at(k) for p in c.nodes}
    assert len(terms) == 1


@pytest.mark.parametrize("seed", seeds(10))
def test_b4_stale_leaders_entries_are_overwritten(seed: int) -> None:
    """B4: a deposed leader's uncommitted entries are replaced by the new leader's (Figure 7)."""
    c = make_cluster(3, seed)
    l1 = elect(c)
    c.partition([l1])
    first = put(c, l1, "stale", "0", 100)
    for seq in (101, 102):
        put(c, l1, "stale", str(seq), seq)
    assert c.run_until(lambda c: (new := c.leader()) is not None and new != l1, 10 * ET)
    l2 = c.leader()
    assert l2 is not None
    assert c.run_until(lambda c: c.checker.max_applied >= first, 5 * ET)
    c.heal()
    assert check_liveness(c) is None
    stale = {command("stale", str(s), s) for s in (100, 101, 102)}
    assert not any(data in stale for _, data in c.checker.applied.values())
    logs = {
        tuple(e.term for e in n.raft.log_entries(LogIndex(2), LogIndex(first + 3)))
        for n in c.live()
        if n.raft
    }
    assert len(logs) == 1


def test_b5_figure_8_scripted() -> None:
    """B5: a leader never commits an entry of an older term by counting replicas (Figure 8)."""
    run = figure8(seed=5)
    c, two, old = run.cluster, run.index, run.old_term
    (_, a), (_, b), (_, c_stage), _ = run.stages
    assert (two, old) in a[PeerId(2)] and (two, old) not in a[PeerId(3)]
    assert [t for i, t in b[PeerId(5)] if i == two] != [old], "S5 wrote another entry there"
    assert all((two, old) in c_stage[PeerId(p)] for p in (1, 2, 3, 4)), "on a majority"
    assert run.commit_after_c < two, "S1 must not commit an old-term entry by counting replicas"
    assert c.checker.applied[two][0] != old, "the old entry was overwritten, never applied"
    check_golden(c, "b5_figure8", [f"index {two} applied with term {c.checker.applied[two][0]}"])


@pytest.mark.parametrize("seed", seeds(15))
def test_b5_figure_8_randomized(seed: int) -> None:
    """B5 randomized: propose, wait 0–13 ticks, crash the leader, restart when < 3 up; then heal."""
    c = make_cluster(5, seed, pre_vote=False, check_quorum=False)
    rng = random.Random(seed)
    for step in range(60):
        leader = c.leader()
        if leader is not None:
            with contextlib.suppress(NotLeader, ProposalDropped):
                put(c, leader, "f8", str(step), step)
        c.run(rng.randint(0, 13) if rng.random() > 0.1 else rng.randint(0, ET // 2))
        leader = c.leader()
        if leader is not None and rng.random() < 0.5:
            c.crash(leader, torn=True)
        if len(c.live()) < 3:
            down = [p for p, n in c.nodes.items() if not n.alive]
            c.restart(rng.choice(down))
    c.heal_all()
    assert check_liveness(c) is None


def test_b6_fast_backup_over_long_divergent_logs() -> None:
    """B6: term-skipping nextIndex backup converges with few rejections per follower."""
    c = make_cluster(5, seed=6, pre_vote=False, check_quorum=False)
    rejections: dict[int, int] = {}

    def count(m: Message) -> bool:
        if isinstance(m, AppendEntriesResponse) and not m.success:
            rejections[m.src] = rejections.get(m.src, 0) + 1
        return False

    c.intercept = count
    leader = elect(c)
    seq = 0
    for _ in range(2):  # MIT Backup: minority leader piles up, majority moves on, swap
        others = [p for p in sorted(c.nodes) if p != leader]
        c.partition([leader, others[0]], others[1:])
        for _ in range(50):
            seq += 1
            put(c, leader, "b", str(seq), seq)
        c.run(2)
        assert c.run_until(led_by_one_of(others[1:]), 10 * ET)
        new = c.leader()
        assert new is not None
        for _ in range(50):
            seq += 1
            put(c, new, "b", str(seq), seq)
        assert c.run_until(caught_up(new), 5 * ET)
        leader = new
    rejections.clear()
    c.heal()
    assert check_liveness(c) is None
    terms = {
        e.term for n in c.live() if n.raft for e in n.raft.log_entries(LogIndex(2), LogIndex(400))
    }
    assert max(rejections.values(), default=0) <= 2 * len(terms) + 5, rejections
    logs = {n.disk.last_index() for n in c.live()}
    assert len(logs) == 1


def test_b7_duplicated_reordered_and_stale_append_entries() -> None:
    """B7: stale, duplicated AppendEntries never truncate matching entries (raftos #26)."""
    c = make_cluster(3, seed=7)
    leader = elect(c)
    follower = min(p for p in c.nodes if p != leader)
    c.partition([follower])  # only our hand-made messages reach the follower now
    c.transcript.heartbeats = True
    node = c.node(follower)
    term, last = node.term, node.disk.last_index()
    e1 = Entry(term, LogIndex(last + 1), EntryKind.NORMAL, command("k", "1", 1))
    e2 = Entry(term, LogIndex(last + 2), EntryKind.NORMAL, command("k", "2", 2))

    def ae(entries: tuple[Entry, ...], commit: int, prev: int = last) -> AppendEntries:
        prev_term = node.term_at(LogIndex(prev))
        assert prev_term is not None
        return AppendEntries(
            term, PeerId(leader), follower, LogIndex(prev), prev_term, entries, LogIndex(commit)
        )

    c.deliver(ae((e1, e2), commit=last))
    assert node.disk.last_index() == e2.index
    c.deliver(ae((e1,), commit=last))  # stale and shorter: must not truncate e2
    assert node.disk.last_index() == e2.index and node.term_at(e2.index) == term
    before = (node.disk.last_index(), node.commit)
    c.deliver(ae((e1, e2), commit=last))  # a duplicate is idempotent
    assert (node.disk.last_index(), node.commit) == before
    c.deliver(ae((), commit=e2.index + 10, prev=e1.index))  # commit only what this AE proved
    assert node.commit == e1.index
    check_golden(c, "b7_stale_append_entries")


@pytest.mark.parametrize("seed", seeds(8))
def test_b8_unreliable_network_agreement(seed: int) -> None:
    """B8: with drops, duplicates and reordering, acknowledged ops apply once, in one order."""
    faults = Faults(drop_probability=0.1, duplicate_probability=0.05, delay_max_ticks=4)
    c = make_cluster(5, seed, faults=faults)
    w = Workload(c, clients=5, ops_every_ticks=3, seed=seed)
    c.run(50 * 5)
    w.finish()
    c.faults = c.network.faults = Faults()
    c.heal_all()
    assert check_liveness(c) is None
    assert check_history(w.history).ok
    assert w.committed > 20


def test_b8_message_efficiency_on_a_reliable_network() -> None:
    """B8: 10 proposals use few AppendEntries and each command reaches a follower about once."""
    c = make_cluster(3, seed=8)
    leader = elect(c)
    c.run(3)
    carried: list[AppendEntries] = []

    def record(m: Message) -> bool:
        if isinstance(m, AppendEntries) and m.entries:
            carried.append(m)
        return False

    c.intercept = record
    last = LogIndex(0)
    for seq in range(10):
        last = put(c, leader, "e", str(seq), seq)
        c.tick()
    assert c.run_until(lambda c: c.all_applied(last), ET)
    assert len(carried) <= (10 + 1 + 3) * 3
    copies = sum(len(m.entries) for m in carried)
    assert copies <= 10 * 2 * 1.1


def test_b8_flow_control_bounds_inflight_appends() -> None:
    """B8: a leader never has more than max_inflight unacknowledged appends to a follower."""
    c = make_cluster(3, seed=9, max_inflight_messages=4, max_entries_per_message=1)
    leader = elect(c)
    slow = min(p for p in c.nodes if p != leader)
    c.run(3)
    c.cut(slow, leader, both_ways=False)  # the follower's acks are lost
    sent: list[AppendEntries] = []

    def record(m: Message) -> bool:
        if isinstance(m, AppendEntries) and m.dst == slow and m.entries:
            sent.append(m)
        return False

    c.intercept = record
    for seq in range(20):
        put(c, leader, "s", str(seq), seq)
        c.tick()
    assert 1 <= len(sent) <= 4, len(sent)

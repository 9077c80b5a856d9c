"""Group D of raft-scenarios.md: snapshots and log compaction (Raft §7)."""

from __future__ import annotations

import contextlib

import pytest

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import (
    ConfChange,
    ConfChangeKind,
    InstallSnapshot,
    Message,
    NotLeader,
    ProposalDropped,
)
from refimpl.sim import Faults, check_liveness
from tests.scenarios.support import ET, applied_everywhere, elect, make_cluster, put, seeds

EVERY = 10
"""The application snapshots every 10 applied entries."""


def test_d1_bounded_log() -> None:
    """D1: with snapshots every 10 entries the durable log stays small; no InstallSnapshot."""
    c = make_cluster(3, seed=31, snapshot_every_entries=EVERY)
    snapshots: list[Message] = []

    def record(m: Message) -> bool:
        if isinstance(m, InstallSnapshot):
            snapshots.append(m)
        return False

    c.intercept = record
    leader = elect(c)
    longest = 0
    for seq in range(300):
        index = put(c, leader, "d1", str(seq), seq)
        c.tick()
        for n in c.live():
            durable = n.disk.durable
            longest = max(longest, durable.last_index() - durable.first_index() + 1)
    assert c.run_until(applied_everywhere(index), ET)
    assert longest <= 2 * EVERY + 5, longest
    assert snapshots == []


@pytest.mark.parametrize(
    ("seed", "mode"), [(s, m) for s in seeds(4) for m in ("cut", "crash", "lossy")]
)
def test_d2_install_snapshot_to_a_lagging_follower(seed: int, mode: str) -> None:
    """D2: a follower behind the leader's compacted log gets a snapshot, then the suffix."""
    faults = Faults(drop_probability=0.1, duplicate_probability=0.05, delay_max_ticks=4)
    c = make_cluster(
        3, seed, snapshot_every_entries=EVERY, faults=faults if mode == "lossy" else None
    )
    leader = elect(c, 20 * ET)
    lagging = min(p for p in c.nodes if p != leader)
    if mode == "crash":
        c.crash(lagging)
    else:
        c.partition([lagging])
    for seq in range(4 * EVERY):
        leader = c.leader() or leader
        with contextlib.suppress(NotLeader, ProposalDropped):  # a lossy network may depose it
            put(c, leader, "d2", str(seq), seq)
        c.tick()
    c.run(2 * ET)
    assert c.node(leader).disk.first_index() > c.node(lagging).disk.last_index() + 1
    if mode == "crash":
        c.restart(lagging)
    c.heal()
    c.faults = c.network.faults = Faults()
    assert check_liveness(c) is None
    assert c.node(lagging).last_snapshot_index > 0, "caught up through a snapshot"
    assert c.node(lagging).sm.data == c.node(leader).sm.data


def test_d3_stale_and_duplicate_snapshots_do_not_roll_back() -> None:
    """D3: an old or repeated InstallSnapshot never rolls the follower's applied state back."""
    c = make_cluster(3, seed=33, snapshot_every_entries=EVERY)
    captured: list[InstallSnapshot] = []

    def record(m: Message) -> bool:
        if isinstance(m, InstallSnapshot):
            captured.append(m)
        return False

    c.intercept = record
    leader = elect(c)
    lagging = min(p for p in c.nodes if p != leader)
    c.partition([lagging])
    for seq in range(3 * EVERY):
        put(c, leader, "d3", str(seq), seq)
        c.tick()
    c.heal()
    assert c.run_until(lambda c: bool(captured), 5 * ET)
    for seq in range(3 * EVERY, 5 * EVERY):
        put(c, leader, "d3", str(seq), seq)
        c.tick()
    assert c.run_until(applied_everywhere(c.node(leader).disk.last_index()), 5 * ET)
    before = c.node(lagging).sm.applied_index
    for m in (captured[0], captured[0]):  # old and duplicated
        c.deliver(m)
    assert c.node(lagging).sm.applied_index >= before  # G3 also checks "no rollback"
    assert c.node(lagging).disk.last_index() >= before


def test_d4_snapshot_persistence_across_whole_cluster_restarts() -> None:
    """D4: snapshots survive crash-all/restart-all twice; indices never decrease."""
    c = make_cluster(3, seed=34, snapshot_every_entries=EVERY)
    leader = elect(c)
    last = LogIndex(0)
    for seq in range(2 * EVERY + 3):
        last = put(c, leader, "d4", str(seq), seq)
        c.tick()
    assert c.run_until(applied_everywhere(last), 2 * ET)
    for round_ in range(2):
        snaps = {p: n.disk.durable.snapshot() for p, n in c.nodes.items()}
        for p in list(c.nodes):
            c.crash(p)
        for p in list(c.nodes):
            c.restart(p)
            snap = snaps[p]
            assert snap is not None and c.node(p).sm.applied_index >= snap.meta.last_index
        leader = elect(c)
        new = put(c, leader, "d4", f"after-{round_}", 100 + round_)
        assert new > last
        assert c.run_until(applied_everywhere(new), 2 * ET)
        last = new
    assert c.node(leader).sm.data["d4"] == "after-1"


def test_d5_new_node_joins_from_a_compacted_log() -> None:
    """D5: a joiner is brought up by a snapshot carrying the membership; restarts agree too."""
    c = make_cluster(4, seed=35, voters=[1, 2, 3], snapshot_every_entries=2)
    leader = elect(c)
    for seq in range(10):
        put(c, leader, "d5", str(seq), seq)
        c.tick()
    c.run(ET)
    assert c.node(leader).disk.first_index() > 3, "the leader compacted its log"
    index = c.propose_conf_change(leader, ConfChange(ConfChangeKind.ADD_LEARNER, PeerId(4)))
    assert c.run_until(applied_everywhere(index), 5 * ET)
    assert c.run_until(lambda c: c.node(4).sm.applied_index >= index, 5 * ET)
    joiner = c.node(4)
    assert joiner.last_snapshot_index > 0, "the joiner started from a snapshot"
    views = {frozenset(n.raft.membership.learners) for n in c.live() if n.raft}
    assert views == {frozenset({4})}
    assert joiner.sm.data == c.node(leader).sm.data
    follower = min(p for p in (1, 2, 3) if p != leader)
    c.crash(follower)
    c.restart(follower)  # its view = its snapshot's membership + the committed log suffix
    assert c.run_until(lambda c: c.node(follower).sm.applied_index >= index, 2 * ET)
    raft = c.node(follower).raft
    assert raft is not None and raft.membership.learners == frozenset({4})

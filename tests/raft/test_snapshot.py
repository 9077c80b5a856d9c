"""Log compaction and InstallSnapshot (Raft §7; spec "Raft", scenarios D1-D5)."""

from __future__ import annotations

import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    ConfChange,
    ConfChangeKind,
    InstallSnapshot,
    InstallSnapshotResponse,
    InvalidRequestError,
    Membership,
    Snapshot,
    SnapshotMeta,
)
from tests.raft.pump import Pump

P = PeerId


def _committed_cluster(n: int = 3, proposals: int = 10) -> tuple[Pump, PeerId]:
    pump = Pump.create(n, check_quorum=False)
    leader = pump.elect()
    for k in range(proposals):
        pump.nodes[leader].propose(f"v{k}".encode())
    pump.tick(3)
    return pump, leader


def test_compact_builds_snapshot_with_membership_and_storage_drops_prefix() -> None:
    """Raft §7: the snapshot records last included index/term and the configuration."""
    pump, leader = _committed_cluster()
    node = pump.nodes[leader]
    snap = pump.compact(leader)
    assert snap.meta.last_index == node.applied_index
    assert snap.meta.last_term == node.term
    assert snap.meta.membership == node.membership
    assert pump.storages[leader].first_index() == snap.meta.last_index + 1
    with pytest.raises(InvalidRequestError):
        node.compact(LogIndex(node.applied_index + 1), b"")
    with pytest.raises(InvalidRequestError):
        node.compact(snap.meta.last_index, b"")


def test_snapshot_membership_is_the_one_as_of_its_index() -> None:
    """A snapshot taken below a later conf change carries the older membership."""
    pump, leader = _committed_cluster()
    node = pump.nodes[leader]
    before = node.applied_index
    node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(9)))
    pump.tick(3)
    assert P(9) in node.membership.learners
    snap = node.compact(before, b"")
    assert P(9) not in snap.meta.membership.learners


def test_lagging_follower_receives_snapshot_then_the_suffix() -> None:
    """Scenario D2: a follower behind the leader's first index gets InstallSnapshot, then
    contiguous entries; it applies the snapshot followed by the rest, in order."""
    pump, leader = _committed_cluster(proposals=2)
    lag = next(p for p in pump.nodes if p != leader)
    pump.isolate(lag)
    for k in range(20):
        pump.nodes[leader].propose(f"w{k}".encode())
    pump.tick(3)
    snap = pump.compact(leader)
    pump.nodes[leader].propose(b"after-snapshot")
    pump.tick(1)
    pump.heal()
    pump.tick(5)
    assert any(isinstance(m, InstallSnapshot) and m.dst == lag for m in pump.delivered)
    assert [s.meta.last_index for s in pump.snapshots[lag]] == [snap.meta.last_index]
    applied = [e.index for e in pump.applied[lag]]
    tail = [i for i in applied if i > snap.meta.last_index]
    assert tail == list(range(snap.meta.last_index + 1, pump.nodes[leader].commit_index + 1))
    assert pump.normal_data(lag)[-1] == b"after-snapshot"
    assert pump.nodes[lag].applied_index == pump.nodes[leader].applied_index


def test_stale_snapshot_is_ignored() -> None:
    """Scenario D3: an InstallSnapshot at or below the commit index never rolls back state."""
    pump, leader = _committed_cluster()
    f = next(p for p in pump.nodes if p != leader)
    node = pump.nodes[f]
    commit, last = node.commit_index, node.last_log_index
    old = Snapshot(SnapshotMeta(LogIndex(3), node.term, node.membership), b"old")
    node.step(InstallSnapshot(node.term, leader, f, old))
    rd = node.ready()
    assert rd.snapshot is None
    assert (node.commit_index, node.last_log_index) == (commit, last)
    assert InstallSnapshotResponse(node.term, f, leader, commit) in rd.messages


def test_snapshot_matching_the_log_keeps_the_suffix() -> None:
    """Scenario D3: when the log already holds the snapshot's last entry, the suffix stays."""
    pump = Pump.create(2, check_quorum=False)
    leader = pump.elect()
    pump.tick(2)
    f = next(p for p in pump.nodes if p != leader)
    pump.cut |= {(f, leader)}  # the follower gets entries but its answers are lost
    for k in range(6):
        pump.nodes[leader].propose(f"v{k}".encode())
    pump.deliver_all()
    node = pump.nodes[f]
    last = node.last_log_index
    mid = LogIndex(last - 2)
    snap = Snapshot(SnapshotMeta(mid, node.term, node.membership), b"x")
    before = node.log_entries(LogIndex(mid + 1), LogIndex(last + 1))
    node.step(InstallSnapshot(node.term, leader, f, snap))
    assert node.commit_index == mid
    assert node.last_log_index == last
    assert node.log_entries(LogIndex(mid + 1), LogIndex(last + 1)) == before
    assert node.ready().snapshot is None


def test_joiner_restart_sees_snapshot_membership_plus_log_suffix() -> None:
    """Scenario D5: after a restart, membership = snapshot config + conf changes in the log."""
    pump, leader = _committed_cluster()
    pump.compact(leader)
    node = pump.nodes[leader]
    node.propose_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, P(9)))
    pump.tick(3)
    for pid in list(pump.nodes):
        pump.restart(pid)
    pump.deliver_all()
    expected = Membership(frozenset(map(P, [1, 2, 3])), frozenset({P(9)}))
    assert all(n.membership == expected for n in pump.nodes.values())
    assert pump.nodes[leader].applied_index == pump.nodes[leader].commit_index


def test_restart_resumes_from_snapshot_index() -> None:
    """Scenario D4: after a crash the applied index restarts at the durable snapshot index."""
    pump, leader = _committed_cluster()
    snap = pump.compact(leader)
    pump.nodes[leader].propose(b"later")
    pump.tick(2)
    node = pump.restart(leader)
    assert node.applied_index == snap.meta.last_index
    assert node.term == pump.storages[leader].hard_state().term
    assert node.log_entries(LogIndex(0), LogIndex(999))[0].index == snap.meta.last_index + 1
    assert Term(0) < node.last_log_term


def test_compaction_due_after_threshold_applied_entries() -> None:
    """snapshot_threshold_entries tells the driver when to compact (0 = never)."""
    pump = Pump.create(1, snapshot_threshold_entries=5)
    leader = pump.elect()
    node = pump.nodes[leader]
    due = [node.compaction_due]
    for k in range(5):
        node.propose(bytes([k]))
    pump.tick(2)
    due.append(node.compaction_due)
    pump.compact(leader)
    due.append(node.compaction_due)
    assert due == [False, True, False]
    assert not Pump.create(1).nodes[P(1)].compaction_due

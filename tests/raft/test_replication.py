"""Log replication: consistency check, conflict truncation, commitment, flow control and
batching (Raft §5.3, §5.4.2; spec "Raft")."""

from __future__ import annotations

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    Membership,
    MemoryStorage,
    Role,
)
from tests.raft.pump import Pump

P = PeerId


def _appends(pump: Pump, dst: PeerId | None = None) -> list[AppendEntries]:
    return [
        m
        for m in pump.delivered
        if isinstance(m, AppendEntries) and m.entries and (dst is None or m.dst == dst)
    ]


def test_new_leader_appends_a_noop_of_its_term() -> None:
    """Raft §8: a new leader commits a blank entry of its own term at the start of its term."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    last = node.log_entries(LogIndex(node.last_log_index), LogIndex(node.last_log_index + 1))
    assert last[0].kind is EntryKind.NOOP and last[0].term == node.term
    assert all(n.commit_index == node.last_log_index for n in pump.nodes.values())


def test_proposals_are_applied_in_order_on_every_node_at_their_indices() -> None:
    """Scenario B1: each proposal's returned index is the index where every node applies it."""
    pump = Pump.create(3)
    leader = pump.elect()
    indices = [pump.nodes[leader].propose(f"c{k}".encode()) for k in range(3)]
    pump.tick(3)
    for pid in pump.nodes:
        by_index = {e.index: e.data for e in pump.applied[pid]}
        assert [by_index[i] for i in indices] == [b"c0", b"c1", b"c2"]
        applied = [e.index for e in pump.applied[pid]]
        assert applied == sorted(applied) and len(set(applied)) == len(applied)


def test_no_commit_without_majority() -> None:
    """Scenario B3: with 3 of 5 followers cut off nothing new is committed or applied."""
    pump = Pump.create(5)
    leader = pump.elect()
    followers = [p for p in pump.nodes if p != leader]
    pump.tick(2)
    for pid in followers[:3]:
        pump.isolate(pid)
    commit = pump.nodes[leader].commit_index
    k = pump.nodes[leader].propose(b"p")
    pump.tick(15)
    assert all(n.commit_index < k for n in pump.nodes.values())
    assert pump.nodes[leader].commit_index == commit


def test_lagging_follower_catches_up_after_reconnect() -> None:
    """Scenario B2: a reconnected follower receives and applies the entries it missed."""
    pump = Pump.create(3, check_quorum=False)
    leader = pump.elect()
    lag = next(p for p in pump.nodes if p != leader)
    pump.isolate(lag)
    for k in range(4):
        pump.nodes[leader].propose(f"x{k}".encode())
    pump.tick(3)
    pump.heal()
    pump.tick(5)
    assert pump.normal_data(lag) == [b"x0", b"x1", b"x2", b"x3"]


def test_stale_leader_entries_are_overwritten() -> None:
    """Scenario B4 / Raft §5.3: uncommitted entries of a deposed leader are truncated."""
    pump = Pump.create(3)
    old = pump.elect()
    pump.tick(2)
    pump.isolate(old)
    for k in range(3):
        pump.nodes[old].propose(f"stale{k}".encode())
    pump.deliver_all()
    pump.tick(40)
    new = pump.leader()
    assert new is not None and new != old
    pump.nodes[new].propose(b"fresh")
    pump.heal()
    pump.tick(5)
    assert all(b"stale0" not in pump.normal_data(p) for p in pump.nodes)
    assert all(pump.normal_data(p) == [b"fresh"] for p in pump.nodes)
    a, b = pump.nodes[old], pump.nodes[new]
    assert a.log_entries(LogIndex(2), LogIndex(99)) == b.log_entries(LogIndex(2), LogIndex(99))


def _storage_with_terms(terms: list[int], term: int) -> MemoryStorage:
    """A bootstrapped 2-voter storage whose log holds entries 2.. with the given terms."""
    storage = MemoryStorage.bootstrap(Membership(frozenset({P(1), P(2)})))
    entries = [Entry(Term(t), LogIndex(2 + k), EntryKind.NORMAL, b"") for k, t in enumerate(terms)]
    storage.append(entries)
    storage.set_hard_state(HardState(Term(term), None, LogIndex(1)))
    return storage


def test_fast_backup_skips_a_whole_conflicting_term_per_round_trip() -> None:
    """Reject hints (term skipping) find the divergence point of 50 stale entries in one
    rejection instead of 50 (Raft §5.3, "the leader can decrement nextIndex to bypass all of
    the conflicting entries in that term")."""
    pump = Pump({}, {})
    pump.add_node(P(1), _storage_with_terms([1] + [2] * 38, term=2), check_quorum=False)
    pump.add_node(P(2), _storage_with_terms([1] * 51, term=2), check_quorum=False)
    # Heartbeats would short-cut the search (they probe at the follower's commit index);
    # drop them so only the leader's probes at nextIndex - 1 reach the follower.
    pump.drop = lambda m: isinstance(m, AppendEntries) and not m.entries
    pump.campaign(P(1))
    assert pump.nodes[P(1)].role is Role.LEADER
    rejections = [
        m for m in pump.delivered if isinstance(m, AppendEntriesResponse) and not m.success
    ]
    assert len(rejections) == 1
    assert rejections[0].reject_hint_index == 40 and rejections[0].reject_hint_term == 1
    follower, leader = pump.nodes[P(2)], pump.nodes[P(1)]
    assert follower.last_log_index == leader.last_log_index == 41
    assert follower.log_entries(LogIndex(2), LogIndex(42)) == leader.log_entries(
        LogIndex(2), LogIndex(42)
    )


def test_follower_commit_limited_to_entries_proven_by_the_request() -> None:
    """Figure 2 step 5: a heartbeat does not commit unverified entries of the follower."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    f = next(p for p in pump.nodes if p != leader)
    node = pump.nodes[f]
    term = node.term
    last = node.last_log_index
    node.step(AppendEntries(term, leader, f, last, term, (), LogIndex(last + 50)))
    assert node.commit_index == last


def test_flow_control_caps_entries_per_message_and_inflight_messages() -> None:
    """A limit on everything: at most max_entries per message, max_inflight unacked messages."""
    pump = Pump.create(3, max_entries_per_message=2, max_inflight_messages=3)
    leader = pump.elect()
    pump.tick(2)
    follower = next(p for p in pump.nodes if p != leader)
    node = pump.nodes[leader]
    for k in range(20):
        node.propose(bytes([k]))
    rd = node.ready()
    to_follower = [m for m in rd.messages if isinstance(m, AppendEntries) and m.dst == follower]
    assert len(to_follower) == 3
    assert all(len(m.entries) == 2 for m in to_follower)
    node.advance(rd)
    pump.storages[leader].append(rd.entries)
    pump.inflight.extend(rd.messages)
    pump.deliver_all()
    assert all(len(m.entries) <= 2 for m in _appends(pump))
    assert pump.nodes[follower].last_log_index == node.last_log_index


def test_proposals_between_readies_are_batched_into_one_append() -> None:
    """Proposals made before the driver's next Ready travel in one AppendEntries per follower."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    for k in range(5):
        node.propose(bytes([k]))
    rd = node.ready()
    appends = [m for m in rd.messages if isinstance(m, AppendEntries) and m.entries]
    assert len(appends) == 2
    assert all(len(m.entries) == 5 for m in appends)


def test_probe_sends_one_message_until_answered() -> None:
    """Probe state: at most one entry-carrying AppendEntries until the follower answers."""
    pump = Pump.create(3)
    lost: list[AppendEntries] = []
    lag = P(3)

    def swallow(m: object) -> bool:
        if isinstance(m, AppendEntries) and m.dst == lag:
            lost.append(m)
            return True
        return False

    pump.drop = swallow
    pump.tick(40)
    leader = pump.leader()
    assert leader is not None and leader != lag
    node = pump.nodes[leader]
    for _ in range(8):
        for k in range(5):
            node.propose(bytes([k]))
        pump.tick(1)
    assert len([m for m in lost if m.entries]) == 1
    match, nxt = node.progress()[lag]
    assert match == 0 and nxt > match


def test_duplicate_append_is_idempotent_at_the_node() -> None:
    """A duplicated AppendEntries changes nothing the second time (idempotent receiver)."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    f = next(p for p in pump.nodes if p != leader)
    pump.nodes[leader].propose(b"a")
    pump.nodes[leader].propose(b"b")
    pump.deliver_all()
    appends = _appends(pump, f)
    node = pump.nodes[f]
    before = node.log_entries(LogIndex(1), LogIndex(99))
    node.step(appends[-1])
    assert node.log_entries(LogIndex(1), LogIndex(99)) == before
    assert node.role is Role.FOLLOWER


def test_leader_ignores_stale_rejection() -> None:
    """A rejection answering an older probe must not move nextIndex backwards."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    f = next(p for p in pump.nodes if p != leader)
    node = pump.nodes[leader]
    before = node.progress()[f]
    node.step(AppendEntriesResponse(node.term, f, leader, False, LogIndex(0), LogIndex(0), Term(0)))
    assert node.progress()[f] == before

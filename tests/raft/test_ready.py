"""The Ready/advance contract: persist before send, sync only when needed, one batch at a time
(refimpl.raft.core module docstring; Raft Figure 2 "respond after persisting")."""

from __future__ import annotations

import random

import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    ROLE_TRANSITIONS,
    AppendEntries,
    AppendEntriesResponse,
    ConfigError,
    Entry,
    EntryKind,
    Membership,
    MemoryStorage,
    RaftConfig,
    RaftNode,
    RequestVote,
    RequestVoteResponse,
    Role,
)
from tests.raft.pump import Pump

P = PeerId


def _node(pid: int = 2, **options: object) -> RaftNode:
    storage = MemoryStorage.bootstrap(Membership(frozenset({P(1), P(2), P(3)})))
    return RaftNode(RaftConfig(id=P(pid), **options), storage, random.Random(pid))  # type: ignore[arg-type]


def test_append_ack_travels_in_the_same_ready_as_the_entries_it_acknowledges() -> None:
    """Persist before send: the ack is in the Ready that also carries the entries to persist,
    and that Ready demands a sync."""
    node = _node()
    entry = Entry(Term(1), LogIndex(2), EntryKind.NORMAL, b"x")
    node.step(AppendEntries(Term(1), P(1), P(2), LogIndex(1), Term(0), (entry,), LogIndex(1)))
    rd = node.ready()
    assert rd.entries == (entry,)
    assert rd.must_sync
    assert rd.messages == (
        AppendEntriesResponse(Term(1), P(2), P(1), True, LogIndex(2), LogIndex(0), Term(0)),
    )


def test_vote_travels_with_the_hard_state_recording_it() -> None:
    """A granted vote leaves only together with the hard state that records votedFor."""
    node = _node(check_quorum=False)
    node.step(RequestVote(Term(4), P(3), P(2), LogIndex(1), Term(0), pre_vote=False))
    rd = node.ready()
    assert rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.voted_for) == (4, P(3))
    assert rd.must_sync
    assert rd.messages == (RequestVoteResponse(Term(4), P(2), P(3), True, False),)


def test_pre_vote_changes_no_persistent_state() -> None:
    """PreVote: granting a pre-vote changes neither term nor vote (nothing to persist)."""
    node = _node(check_quorum=False)
    node.step(RequestVote(Term(4), P(3), P(2), LogIndex(1), Term(0), pre_vote=True))
    rd = node.ready()
    assert rd.hard_state is None and not rd.must_sync
    assert rd.messages == (RequestVoteResponse(Term(4), P(2), P(3), True, True),)
    assert node.term == 0


def test_heartbeat_only_ready_does_not_sync() -> None:
    """A Ready with only messages and a commit change needs no fsync."""
    pump = Pump.create(3)
    leader = pump.elect()
    pump.tick(2)
    node = pump.nodes[leader]
    node.tick()
    rd = node.ready()
    assert rd.messages and not rd.entries and not rd.must_sync


def test_one_ready_at_a_time() -> None:
    """has_ready() is False while a Ready is outstanding; advance() needs that very Ready."""
    node = _node()
    node.step(RequestVote(Term(4), P(3), P(2), LogIndex(1), Term(0), pre_vote=False))
    rd = node.ready()
    assert not node.has_ready()
    with pytest.raises(AssertionError):
        node.ready()
    node.advance(rd)
    assert not node.has_ready()


def test_misdelivered_message_is_ignored() -> None:
    """A message addressed to another peer changes nothing."""
    node = _node()
    node.step(RequestVote(Term(9), P(3), P(1), LogIndex(1), Term(0), pre_vote=False))
    assert node.term == 0 and not node.has_ready()


def test_every_role_change_is_in_the_transition_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Roles change only along ROLE_TRANSITIONS (the table the book draws)."""
    seen: set[tuple[Role, Role]] = set()
    original = RaftNode._set_role

    def recording(self: RaftNode, role: Role) -> None:
        seen.add((self.role, role))
        original(self, role)

    monkeypatch.setattr(RaftNode, "_set_role", recording)
    for seed in range(5):
        pump = Pump.create(5, seed=seed, pre_vote=seed % 2 == 0)
        for step in range(300):
            if step % 50 == 10:
                pump.isolate(pump.leader() or P(1))
            if step % 50 == 40:
                pump.heal()
            pump.tick()
    assert seen <= ROLE_TRANSITIONS
    assert {(Role.CANDIDATE, Role.LEADER), (Role.LEADER, Role.FOLLOWER)} <= seen
    assert (Role.LEADER, Role.CANDIDATE) not in ROLE_TRANSITIONS


def test_config_limits_are_validated() -> None:
    """A limit on everything: out-of-range settings raise ConfigError with a clear message."""
    with pytest.raises(ConfigError):
        RaftConfig(id=P(1), election_timeout_ticks=1, heartbeat_interval_ticks=1)
    with pytest.raises(ConfigError):
        RaftConfig(id=P(1), max_inflight_messages=0)
    with pytest.raises(ConfigError):
        RaftConfig(id=P(0))

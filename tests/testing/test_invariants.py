"""The Raft invariant checkers (G1–G5 of raft-scenarios.md) flag each broken rule."""

from __future__ import annotations

import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    AppendEntriesResponse,
    Entry,
    EntryKind,
    HardState,
    RequestVote,
    RequestVoteResponse,
)
from refimpl.testing import DurableView, InvariantViolationError, RaftInvariants


def _e(index: int, term: int, data: bytes = b"x") -> Entry:
    return Entry(Term(term), LogIndex(index), EntryKind.NORMAL, data)


def _view(term: int, vote: int | None, last: int, log_term: int = 1) -> DurableView:
    def term_at(i: LogIndex) -> Term | None:
        return Term(log_term) if 0 < i <= last else None

    return DurableView(
        HardState(Term(term), None if vote is None else PeerId(vote), LogIndex(0)),
        LogIndex(last),
        LogIndex(0),
        term_at,
        term_at,
    )


def test_g2_same_index_and_term_means_same_entry() -> None:
    """G2 (log matching): two different entries with one (index, term) are a violation."""
    checker = RaftInvariants()
    checker.on_append(PeerId(1), [_e(2, 1, b"a"), _e(3, 1, b"b")], Term(0))
    checker.on_append(PeerId(2), [_e(2, 1, b"a")], Term(0))
    with pytest.raises(InvariantViolationError, match="G2"):
        checker.on_append(PeerId(3), [_e(3, 1, b"other")], Term(1))


def test_g2_same_entry_must_follow_the_same_term() -> None:
    """G2: an (index, term) entry preceded by a different term elsewhere breaks the prefix rule."""
    checker = RaftInvariants()
    checker.on_append(PeerId(1), [_e(3, 2)], Term(1))
    with pytest.raises(InvariantViolationError, match="follows term"):
        checker.on_append(PeerId(2), [_e(3, 2)], Term(2))


def test_g3_apply_agreement_and_order() -> None:
    """G3: nodes apply consecutive indices and agree on each index."""
    checker = RaftInvariants(strict=False)
    checker.on_apply(PeerId(1), _e(2, 1, b"a"))
    checker.on_apply(PeerId(1), _e(4, 1, b"c"))  # skipped 3
    checker.on_apply(PeerId(2), _e(2, 1, b"different"))
    assert [v.rule for v in checker.violations] == ["G3", "G3"]


def test_g4_new_leader_must_hold_applied_entries() -> None:
    """G4: a leader whose log lacks the highest applied entry is a violation."""
    checker = RaftInvariants()
    checker.on_apply(PeerId(1), _e(5, 2))
    checker.on_become_leader(PeerId(2), Term(3), LogIndex(0), lambda i: Term(2))
    with pytest.raises(InvariantViolationError, match="G4"):
        checker.on_become_leader(PeerId(3), Term(4), LogIndex(0), lambda i: Term(1))


def test_g5_vote_and_ack_need_the_disk_behind_them() -> None:
    """G5: a grant without the durable vote, or an ack beyond the durable log, is a violation."""
    checker = RaftInvariants(strict=False)
    grant = RequestVoteResponse(Term(2), PeerId(1), PeerId(3), granted=True, pre_vote=False)
    checker.on_send(PeerId(1), grant, _view(term=2, vote=3, last=1))  # fine
    checker.on_send(PeerId(1), grant, _view(term=2, vote=None, last=1))
    ack = AppendEntriesResponse(
        Term(2), PeerId(1), PeerId(3), True, LogIndex(5), LogIndex(0), Term(0)
    )
    checker.on_send(PeerId(1), ack, _view(term=2, vote=3, last=4))
    ask = RequestVote(Term(3), PeerId(1), PeerId(2), LogIndex(1), Term(1), pre_vote=False)
    checker.on_send(PeerId(1), ask, _view(term=2, vote=3, last=5))
    assert [v.rule for v in checker.violations] == ["G5", "G5", "G5"]


def test_g5_vote_never_changes_within_a_term_and_terms_never_go_back() -> None:
    """G5: the durable vote is fixed for a term; a restart never lowers the term."""
    checker = RaftInvariants(strict=False)
    checker.on_sync(PeerId(1), HardState(Term(2), PeerId(1), LogIndex(0)))
    checker.on_sync(PeerId(1), HardState(Term(2), PeerId(3), LogIndex(0)))
    checker.on_sync(PeerId(1), HardState(Term(1), None, LogIndex(0)))
    ask = RequestVote(Term(5), PeerId(1), PeerId(2), LogIndex(1), Term(1), pre_vote=False)
    checker.on_send(PeerId(1), ask, _view(term=5, vote=1, last=1))
    checker.on_restart(PeerId(1), Term(4), LogIndex(3), LogIndex(1))
    assert [v.rule for v in checker.violations] == ["G5", "G5", "G5"]


def test_g5_a_superseded_older_term_answer_is_exempt() -> None:
    """G5: an answer of an older term than the durable one is superseded, not a broken promise."""
    checker = RaftInvariants(strict=False)
    ack = AppendEntriesResponse(
        Term(2), PeerId(1), PeerId(3), True, LogIndex(5), LogIndex(0), Term(0)
    )
    grant = RequestVoteResponse(Term(2), PeerId(1), PeerId(3), granted=True, pre_vote=False)
    for m in (ack, grant):
        checker.on_send(PeerId(1), m, _view(term=3, vote=None, last=3))
    assert checker.violations == []

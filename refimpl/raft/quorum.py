"""Majorities: counting votes and acknowledgements among the voters.

Rules: only voters count; learners and strangers are ignored; a majority of
``n`` voters is ``n // 2 + 1``. The commit-index variant lives in
:mod:`refimpl.raft.rules` (an exercise); this module holds the tallies.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Set

from refimpl.ids import PeerId
from refimpl.raft.rules import quorum_commit_index


class VoteResult(enum.Enum):
    """Outcome of an election tally so far."""

    PENDING = 1
    WON = 2
    LOST = 3


def majority(voter_count: int) -> int:
    """How many of ``voter_count`` voters form a majority."""
    return voter_count // 2 + 1


def vote_result(votes: Mapping[PeerId, bool], voters: frozenset[PeerId]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    need = majority(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(acks: Set[PeerId], voters: frozenset[PeerId]) -> bool:
    """True when the acknowledging peers include a majority of ``voters``."""
    return len(acks & voters) >= majority(len(voters)) if voters else False


__all__ = ["VoteResult", "has_quorum", "majority", "quorum_commit_index", "vote_result"]

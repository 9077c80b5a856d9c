"""The four decisions at the heart of Raft, as small pure functions.

Rules: nothing here keeps state or reads anything but its arguments; the core
(:mod:`refimpl.raft.core`) calls these functions for every decision they name,
so replacing one of them (an exercise) changes the behaviour of the whole node.

* :func:`quorum_commit_index` -- the largest index stored on a majority of voters;
* :func:`vote_granted` -- may this peer give its vote (Raft §5.2, §5.4.1)?
* :func:`append_entries_to_log` -- a follower's consistency check, conflict
  truncation and commit update for one AppendEntries (Raft §5.3, Figure 2);
* :func:`leader_commit_index` -- the leader advances its commit only to an entry
  of its *current* term stored on a majority (Raft §5.4.2, Figure 8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft.messages import Entry, direct_init


def quorum_commit_index(
    match_indexes: Mapping[PeerId, LogIndex], voters: frozenset[PeerId]
) -> LogIndex:
    """Return the largest index ``i`` such that a majority of ``voters`` have ``match >= i``.

    ``match_indexes`` maps a peer to the highest log index known to be stored
    on it; voters missing from the map count as 0 and peers that are not
    voters (learners) are ignored. With no voters the answer is 0.
    Example: voters {1,2,3} with matches {1: 5, 2: 3, 3: 1} give 3
    (peers 1 and 2, a majority, store index 3).
    """
    # [exercise: quorum-commit] begin
    if not voters:
        return LogIndex(0)
    matches = sorted((match_indexes.get(v, LogIndex(0)) for v in voters), reverse=True)
    # The (n//2)-th largest value (0-based) is held by n//2 + 1 voters: a majority.
    return matches[len(matches) // 2]
    # [exercise: quorum-commit] end


def vote_granted(
    *,
    request_term: Term,
    current_term: Term,
    voted_for: PeerId | None,
    candidate: PeerId,
    candidate_last_index: LogIndex,
    candidate_last_term: Term,
    own_last_index: LogIndex,
    own_last_term: Term,
) -> bool:
    """Decide whether to grant ``candidate`` a vote for ``request_term``.

    ``current_term`` and ``voted_for`` are this peer's persisted state (for a
    real vote the caller has already moved to ``request_term``, resetting
    ``voted_for``; for a pre-vote it has not, so ``request_term`` may exceed
    ``current_term``). Grant iff all hold:

    1. ``request_term >= current_term`` (never vote in an old term);
    2. in ``current_term`` this peer has not voted for somebody else
       (``voted_for`` is None or the candidate), unless ``request_term`` is newer;
    3. the candidate's log is at least as up-to-date as ours (Raft §5.4.1):
       its last term is higher, or the last terms are equal and its last index
       is at least ours.
    """
    # [exercise: request-vote] begin
    if request_term < current_term:
        return False
    if request_term == current_term and voted_for is not None and voted_for != candidate:
        return False
    return (candidate_last_term, candidate_last_index) >= (own_last_term, own_last_index)
    # [exercise: request-vote] end


class AppendLog(Protocol):
    """The slice of a log that :func:`append_entries_to_log` needs."""

    def last_index(self) -> LogIndex:
        """Index of the last entry (0 for an empty log)."""
        ...

    def term_at(self, index: LogIndex) -> Term | None:
        """Term of the entry at ``index``; 0 for index 0; None if there is no such entry."""
        ...

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        """Delete every entry with index >= ``entries[0].index``, then append ``entries``."""
        ...


@direct_init
@dataclass(frozen=True, slots=True)
class AppendOutcome:
    """What a follower answers to an AppendEntries, and its new commit index."""

    success: bool
    match_index: LogIndex
    """On success: the last index this request proved to match the leader's log."""
    commit_index: LogIndex


def append_entries_to_log(
    log: AppendLog,
    *,
    prev_log_index: LogIndex,
    prev_log_term: Term,
    entries: Sequence[Entry],
    leader_commit: LogIndex,
    commit_index: LogIndex,
) -> AppendOutcome:
    """Apply one AppendEntries to a follower's ``log`` (Raft Figure 2, receiver steps 2-5).

    ``entries`` are contiguous and start at ``prev_log_index + 1``;
    ``commit_index`` is the follower's commit index before the request.

    1. Consistency check: if the log has no entry at ``prev_log_index`` with term
       ``prev_log_term``, change nothing and return
       ``AppendOutcome(False, prev_log_index, commit_index)``.
    2. Walk ``entries``: an entry already in the log with the same term is a
       duplicate and is left alone; at the first entry that is missing, or whose
       index holds a *different* term, truncate the log there and append that
       entry and all following ones (``log.truncate_and_append``). Never truncate
       when there is no conflict: a delayed, shorter copy of a request must not
       erase entries a longer copy already appended.
    3. The request proves the log matches the leader's up to
       ``last_new = prev_log_index + len(entries)``; the new commit index is
       ``max(commit_index, min(leader_commit, last_new))``.
    4. Return ``AppendOutcome(True, last_new, new_commit)``.
    """
    # [exercise: append-entries] begin
    if prev_log_index > log.last_index() or log.term_at(prev_log_index) != prev_log_term:
        return AppendOutcome(False, prev_log_index, commit_index)
    for position, entry in enumerate(entries):
        existing = log.term_at(entry.index)
        if existing != entry.term:
            log.truncate_and_append(entries[position:])
            break
    last_new = LogIndex(prev_log_index + len(entries))
    new_commit = max(commit_index, min(leader_commit, last_new))
    return AppendOutcome(True, last_new, LogIndex(new_commit))
    # [exercise: append-entries] end


def leader_commit_index(
    match_indexes: Mapping[PeerId, LogIndex],
    voters: frozenset[PeerId],
    current_term: Term,
    commit_index: LogIndex,
    term_at: Callable[[LogIndex], Term | None],
) -> LogIndex:
    """The leader's new commit index (never lower than ``commit_index``).

    Let ``q = quorum_commit_index(match_indexes, voters)``, the largest index
    stored on a majority of voters. The leader may commit ``q`` only if
    ``q > commit_index`` and the entry at ``q`` has term ``current_term``
    (``term_at(q)``): entries of earlier terms are committed only indirectly,
    by committing a later entry of the current term (Raft §5.4.2, Figure 8).
    Otherwise the commit index stays ``commit_index``.
    """
    # [exercise: leader-commit-rule] begin
    candidate = quorum_commit_index(match_indexes, voters)
    if candidate > commit_index and term_at(candidate) == current_term:
        return candidate
    return commit_index
    # [exercise: leader-commit-rule] end

"""The pure decision functions of refimpl.raft.rules, against dumb oracles (Raft paper §5)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given
from hypothesis import strategies as st

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    AppendOutcome,
    Entry,
    EntryKind,
    append_entries_to_log,
    leader_commit_index,
    quorum_commit_index,
    vote_granted,
)

P = PeerId
I = LogIndex  # noqa: E741
T = Term


def counting_quorum_index(matches: dict[PeerId, LogIndex], voters: frozenset[PeerId]) -> int:
    """Dumb oracle: the largest i such that more than half the voters have match >= i."""
    if not voters:
        return 0
    best = 0
    for i in range(max([0, *matches.values()]) + 1):
        if sum(1 for v in voters if matches.get(v, 0) >= i) * 2 > len(voters):
            best = i
    return best


@given(
    st.dictionaries(st.integers(1, 9).map(P), st.integers(0, 30).map(I), max_size=9),
    st.frozensets(st.integers(1, 9).map(P), max_size=9),
)
def test_quorum_commit_index_matches_counting_oracle(
    matches: dict[PeerId, LogIndex], voters: frozenset[PeerId]
) -> None:
    """Raft §5.3: an index is committed once stored on a majority; compare with plain counting."""
    assert quorum_commit_index(matches, voters) == counting_quorum_index(matches, voters)


def test_quorum_commit_index_ignores_learners_and_counts_missing_voters_as_zero() -> None:
    """Only voters count toward a majority (learners never do)."""
    matches = {P(1): I(9), P(2): I(9), P(3): I(1), P(4): I(9)}
    assert quorum_commit_index(matches, frozenset({P(1), P(3), P(5)})) == 1
    assert (
        quorum_commit_index({P(1): I(4), P(2): I(6), P(3): I(5)}, frozenset(map(P, [1, 2, 3]))) == 5
    )


def _vote(**overrides: object) -> bool:
    args: dict[str, object] = {
        "request_term": T(5),
        "current_term": T(5),
        "voted_for": None,
        "candidate": P(2),
        "candidate_last_index": I(10),
        "candidate_last_term": T(4),
        "own_last_index": I(10),
        "own_last_term": T(4),
    }
    args.update(overrides)
    return vote_granted(**args)  # type: ignore[arg-type]


def test_vote_granted_to_equally_up_to_date_candidate() -> None:
    """Raft §5.4.1: a log as up-to-date as ours (same last term and index) earns the vote."""
    assert _vote() is True


def test_vote_refused_for_stale_term() -> None:
    """Raft Figure 2 RequestVote step 1: reply false if term < currentTerm."""
    assert _vote(request_term=T(4)) is False


def test_vote_refused_when_already_voted_for_another_in_term() -> None:
    """Raft Figure 2: grant only if votedFor is null or candidateId."""
    assert _vote(voted_for=P(3)) is False
    assert _vote(voted_for=P(2)) is True


def test_pre_vote_for_newer_term_ignores_old_vote() -> None:
    """A pre-vote asks about a future term, in which we have not voted yet."""
    assert _vote(request_term=T(6), voted_for=P(3)) is True


def test_vote_up_to_date_check_compares_last_term_then_index() -> None:
    """Raft §5.4.1: higher last term wins; equal terms, the longer log wins."""
    assert _vote(candidate_last_term=T(3), candidate_last_index=I(99)) is False
    assert _vote(candidate_last_term=T(5), candidate_last_index=I(1)) is True
    assert _vote(candidate_last_index=I(9)) is False
    assert _vote(candidate_last_index=I(11)) is True


class ListLog:
    """A list-backed AppendLog: ``terms[i]`` is the term at index i + 1."""

    def __init__(self, terms: Sequence[int]) -> None:
        self.log = [Entry(T(t), I(i + 1), EntryKind.NORMAL, b"") for i, t in enumerate(terms)]
        self.truncations = 0

    def last_index(self) -> LogIndex:
        return I(len(self.log))

    def term_at(self, index: LogIndex) -> Term | None:
        if index == 0:
            return T(0)
        return self.log[index - 1].term if index <= len(self.log) else None

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        self.truncations += 1
        del self.log[entries[0].index - 1 :]
        self.log.extend(entries)

    def terms(self) -> list[int]:
        return [e.term for e in self.log]


def _entries(prev: int, terms: Sequence[int]) -> list[Entry]:
    return [Entry(T(t), I(prev + 1 + k), EntryKind.NORMAL, b"") for k, t in enumerate(terms)]


def _append(  # noqa: PLR0917 -- a terse helper for many table-like calls
    log: ListLog,
    prev: int,
    prev_term: int,
    terms: Sequence[int],
    leader_commit: int,
    commit: int = 0,
) -> AppendOutcome:
    return append_entries_to_log(
        log,
        prev_log_index=I(prev),
        prev_log_term=T(prev_term),
        entries=_entries(prev, terms),
        leader_commit=I(leader_commit),
        commit_index=I(commit),
    )


def test_append_rejects_missing_prev_entry_and_wrong_prev_term() -> None:
    """Raft Figure 2 AppendEntries step 2: reply false if log doesn't contain prevLogIndex/Term."""
    log = ListLog([1, 1, 2])
    assert not _append(log, 5, 2, [3], 9).success
    assert not _append(log, 3, 1, [3], 9).success
    assert log.terms() == [1, 1, 2]


def test_append_truncates_only_on_conflict() -> None:
    """Raft Figure 2 step 3: delete the existing entry and all that follow it on a term conflict."""
    log = ListLog([1, 1, 2, 2, 2])
    out = _append(log, 2, 1, [3, 3], 0)
    assert out.success and out.match_index == 4
    assert log.terms() == [1, 1, 3, 3]


def test_append_duplicate_shorter_request_does_not_truncate() -> None:
    """A delayed AE(prev=0, [e1]) after AE(prev=0, [e1, e2]) must not erase e2 (idempotence)."""
    log = ListLog([])
    _append(log, 0, 0, [1, 1], 0)
    out = _append(log, 0, 0, [1], 0)
    assert log.terms() == [1, 1]
    assert log.truncations == 1
    assert out.match_index == 1


def test_follower_commit_is_min_of_leader_commit_and_last_matched_index() -> None:
    """Raft Figure 2 step 5: commitIndex = min(leaderCommit, index of last new entry)."""
    log = ListLog([1, 1, 1, 1, 1, 7, 7])  # entries 6, 7 are from a stale term, unverified
    out = _append(log, 3, 1, [], 10)
    assert out.commit_index == 3  # not 7: only entries up to 3 were proven to match
    out = _append(log, 3, 1, [1], 2, commit=1)
    assert out.commit_index == 2
    assert _append(log, 3, 1, [], 0, commit=3).commit_index == 3  # never goes back


@given(
    st.lists(st.integers(1, 4), max_size=8).map(sorted),
    st.integers(0, 9),
    st.lists(st.integers(1, 5), max_size=6).map(sorted),
    st.integers(0, 15),
)
def test_append_matches_list_oracle(
    existing: list[int], prev: int, new_terms: list[int], leader_commit: int
) -> None:
    """Log append/truncate against a list oracle: success iff prev matches; the result is the
    old log with the leader's entries written over it, cut at the first conflict only."""
    log = ListLog(existing)
    prev_term = existing[prev - 1] if 0 < prev <= len(existing) else min(prev, 1)
    new_terms = [max(t, prev_term) for t in new_terms]
    out = _append(log, prev, prev_term, new_terms, leader_commit)
    if prev > len(existing):
        assert not out.success and log.terms() == existing
        return
    assert out.success
    expected = list(existing)
    for k, t in enumerate(new_terms):
        i = prev + k
        if i < len(expected) and expected[i] == t:
            continue
        expected = expected[:i] + new_terms[k:]
        break
    assert log.terms() == expected
    assert out.match_index == prev + len(new_terms)
    assert out.commit_index == min(leader_commit, prev + len(new_terms))


def test_leader_commits_only_current_term_entries_figure_8() -> None:
    """Raft §5.4.2 / Figure 8: a majority-replicated entry of an older term is not committed."""
    terms = {1: T(1), 2: T(2), 3: T(4)}
    voters = frozenset(map(P, [1, 2, 3, 4, 5]))
    matches = {P(1): I(3), P(2): I(2), P(3): I(2), P(4): I(1), P(5): I(1)}
    assert leader_commit_index(matches, voters, T(4), I(1), terms.get) == 1
    matches[P(2)] = I(3)
    matches[P(3)] = I(3)
    assert leader_commit_index(matches, voters, T(4), I(1), terms.get) == 3


def test_leader_commit_never_decreases() -> None:
    """The commit index is monotonic."""
    voters = frozenset(map(P, [1, 2, 3]))
    matches = {P(1): I(2), P(2): I(1), P(3): I(1)}
    assert leader_commit_index(matches, voters, T(1), I(5), lambda _i: T(1)) == 5

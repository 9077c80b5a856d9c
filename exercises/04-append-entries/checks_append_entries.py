"""Checks for exercise 04: a follower's AppendEntries (consistency check, truncation, commit).

The rule (Raft Figure 2, receiver steps 2-5; refimpl/raft/rules.py ``append_entries_to_log``):
refuse unless the log holds ``prev_log_index`` with ``prev_log_term``; skip entries already
present with the same term; at the first missing or conflicting entry truncate there and
append the rest (never truncate without a conflict: a delayed shorter copy must not erase
entries); the new commit index is ``max(commit_index, min(leader_commit, prev_log_index +
len(entries)))``. Graded against a list-based oracle, on named cases, and by seeded
simulations with dropped, duplicated, delayed and reordered messages and crashes.
"""

from collections.abc import Sequence

from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from exercises._grading.api import CheckFailedError, Exercise, grading_settings
from exercises._grading.raftsim import check_simulations
from refimpl.ids import LogIndex, Term
from refimpl.raft import rules
from refimpl.raft.messages import Entry, EntryKind
from refimpl.sim import Faults, SimOptions

EXERCISE = Exercise(
    marker="append-entries",
    title="AppendEntries: consistency check, conflict truncation, commit index",
    book="book/raft_replication.md (A proposal's journey)",
)


def entry(index: int, term: int, who: str) -> Entry:
    return Entry(Term(term), LogIndex(index), EntryKind.NORMAL, f"{who}{index}/{term}".encode())


class ListLog:
    """The simplest log there is: a Python list; index i lives at position i - 1."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = list(entries)
        self.truncations = 0

    def last_index(self) -> LogIndex:
        return LogIndex(len(self.entries))

    def term_at(self, index: LogIndex) -> Term | None:
        if index == 0:
            return Term(0)
        return self.entries[index - 1].term if 1 <= index <= len(self.entries) else None

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        assert entries, "truncate_and_append needs at least one entry"
        first = entries[0].index
        assert 1 <= first <= len(self.entries) + 1, (
            f"a gap: log ends at {len(self.entries)}, entries start at {first}"
        )
        del self.entries[first - 1 :]
        self.entries.extend(entries)
        self.truncations += 1

    def show(self) -> str:
        return "[" + ", ".join(f"{e.index}/{e.term}" for e in self.entries) + "]"


Case = tuple[list[Entry], int, int, list[Entry], int, int]
"""(follower log, prev_log_index, prev_log_term, entries, leader_commit, commit_index)."""


def oracle(case: Case) -> tuple[tuple[bool, int, int], list[Entry]]:
    """(success, match_index, commit_index) and the follower's log afterwards."""
    log, prev_index, prev_term, entries, leader_commit, commit = case
    terms = [0] + [e.term for e in log]
    if prev_index >= len(terms) or terms[prev_index] != prev_term:
        return (False, prev_index, commit), log
    new = list(log)
    for k, e in enumerate(entries):
        if e.index <= len(new) and new[e.index - 1].term == e.term:
            continue
        new = new[: e.index - 1] + entries[k:]
        break
    last_new = prev_index + len(entries)
    return (True, last_new, max(commit, min(leader_commit, last_new))), new


def _ask(case: Case) -> None:
    log_entries, prev_index, prev_term, entries, leader_commit, commit = case
    log = ListLog(log_entries)
    request = (
        f"follower log {log.show()}; AppendEntries(prev={prev_index}/{prev_term}, "
        f"entries={ListLog(entries).show()}, leader_commit={leader_commit}), commit_index={commit}"
    )
    if currently_in_test_context():
        note(request)
    out = rules.append_entries_to_log(
        log,
        prev_log_index=LogIndex(prev_index),
        prev_log_term=Term(prev_term),
        entries=entries,
        leader_commit=LogIndex(leader_commit),
        commit_index=LogIndex(commit),
    )
    (ok, match, new_commit), want_log = oracle(case)
    got = (out.success, out.match_index, out.commit_index)
    if got != (ok, match, new_commit):
        raise CheckFailedError(
            f"{request}\n  returned (success, match_index, commit_index) = {got}, "
            f"the rule gives {(ok, match, new_commit)}"
        )
    if log.entries != want_log:
        raise CheckFailedError(
            f"{request}\n  left the log as {log.show()} "
            f"(data {[e.data.decode() for e in log.entries]}), the rule gives "
            f"{ListLog(want_log).show()} (data {[e.data.decode() for e in want_log]})"
        )


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[Entry], int, int, list[Entry], int, int]:
    """A follower log and an AppendEntries that often overlaps or conflicts with it."""
    log_terms = sorted(draw(st.lists(st.integers(1, 3), max_size=6)))
    log = [entry(i + 1, t, "f") for i, t in enumerate(log_terms)]
    prev_index = draw(st.integers(0, len(log) + 1))
    real = [0, *log_terms][prev_index] if prev_index <= len(log) else 0
    prev_term = draw(st.sampled_from([real, real, real + 1]))
    new_terms = sorted(draw(st.lists(st.integers(max(prev_term, 1), 4), max_size=4)))
    entries = [entry(prev_index + 1 + k, t, "L") for k, t in enumerate(new_terms)]
    # A leader's entry that the follower already has (same index and term) has the same data.
    by_key = {(e.index, e.term): e for e in log}
    entries = [by_key.get((e.index, e.term), e) for e in entries]
    return (
        log,
        prev_index,
        prev_term,
        entries,
        draw(st.integers(0, 9)),
        draw(st.integers(0, len(log))),
    )


@EXERCISE.check(points=4)
@grading_settings(max_examples=150)
@given(requests())
def matches_the_rule_on_random_requests(
    case: tuple[list[Entry], int, int, list[Entry], int, int],
) -> None:
    """The outcome and the follower's log agree with a list-based oracle (hypothesis)."""
    _ask(case)


@EXERCISE.check(points=2)
def conflicts_truncate_and_duplicates_do_not() -> None:
    """A conflicting suffix is replaced; a delayed shorter copy of a request erases nothing."""
    log = [entry(1, 1, "f"), entry(2, 1, "f"), entry(3, 2, "f"), entry(4, 2, "f")]
    _ask((log, 2, 1, [entry(3, 3, "L")], 0, 0))  # conflict at 3: the log becomes [1/1, 2/1, 3/3]
    same = [entry(1, 1, "f"), entry(2, 1, "f"), entry(3, 1, "f"), entry(4, 1, "f")]
    _ask((same, 1, 1, [same[1]], 0, 0))  # a stale copy that only carries entry 2: keep 3 and 4
    _ask((same, 4, 1, [], 0, 0))  # a heartbeat


@EXERCISE.check(points=2)
def the_consistency_check_and_the_commit_index() -> None:
    """A missing or mismatching previous entry is refused; commit stops at the last new entry."""
    log = [entry(1, 1, "f"), entry(2, 2, "f"), entry(3, 2, "f"), entry(4, 2, "f"), entry(5, 2, "f")]
    _ask((log, 7, 2, [entry(8, 2, "L")], 9, 1))  # prev beyond the log
    _ask((log, 2, 1, [entry(3, 3, "L")], 9, 1))  # prev term mismatch
    _ask((log, 2, 2, [], 9, 1))  # matches up to 2 only: commit 2, not 5
    _ask((log, 1, 1, [log[1]], 9, 3))  # commit never goes down


@EXERCISE.check(points=4, timeout_s=60)
def simulated_clusters_stay_safe() -> None:
    """Seeded 3-peer runs with message loss, duplication, reordering, partitions and crashes."""
    check_simulations(range(6), SimOptions(peers=3, ticks=300), Faults.everything())

"""Checks for exercise 05: the leader's commit rule (current-term entries only, Figure 8).

The rule (Raft §5.4.2 and Figure 8; refimpl/raft/rules.py ``leader_commit_index``): let ``q``
be the largest index stored on a majority of voters; the leader moves its commit index to
``q`` only if ``q`` is above the current commit index *and* the entry at ``q`` is of the
leader's current term. Entries of older terms are committed only indirectly, when a later
entry of the current term is. The commit index never goes down. Graded against a counting
oracle, on the Figure 8 situation, and by seeded simulations under every fault.
"""

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from exercises._grading.raftsim import (
    check_simulations,
    figure_8_scenario,
    minority_commit_scenario,
)
from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import rules
from refimpl.sim import Faults, SimOptions

EXERCISE = Exercise(
    marker="leader-commit-rule",
    title="The leader's commit rule (current-term entries only, Figure 8)",
    book="book/raft_replication.md (Figure 8, replayed)",
)


def majority_index(match: dict[int, int], voters: set[int]) -> int:
    best = 0
    for candidate in {0, *match.values()}:
        if voters and sum(1 for v in voters if match.get(v, 0) >= candidate) > len(voters) // 2:
            best = max(best, candidate)
    return best


def oracle(
    match: dict[int, int], voters: set[int], term: int, commit: int, log_terms: list[int]
) -> int:
    q = majority_index(match, voters)
    if q > commit and q <= len(log_terms) and log_terms[q - 1] == term:
        return q
    return commit


def _term_at(log_terms: list[int]) -> Callable[[LogIndex], Term | None]:
    def term_at(index: LogIndex) -> Term | None:
        if index == 0:
            return Term(0)
        return Term(log_terms[index - 1]) if 1 <= index <= len(log_terms) else None

    return term_at


def _ask(
    match: dict[int, int], voters: set[int], term: int, commit: int, log_terms: list[int]
) -> None:
    got = rules.leader_commit_index(
        {PeerId(p): LogIndex(i) for p, i in match.items()},
        frozenset(PeerId(v) for v in voters),
        Term(term),
        LogIndex(commit),
        _term_at(log_terms),
    )
    want = oracle(match, voters, term, commit, log_terms)
    if got != want:
        log = ", ".join(f"{i}/{t}" for i, t in enumerate(log_terms, start=1))
        raise CheckFailedError(
            f"leader_commit_index(match_indexes={match}, voters={sorted(voters)}, current_term={term}, "
            f"commit_index={commit}) with the leader's log [{log}] (index/term) returned {got}, "
            f"the rule gives {want}"
        )


@st.composite
def leaders(draw: st.DrawFn) -> tuple[dict[int, int], set[int], int, int, list[int]]:
    """A leader's log (terms non-decreasing), its followers' match indexes, term and commit."""
    log_terms = sorted(draw(st.lists(st.integers(1, 4), min_size=1, max_size=7)))
    term = draw(st.sampled_from([log_terms[-1], log_terms[-1] + 1]))
    voters = draw(st.sets(st.integers(1, 5), min_size=1, max_size=5))
    match = {p: draw(st.integers(0, len(log_terms))) for p in range(1, 7) if draw(st.booleans())}
    return match, voters, term, draw(st.integers(0, len(log_terms))), log_terms


@EXERCISE.check(points=3)
@grading_settings(max_examples=100)
@given(leaders())
def matches_the_rule_on_random_leaders(
    case: tuple[dict[int, int], set[int], int, int, list[int]],
) -> None:
    """Random logs, match indexes, terms and commit indexes give the oracle's answer (hypothesis)."""
    _ask(*case)


@EXERCISE.check(points=3)
def figure_8_old_term_entries_wait() -> None:
    """Figure 8: an entry of term 2 on a majority is not committed by a term-4 leader until a term-4 entry is."""
    voters = {1, 2, 3, 4, 5}
    log = [1, 2, 4]  # index 1 term 1, index 2 term 2 (from an old leader), index 3 term 4 (ours)
    _ask({1: 3, 2: 2, 3: 2, 4: 1, 5: 1}, voters, 4, 1, log)  # 2/2 on a majority: wait
    _ask({1: 3, 2: 3, 3: 3, 4: 1, 5: 1}, voters, 4, 1, log)  # 3/4 on a majority: commit 3
    _ask({1: 3, 2: 2, 3: 2, 4: 2, 5: 1}, voters, 4, 3, log)  # never go back down
    _ask(
        {1: 3, 2: 2, 3: 2, 4: 1, 5: 1}, voters, 4, 3, [1, 4, 4]
    )  # not even to a current-term entry


@EXERCISE.check(points=2, timeout_s=30)
def a_minority_leader_does_not_commit() -> None:
    """Over 6 seeds: a leader partitioned with one follower (of 4 or 5 peers) never commits its entry."""
    smallest_failure(range(6), minority_commit_scenario, keep_looking=2)


@EXERCISE.check(points=2, timeout_s=30)
def figure_8_in_the_simulator() -> None:
    """The Figure 8 schedule over 4 seeds: the old-term entry is never committed, never lost."""
    smallest_failure(range(4), figure_8_scenario, keep_looking=1)


@EXERCISE.check(points=2, timeout_s=60)
def simulated_clusters_stay_safe() -> None:
    """Seeded 5-peer runs with every fault on: safety after every event, liveness after heal."""
    check_simulations(range(6), SimOptions(peers=5, ticks=300), Faults.everything())

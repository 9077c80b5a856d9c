"""Checks for exercise 02: the quorum commit index.

The rule (Raft §5.3 and §5.4; refimpl/raft/rules.py ``quorum_commit_index``): the answer is the
largest index ``i`` such that a majority of the *voters* (``n // 2 + 1`` of ``n``) have a match
index of at least ``i``; voters missing from the map count as 0, learners are ignored, and no
voters gives 0. Graded against a counting oracle, on named cases (even-sized clusters,
learners), and by seeded simulations of 5-peer clusters under every fault, where the leader's
commit uses your function.
"""

from hypothesis import given
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from exercises._grading.raftsim import check_simulations, minority_commit_scenario
from refimpl.ids import LogIndex, PeerId
from refimpl.raft import rules
from refimpl.sim import Faults, SimOptions

EXERCISE = Exercise(
    marker="quorum-commit",
    title="The quorum commit index",
    book="book/raft_replication.md (When is an entry committed?)",
)


def oracle(match: dict[int, int], voters: set[int]) -> int:
    """Try every candidate index and count the voters that store it."""
    best = 0
    for candidate in {0, *match.values()}:
        stored = sum(1 for v in voters if match.get(v, 0) >= candidate)
        if voters and stored >= len(voters) // 2 + 1:
            best = max(best, candidate)
    return best


def _ask(match: dict[int, int], voters: set[int]) -> None:
    got = rules.quorum_commit_index(
        {PeerId(p): LogIndex(i) for p, i in match.items()}, frozenset(PeerId(v) for v in voters)
    )
    want = oracle(match, voters)
    if got != want:
        raise CheckFailedError(
            f"quorum_commit_index(match_indexes={match}, voters={sorted(voters)}) returned {got}, "
            f"the largest index stored on a majority ({len(voters) // 2 + 1} of {len(voters)}) is {want}"
        )


@EXERCISE.check(points=3)
@grading_settings(max_examples=150)
@given(
    st.dictionaries(st.integers(1, 8), st.integers(0, 9), max_size=8),
    st.sets(st.integers(1, 7), max_size=7),
)
def matches_counting_on_random_clusters(match: dict[int, int], voters: set[int]) -> None:
    """Random voters, learners and match indexes give the counting oracle's answer (hypothesis)."""
    _ask(match, voters)


@EXERCISE.check(points=2)
def majorities_in_small_clusters() -> None:
    """The docstring's example, an even-sized cluster, learners ignored, missing voters, no voters."""
    _ask({1: 5, 2: 3, 3: 1}, {1, 2, 3})
    _ask({1: 5, 2: 5, 3: 3, 4: 1}, {1, 2, 3, 4})  # 3 of 4 needed: index 3
    _ask({1: 4, 2: 9, 3: 9, 4: 1}, {1, 4})  # peers 2 and 3 are learners
    _ask({1: 7}, {1, 2, 3})  # voters 2 and 3 have acknowledged nothing
    _ask({1: 7}, {1})
    _ask({1: 3}, set())


@EXERCISE.check(points=3, timeout_s=60)
def simulated_clusters_stay_safe() -> None:
    """Seeded 5-peer runs with every fault on: committed entries are never lost or changed."""
    check_simulations(range(6), SimOptions(peers=5, ticks=300), Faults.everything())


@EXERCISE.check(points=2, timeout_s=30)
def a_minority_leader_does_not_commit() -> None:
    """Over 6 seeds: a leader partitioned with one follower (of 4 or 5 peers) never commits its entry."""
    smallest_failure(range(6), minority_commit_scenario, keep_looking=2)

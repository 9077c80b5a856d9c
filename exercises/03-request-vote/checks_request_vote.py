"""Checks for exercise 03: RequestVote handling (the vote rule with the up-to-date check).

The rule (Raft §5.2 and §5.4.1; refimpl/raft/rules.py ``vote_granted``): grant a vote only if
the request's term is not older than ours, we have not voted for someone else in this term
(unless the request's term is newer, as for a pre-vote), and the candidate's log is at least as
up-to-date as ours: its last term is higher, or equal with a last index at least ours. Graded
against a plain oracle, on named cases, and by seeded simulations of a 5-peer cluster under
message loss, delays, partitions and crashes with every node using your rule, checking
election safety, leader completeness and the client history after every event.
"""

from hypothesis import given
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from exercises._grading.raftsim import check_simulations, stale_candidate_scenario
from refimpl.ids import PeerId
from refimpl.raft import rules
from refimpl.sim import Faults, SimOptions

EXERCISE = Exercise(
    marker="request-vote",
    title="RequestVote handling (the vote rule, with the log up-to-date check)",
    book="book/raft_election.md (An election, as a transcript)",
)


Request = dict[str, int | None]
"""The arguments of one ``vote_granted`` call, by name (``voted_for`` may be None)."""


def oracle(request: Request) -> bool:
    """The rule, spelled out."""
    r = {k: v for k, v in request.items() if k != "voted_for"}
    if r["request_term"] < r["current_term"]:  # type: ignore[operator]
        return False
    if r["request_term"] == r["current_term"] and request["voted_for"] not in (
        None,
        r["candidate"],
    ):
        return False
    if r["candidate_last_term"] != r["own_last_term"]:
        return r["candidate_last_term"] > r["own_last_term"]  # type: ignore[operator]
    return r["candidate_last_index"] >= r["own_last_index"]  # type: ignore[operator]


NAMES = (
    "request_term",
    "current_term",
    "voted_for",
    "candidate",
    "candidate_last_index",
    "candidate_last_term",
    "own_last_index",
    "own_last_term",
)


def _ask(*values: int | None) -> None:
    request: Request = dict(zip(NAMES, values, strict=True))
    typed = {
        k: (None if v is None else (PeerId(v) if k in ("voted_for", "candidate") else v))
        for k, v in request.items()
    }
    got = rules.vote_granted(**typed)  # type: ignore[arg-type]
    want = oracle(request)
    if got is not want:
        shown = ", ".join(f"{k}={v}" for k, v in request.items())
        raise CheckFailedError(f"vote_granted({shown}) returned {got!r}, the rule gives {want!r}")


terms = st.integers(0, 4)
indexes = st.integers(0, 5)
requests = st.tuples(
    terms,
    terms,
    st.one_of(st.none(), st.integers(1, 3)),
    st.integers(1, 3),
    indexes,
    terms,
    indexes,
    terms,
)


@EXERCISE.check(points=4)
@grading_settings(max_examples=150)
@given(requests)
def matches_the_rule_on_random_requests(request: tuple[int | None, ...]) -> None:
    """The decision agrees with the rule for random terms, votes and logs (hypothesis)."""
    _ask(*request)


@EXERCISE.check(points=2)
def the_log_up_to_date_check() -> None:
    """A longer log with an older last term loses; equal logs win; a shorter log of the same term loses."""
    _ask(3, 3, None, 2, 9, 1, 2, 2)  # longer, but an older last term: refuse
    _ask(3, 3, None, 2, 2, 2, 2, 2)  # the same last entry: grant
    _ask(3, 3, None, 2, 1, 2, 2, 2)  # same term, shorter: refuse
    _ask(3, 3, None, 2, 1, 3, 7, 2)  # newer last term, shorter: grant


@EXERCISE.check(points=2)
def one_vote_per_term() -> None:
    """Never for an old term; not for a second candidate in a term; again for the same one."""
    _ask(2, 3, None, 2, 5, 2, 1, 1)  # an old term
    _ask(3, 3, 1, 2, 5, 2, 1, 1)  # already voted for peer 1 in term 3
    _ask(3, 3, 2, 2, 5, 2, 1, 1)  # a retry from the candidate we voted for
    _ask(4, 3, 1, 2, 5, 2, 1, 1)  # a newer term (a pre-vote): the old vote does not bind


@EXERCISE.check(points=4, timeout_s=60)
def simulated_clusters_stay_safe() -> None:
    """Seeded 5-peer runs with every fault on: one leader per term, leaders hold every applied entry."""
    check_simulations(range(6), SimOptions(peers=5, ticks=300), Faults.everything())


@EXERCISE.check(points=2, timeout_s=30)
def a_stale_peer_cannot_win_an_election() -> None:
    """Scenario A6 over 8 seeds: a peer that missed committed entries times out first and must lose."""
    smallest_failure(range(8), stale_candidate_scenario, keep_looking=2)

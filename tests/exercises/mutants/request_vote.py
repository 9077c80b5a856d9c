"""Wrong vote rules a learner might write."""

from exercises._grading.mutants import Mutant

_UP_TO_DATE = (
    "return (candidate_last_term, candidate_last_index) >= (own_last_term, own_last_index)"
)

MUTANTS = [
    Mutant(
        "no-log-check",
        "grants the vote without the log up-to-date check",
        replace=((_UP_TO_DATE, "return True"),),
    ),
    Mutant(
        "index-before-term",
        "compares the last index before the last term (a longer log always wins)",
        replace=(
            (
                _UP_TO_DATE,
                "return (candidate_last_index, candidate_last_term) >= (own_last_index, own_last_term)",
            ),
        ),
    ),
    Mutant(
        "strictly-newer-log",
        "demands a strictly more up-to-date log, so equal logs never get a vote",
        replace=((_UP_TO_DATE, _UP_TO_DATE.replace(">=", ">")),),
    ),
    Mutant(
        "forgets-voted-for",
        "never looks at voted_for: two candidates can win the same term",
        replace=(
            (
                "if request_term == current_term and voted_for is not None and voted_for != candidate:\n    return False\n",
                "",
            ),
        ),
    ),
    Mutant(
        "old-terms-too",
        "does not refuse requests from an older term",
        replace=(("if request_term < current_term:\n    return False\n", ""),),
    ),
    Mutant(
        "voted-for-binds-newer-terms",
        "applies the one-vote check even when the request's term is newer (breaks pre-vote)",
        replace=(("if request_term == current_term and voted_for", "if voted_for"),),
    ),
    Mutant(
        "only-last-index",
        "compares only the last index, ignoring terms",
        replace=((_UP_TO_DATE, "return candidate_last_index >= own_last_index"),),
    ),
]

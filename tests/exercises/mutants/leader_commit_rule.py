"""Wrong leader commit rules a learner might write."""

from exercises._grading.mutants import Mutant

_TEST = "if candidate > commit_index and term_at(candidate) == current_term:"

MUTANTS = [
    Mutant(
        "old-term-commit",
        "commits an entry of an old term as soon as a majority stores it (the Figure 8 bug)",
        replace=((_TEST, "if candidate > commit_index:"),),
    ),
    Mutant(
        "commit-can-go-down",
        "returns the majority index even when it is below the current commit index",
        replace=((_TEST, "if term_at(candidate) == current_term:"),),
    ),
    Mutant(
        "term-of-commit-index",
        "checks the term of the entry at the old commit index instead of the new one",
        replace=(
            (_TEST, "if candidate > commit_index and term_at(commit_index) == current_term:"),
        ),
    ),
    Mutant(
        "learners-vote",
        "counts every peer with a match index, learners included",
        replace=(
            (
                "quorum_commit_index(match_indexes, voters)",
                "quorum_commit_index(match_indexes, voters | frozenset(match_indexes))",
            ),
        ),
    ),
    Mutant(
        "any-term-up-to-current",
        "accepts any entry whose term is not newer than the current term",
        replace=(
            (_TEST, "if candidate > commit_index and (term_at(candidate) or 0) <= current_term:"),
        ),
    ),
]

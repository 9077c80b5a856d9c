"""Wrong quorum commit indexes a learner might write."""

from exercises._grading.mutants import Mutant

_PICK = "return matches[len(matches) // 2]"

MUTANTS = [
    Mutant(
        "majority-is-half",
        "majority computed as n // 2 voters instead of n // 2 + 1",
        replace=((_PICK, "return matches[max(len(matches) // 2 - 1, 0)]"),),
    ),
    Mutant(
        "ascending-sort",
        "sorts ascending but picks the same position (right only for odd clusters)",
        replace=(("reverse=True", "reverse=False"),),
    ),
    Mutant(
        "learners-count",
        "counts every peer in match_indexes, learners included",
        replace=(("for v in voters", "for v in set(voters) | set(match_indexes)"),),
    ),
    Mutant(
        "missing-voters-ignored",
        "leaves out voters that have no match index yet instead of counting them as 0",
        replace=(("for v in voters)", "for v in voters if v in match_indexes)"),),
    ),
    Mutant(
        "upper-median",
        "takes the upper median of an even cluster",
        replace=((_PICK, "return matches[(len(matches) - 1) // 2]"),),
    ),
    Mutant(
        "leader-only",
        "commits what the best-replicated peer holds (the maximum)",
        replace=((_PICK, "return matches[0]"),),
    ),
]

"""Wrong read-consistency resolutions a learner might write."""

from exercises._grading.mutants import Mutant

_MAJ = "requirement = ReadRequirement(total_replicas, ResolveCondition.MAJORITY)"
_QUO = "requirement = ReadRequirement(total_replicas // 2 + 1, ResolveCondition.ALL)"

MUTANTS = [
    Mutant(
        "majority-quorum-swapped",
        "follows Qdrant's doc comments, which swap majority and quorum",
        replace=((_MAJ, "@@M@@"), (_QUO, _MAJ), ("@@M@@", _QUO)),
    ),
    Mutant(
        "quorum-off-by-one",
        "quorum computed as total // 2, one short of a majority",
        replace=(
            (_QUO, "requirement = ReadRequirement(total_replicas // 2, ResolveCondition.ALL)"),
        ),
    ),
    Mutant(
        "number-not-clamped",
        "an integer consistency is not clamped to the number of replicas",
        replace=(("min(consistency, total_replicas)", "consistency"),),
    ),
    Mutant(
        "majority-keeps-all",
        "majority combines answers by ALL instead of more-than-half",
        replace=((_MAJ, "requirement = ReadRequirement(total_replicas, ResolveCondition.ALL)"),),
    ),
    Mutant(
        "no-availability-check",
        "never checks whether enough replicas can answer",
        replace=(("if available_replicas < requirement.required:", "if False:"),),
    ),
    Mutant(
        "zero-clamped-to-one",
        "clamps consistency 0 up to 1 instead of rejecting it",
        replace=(
            ("if consistency < 1:", "if consistency < -99:"),
            ("min(consistency, total_replicas)", "max(1, min(consistency, total_replicas))"),
        ),
    ),
    Mutant(
        "all-is-quorum",
        "treats 'all' as a quorum",
        replace=(
            (
                "case ReadConsistencyType.ALL:\n        requirement = ReadRequirement(total_replicas, ResolveCondition.ALL)",
                "case ReadConsistencyType.ALL:\n        " + _QUO,
            ),
        ),
    ),
]

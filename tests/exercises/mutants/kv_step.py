"""Wrong model steps a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "get-always-legal",
        "accepts any result for a read",
        replace=(("return (not known or result == state), state", "return True, state"),),
    ),
    Mutant(
        "unknown-get-checked",
        "checks the result of a read even when it was never observed",
        replace=(
            ("return (not known or result == state), state", "return result == state, state"),
        ),
    ),
    Mutant(
        "cas-always-swaps",
        "a compare-and-set that always writes its new value",
        replace=(("return True, (op.value if swapped else state)", "return True, op.value"),),
    ),
    Mutant(
        "cas-result-ignored",
        "never compares a cas's reported result with whether it swapped",
        replace=(
            ("if known and result != swapped:\n            return False, state\n        ", ""),
        ),
    ),
    Mutant(
        "put-keeps-old",
        "a put that is legal but does not change the value",
        replace=(
            (
                "return True, op.value\n    case OpKind.GET",
                "return True, state\n    case OpKind.GET",
            ),
        ),
    ),
    Mutant(
        "cas-inverted",
        "swaps when the value differs from expected",
        replace=(("swapped = state == op.expected", "swapped = state != op.expected"),),
    ),
]

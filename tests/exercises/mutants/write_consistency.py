"""Wrong write-consistency decisions a learner might write."""

from exercises._grading.mutants import Mutant

_SUCCESS = 'return WriteOutcome(True, required, successes, failed, failed, "")'

MUTANTS = [
    Mutant(
        "ack-before-dead-mark",
        "acknowledges the write without marking the failed replicas Dead first",
        replace=((_SUCCESS, 'return WriteOutcome(True, required, successes, failed, (), "")'),),
    ),
    Mutant(
        "factor-not-clamped",
        "requires write_consistency_factor acks even when the shard has fewer replicas",
        replace=(
            (
                "required = min(write_consistency_factor, len(states))",
                "required = write_consistency_factor",
            ),
        ),
    ),
    Mutant(
        "clamped-to-targets",
        "clamps the factor by the replicas that were sent the write, not by all replicas",
        replace=(
            (
                "required = min(write_consistency_factor, len(states))",
                "required = min(write_consistency_factor, len(acks))",
            ),
        ),
    ),
    Mutant(
        "no-active-ack-needed",
        "accepts a write acknowledged only by Partial or Initializing replicas",
        replace=(
            (
                "if not any(ok and is_source_of_truth(states[p]) for p, ok in acks.items()):",
                "if False:",
            ),
        ),
    ),
    Mutant(
        "counts-sent-not-acked",
        "counts every replica the write was sent to as a success",
        replace=(("successes = sum(1 for ok in acks.values() if ok)", "successes = len(acks)"),),
    ),
    Mutant(
        "failure-marks-dead",
        "marks the failed replicas Dead even when the write as a whole failed",
        replace=(
            (
                "return WriteOutcome(False, required, successes, failed, (), reason)",
                "return WriteOutcome(False, required, successes, failed, failed, reason)",
            ),
        ),
    ),
    Mutant(
        "majority-not-factor",
        "uses a majority of replicas instead of the write consistency factor",
        replace=(
            (
                "required = min(write_consistency_factor, len(states))",
                "required = len(states) // 2 + 1",
            ),
        ),
    ),
]

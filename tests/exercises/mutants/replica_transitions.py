"""Wrong replica state transitions a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "illegal-keeps-state",
        "an event the table does not know silently leaves the state unchanged",
        body="return TRANSITIONS.get((state, event), state)  # type: ignore[return-value]",
    ),
    Mutant(
        "key-error",
        "plain dictionary lookup: an illegal event raises KeyError, not IllegalTransition",
        body="return TRANSITIONS[(state, event)]",
    ),
    Mutant(
        "event-only",
        "looks the event up without the current state (the first matching row wins)",
        body="""
            for (_before, known), after in TRANSITIONS.items():
                if known == event:
                    return after
            raise IllegalTransition(state, event)
        """,
    ),
    Mutant(
        "illegal-means-dead",
        "anything unexpected makes the replica Dead",
        body="return TRANSITIONS.get((state, event), ReplicaState.Dead)",
    ),
    Mutant(
        "no-replica-as-dead",
        "treats 'no replica yet' as a Dead replica",
        replace=(
            ("TRANSITIONS[(state, event)]", "TRANSITIONS[(state or ReplicaState.Dead, event)]"),
        ),
    ),
    Mutant(
        "value-error",
        "raises a generic ValueError instead of IllegalTransition",
        replace=(
            (
                "raise IllegalTransition(state, event) from None",
                "raise ValueError(state, event) from None",
            ),
        ),
    ),
]

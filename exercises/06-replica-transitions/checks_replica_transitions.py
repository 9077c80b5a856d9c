"""Checks for exercise 06: replica state transitions, driven by the table.

The rule (spec "Error handling"; refimpl/replication/states.py): a replica changes state only by
an event listed in ``TRANSITIONS``; any other (state, event) pair raises ``IllegalTransition``
naming both. ``None`` is "no replica on this peer yet". Graded on every pair of the product
(states plus ``None``) x events, on the recovery lifecycle, and on random event sequences
compared with a model that reads the table directly.
"""

from hypothesis import given, note
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings
from refimpl.replication import states
from refimpl.replication.states import TRANSITIONS, IllegalTransition, ReplicaEvent, ReplicaState

EXERCISE = Exercise(
    marker="replica-transitions",
    title="Replica state transitions (the table)",
    book="book/cluster_state.md (Replica states as a table)",
)

ALL_STATES: list[ReplicaState | None] = [None, *ReplicaState]


def _name(state: ReplicaState | None) -> str:
    return "None (no replica)" if state is None else state.value


def _expect_illegal(state: ReplicaState | None, event: ReplicaEvent) -> None:
    try:
        got = states.transition(state, event)
    except IllegalTransition as exc:
        if exc.state != state or exc.event != event:
            raise CheckFailedError(
                f"IllegalTransition for ({_name(state)}, {event.value}) carries "
                f"state={exc.state!r}, event={exc.event!r}"
            ) from exc
        return
    raise CheckFailedError(
        f"transition({_name(state)}, {event.value}) returned {_name(got)}; the table has no "
        "such transition, so it must raise IllegalTransition"
    )


@EXERCISE.check(points=3)
def legal_events_go_where_the_table_says() -> None:
    """Every (state, event) pair in TRANSITIONS leads to the table's state."""
    for (before, event), after in TRANSITIONS.items():
        got = states.transition(before, event)
        if got != after:
            raise CheckFailedError(
                f"transition({_name(before)}, {event.value}) returned {_name(got)}, "
                f"the table says {_name(after)}"
            )


@EXERCISE.check(points=3)
def illegal_events_raise_illegal_transition() -> None:
    """Every pair not in the table raises IllegalTransition (with .state and .event set)."""
    for state in ALL_STATES:
        for event in ReplicaEvent:
            if (state, event) not in TRANSITIONS:
                _expect_illegal(state, event)


LIFECYCLE = [
    ReplicaEvent.CREATED,
    ReplicaEvent.ACTIVATED,
    ReplicaEvent.UPDATE_FAILED,
    ReplicaEvent.TRANSFER_STARTED,
    ReplicaEvent.TRANSFER_ABORTED,
    ReplicaEvent.SNAPSHOT_TRANSFER_STARTED,
    ReplicaEvent.SNAPSHOT_APPLIED,
    ReplicaEvent.TRANSFER_FINISHED,
]


@EXERCISE.check(points=2)
def a_dead_replica_recovers_through_a_transfer() -> None:
    """Created, activated, failed, a transfer aborted, a snapshot transfer: back to Active."""
    state: ReplicaState | None = None
    lines = []
    for event in LIFECYCLE:
        after = states.transition(state, event)
        lines.append(f"{_name(state):<20} --{event.value}--> {_name(after)}")
        if after != TRANSITIONS[(state, event)]:
            raise CheckFailedError(
                f"{event.value} from {_name(state)} gave {_name(after)}",
                transcript="\n".join(lines),
            )
        state = after
    assert state is ReplicaState.Active, "the lifecycle ends Active"


@EXERCISE.check(points=2)
@grading_settings(max_examples=150)
@given(st.lists(st.sampled_from(list(ReplicaEvent)), max_size=12))
def random_event_sequences_match_the_table(events: list[ReplicaEvent]) -> None:
    """From no replica, any sequence of events follows the table; illegal ones change nothing."""
    state: ReplicaState | None = None
    for event in events:
        expected = TRANSITIONS.get((state, event))
        if expected is None:
            note(f"{_name(state):<20} --{event.value}--> IllegalTransition (expected)")
            _expect_illegal(state, event)
            continue
        got = states.transition(state, event)
        note(f"{_name(state):<20} --{event.value}--> {_name(got)}")
        if got != expected:
            raise CheckFailedError(
                f"{event.value} from {_name(state)} gave {_name(got)}, table: {_name(expected)}"
            )
        state = got

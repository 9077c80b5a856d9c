"""Tests for replica states and the transition table (spec "Error handling", "Replication";
Qdrant replica_set_state.rs as summarised in facts §4)."""

import itertools

import pytest

from refimpl.replication import (
    TRANSITIONS,
    IllegalTransition,
    ReplicaEvent,
    ReplicaState,
    accepts_writes,
    is_source_of_truth,
    legal_events,
    serves_reads,
    transition,
)

ALL_STATES: list[ReplicaState | None] = [None, *ReplicaState]


def test_the_spec_states_exist_with_qdrant_spellings() -> None:
    """Error handling: replicas can be Active, Dead or Partial (plus Qdrant's Initializing)."""
    assert {s.value for s in ReplicaState} >= {"Active", "Dead", "Partial", "Initializing"}
    assert ReplicaState("Recovery") is ReplicaState.Recovery


@pytest.mark.parametrize(("state", "event"), list(itertools.product(ALL_STATES, ReplicaEvent)))
def test_transition_applies_the_table_and_refuses_everything_else(
    state: ReplicaState | None, event: ReplicaEvent
) -> None:
    """State machines are tables: a listed pair moves as listed, any other pair raises."""
    if (state, event) in TRANSITIONS:
        assert transition(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition) as info:
            transition(state, event)
        assert event.value in str(info.value)
        assert info.value.state is state
        assert info.value.event is event


def test_illegal_transition_message_lists_the_allowed_events() -> None:
    """A refused transition says what would have been allowed."""
    with pytest.raises(IllegalTransition, match=r"allowed events: .*transfer_started"):
        transition(ReplicaState.Dead, ReplicaEvent.ACTIVATED)


def test_new_replicas_start_initializing_and_become_active() -> None:
    """A new replica starts Initializing and becomes Active once its peer confirms it."""
    state = transition(None, ReplicaEvent.CREATED)
    assert state is ReplicaState.Initializing
    assert transition(state, ReplicaEvent.ACTIVATED) is ReplicaState.Active


def test_a_dead_replica_recovers_through_partial() -> None:
    """Node Failure Recovery: a dead replica is refilled while Partial, then becomes Active."""
    state = transition(ReplicaState.Active, ReplicaEvent.UPDATE_FAILED)
    assert state is ReplicaState.Dead
    state = transition(state, ReplicaEvent.TRANSFER_STARTED)
    assert state is ReplicaState.Partial
    assert transition(state, ReplicaEvent.TRANSFER_FINISHED) is ReplicaState.Active


def test_a_snapshot_transfer_goes_through_recovery_then_partial() -> None:
    """A snapshot transfer restores into Recovery, then takes queued updates while Partial."""
    state = transition(ReplicaState.Dead, ReplicaEvent.SNAPSHOT_TRANSFER_STARTED)
    assert state is ReplicaState.Recovery
    state = transition(state, ReplicaEvent.SNAPSHOT_APPLIED)
    assert transition(state, ReplicaEvent.TRANSFER_FINISHED) is ReplicaState.Active


def test_only_active_replicas_serve_reads() -> None:
    """Error handling: a Dead (or Partial) replica does not receive read traffic."""
    assert [s for s in ReplicaState if serves_reads(s)] == [ReplicaState.Active]
    assert [s for s in ReplicaState if is_source_of_truth(s)] == [ReplicaState.Active]


def test_active_partial_and_initializing_replicas_take_writes() -> None:
    """Cluster scaling: during a transfer both copies are kept updated, so Partial takes writes."""
    writable = {s for s in ReplicaState if accepts_writes(s)}
    assert writable == {ReplicaState.Active, ReplicaState.Partial, ReplicaState.Initializing}


def test_every_write_target_can_be_marked_dead() -> None:
    """A replica that fails a write must be markable Dead, whatever writable state it is in."""
    for state in ReplicaState:
        if accepts_writes(state):
            assert transition(state, ReplicaEvent.UPDATE_FAILED) is ReplicaState.Dead


def test_every_state_is_reachable_and_can_return_to_active() -> None:
    """The table has no unreachable state and no trap: every replica can be recovered."""
    reachable: set[ReplicaState | None] = {None}
    frontier: list[ReplicaState | None] = [None]
    while frontier:
        state = frontier.pop()
        for event in legal_events(state):
            nxt = transition(state, event)
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(ALL_STATES)
    for start in ReplicaState:
        seen: set[ReplicaState] = {start}
        stack = [start]
        while stack:
            state = stack.pop()
            for event in legal_events(state):
                nxt = transition(state, event)
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        assert ReplicaState.Active in seen, f"{start} can never become Active again"

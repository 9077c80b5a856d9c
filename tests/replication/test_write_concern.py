"""Tests for the write-concern rule (spec "Consistency guarantees": write_concern_factor
replicas must acknowledge; Qdrant update.rs as summarised in facts §5.1)."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.ids import PeerId
from refimpl.replication import (
    ReplicaEvent,
    ReplicaSetError,
    ReplicaState,
    transition,
    write_outcome,
    write_targets,
)

A, D, P, INIT, R = (
    ReplicaState.Active,
    ReplicaState.Dead,
    ReplicaState.Partial,
    ReplicaState.Initializing,
    ReplicaState.Recovery,
)


def _truth_table_rows() -> list[tuple[int, int, tuple[int, ...]]]:
    rows = []
    for rf in (1, 2, 3):
        for wcf in (1, 2, 3):
            for k in range(rf + 1):
                for failed in itertools.combinations(range(1, rf + 1), k):
                    rows.append((rf, wcf, failed))
    return rows


@pytest.mark.parametrize(("rf", "wcf", "failed"), _truth_table_rows())
def test_write_concern_truth_table(rf: int, wcf: int, failed: tuple[int, ...]) -> None:
    """G-3: with rf Active replicas and k failing, the write succeeds iff rf - k >= min(wcf, rf),
    and then exactly the failed replicas are marked Dead before the acknowledgement."""
    states = {PeerId(p): A for p in range(1, rf + 1)}
    acks = {p: p not in failed for p in states}
    outcome = write_outcome(acks, states, wcf)
    expected_success = rf - len(failed) >= min(wcf, rf)
    assert outcome.required == min(wcf, rf)
    assert outcome.successes == rf - len(failed)
    assert outcome.succeeded is expected_success
    assert outcome.failed == tuple(PeerId(p) for p in failed)
    if expected_success:
        assert outcome.to_mark_dead == tuple(PeerId(p) for p in failed)
        assert outcome.reason == ""
    else:
        assert outcome.to_mark_dead == ()
        assert outcome.reason != ""


def test_a_failed_write_marks_nobody_dead_and_says_it_may_have_applied() -> None:
    """G-2: too few successes returns an error, no replica becomes Dead, no rollback."""
    states = {PeerId(1): A, PeerId(2): A, PeerId(3): A}
    outcome = write_outcome({PeerId(1): True, PeerId(2): False, PeerId(3): False}, states, 2)
    assert not outcome.succeeded
    assert outcome.to_mark_dead == ()
    assert "only 1 of the required 2" in outcome.reason
    assert "may have been applied" in outcome.reason


def test_required_counts_every_replica_even_dead_ones() -> None:
    """Qdrant counts all replicas of the shard: wcf = rf = 3 with one Dead replica fails."""
    states = {PeerId(1): A, PeerId(2): A, PeerId(3): D}
    outcome = write_outcome({PeerId(1): True, PeerId(2): True}, states, 3)
    assert outcome.required == 3
    assert not outcome.succeeded
    relaxed = write_outcome({PeerId(1): True, PeerId(2): True}, states, 2)
    assert relaxed.succeeded
    assert relaxed.to_mark_dead == ()


def test_success_needs_an_active_replica() -> None:
    """An acknowledgement only from a Partial replica is not enough: it may lack older data."""
    states = {PeerId(1): A, PeerId(2): P}
    outcome = write_outcome({PeerId(1): False, PeerId(2): True}, states, 1)
    assert not outcome.succeeded
    assert "Active" in outcome.reason
    assert outcome.to_mark_dead == ()


def test_partial_replica_failures_are_marked_dead_too() -> None:
    """A replica being filled by a transfer that misses a write is no longer trustworthy."""
    states = {PeerId(1): A, PeerId(2): P, PeerId(3): INIT}
    outcome = write_outcome({PeerId(1): True, PeerId(2): False, PeerId(3): False}, states, 1)
    assert outcome.succeeded
    assert outcome.to_mark_dead == (PeerId(2), PeerId(3))


def test_no_write_target_means_failure() -> None:
    """A shard whose replicas are all Dead cannot take writes."""
    outcome = write_outcome({}, {PeerId(1): D, PeerId(2): R}, 1)
    assert not outcome.succeeded
    assert "no replica" in outcome.reason


def test_bad_input_raises_a_typed_error() -> None:
    """A factor below 1 or an answer from a non-target is a caller bug, reported clearly."""
    states = {PeerId(1): A, PeerId(2): D}
    with pytest.raises(ReplicaSetError, match="at least 1"):
        write_outcome({PeerId(1): True}, states, 0)
    with pytest.raises(ReplicaSetError, match="not a write target"):
        write_outcome({PeerId(2): True}, states, 1)
    with pytest.raises(ReplicaSetError, match="not a write target"):
        write_outcome({PeerId(9): True}, states, 1)


def test_write_targets_are_the_writable_replicas_not_locally_disabled() -> None:
    """Writes go to Active, Partial and Initializing replicas, skipping given-up ones."""
    states = {PeerId(5): A, PeerId(1): P, PeerId(3): INIT, PeerId(2): D, PeerId(4): R}
    assert write_targets(states) == (PeerId(1), PeerId(3), PeerId(5))
    assert write_targets(states, frozenset({PeerId(5)})) == (PeerId(1), PeerId(3))


replica_sets = st.dictionaries(
    st.integers(min_value=1, max_value=6).map(PeerId),
    st.sampled_from(list(ReplicaState)),
    min_size=1,
    max_size=5,
)


@given(states=replica_sets, wcf=st.integers(min_value=1, max_value=6), data=st.data())
def test_outcome_invariants(
    states: dict[PeerId, ReplicaState], wcf: int, data: st.DataObject
) -> None:
    """Dead-marking happens only on success, only for failed targets, always legally."""
    targets = write_targets(states)
    acks = {p: data.draw(st.booleans()) for p in targets}
    outcome = write_outcome(acks, states, wcf)
    assert outcome.required == min(wcf, len(states))
    if outcome.succeeded:
        assert outcome.successes >= outcome.required
        assert any(ok and states[p] is A for p, ok in acks.items())
        assert set(outcome.to_mark_dead) == {p for p, ok in acks.items() if not ok}
        for peer in outcome.to_mark_dead:
            assert transition(states[peer], ReplicaEvent.UPDATE_FAILED) is D
    else:
        assert outcome.to_mark_dead == ()

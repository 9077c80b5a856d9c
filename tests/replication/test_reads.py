"""Tests for reads across replicas (spec "Consistency guarantees": reads use a partial fan-out
strategy; Qdrant execute_read_operation.rs as summarised in facts §5.2)."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.ids import PeerId
from refimpl.replication import (
    InvalidReadConsistencyError,
    NotEnoughReplicasError,
    ReadConsistencyType,
    ReadRequirement,
    ReplicaState,
    ResolveCondition,
    parse_read_consistency,
    plan_read,
    read_order,
    read_requirement,
    resolve_answers,
)
from refimpl.replication.reads import resolve_count, resolve_items

A, D, P, INIT = (
    ReplicaState.Active,
    ReplicaState.Dead,
    ReplicaState.Partial,
    ReplicaState.Initializing,
)
ALL, MAJ = ResolveCondition.ALL, ResolveCondition.MAJORITY


@pytest.mark.parametrize(
    ("consistency", "total", "expected"),
    [
        (1, 3, ReadRequirement(1, ALL)),
        (2, 3, ReadRequirement(2, ALL)),
        (7, 3, ReadRequirement(3, ALL)),
        (ReadConsistencyType.MAJORITY, 3, ReadRequirement(3, MAJ)),
        (ReadConsistencyType.MAJORITY, 4, ReadRequirement(4, MAJ)),
        (ReadConsistencyType.QUORUM, 3, ReadRequirement(2, ALL)),
        (ReadConsistencyType.QUORUM, 4, ReadRequirement(3, ALL)),
        (ReadConsistencyType.QUORUM, 1, ReadRequirement(1, ALL)),
        (ReadConsistencyType.ALL, 3, ReadRequirement(3, ALL)),
    ],
)
def test_read_consistency_levels_follow_qdrant_code(
    consistency: int | ReadConsistencyType, total: int, expected: ReadRequirement
) -> None:
    """majority asks everyone and keeps what most saw; quorum asks n/2+1 and keeps the common
    part (the code's meaning, not the doc comments')."""
    assert read_requirement(consistency, total, total) == expected


def test_too_few_available_replicas_fail_the_read() -> None:
    """A read that needs more replicas than can answer fails with a clear error."""
    with pytest.raises(NotEnoughReplicasError, match="needs 3 replicas but only 2 of 3"):
        read_requirement(ReadConsistencyType.ALL, 3, 2)
    assert read_requirement(ReadConsistencyType.QUORUM, 3, 2).required == 2
    with pytest.raises(InvalidReadConsistencyError):
        read_requirement(0, 3, 3)


@pytest.mark.parametrize("raw", ["all", None, 2.5])
def test_an_unknown_consistency_value_is_refused_by_name(raw: object) -> None:
    """An untyped caller's value that is not a level (the string "all" rather than the enum
    member, None, a float) is a clear InvalidReadConsistencyError, not a crash."""
    with pytest.raises(InvalidReadConsistencyError, match="unknown read consistency"):
        read_requirement(raw, 3, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2", 2),
        (3, 3),
        ("majority", ReadConsistencyType.MAJORITY),
        ("ALL", ReadConsistencyType.ALL),
    ],
)
def test_consistency_parameter_parses(raw: object, expected: object) -> None:
    """The consistency parameter is a number or one of majority, quorum, all."""
    assert parse_read_consistency(raw) == expected


@pytest.mark.parametrize("raw", ["0", 0, -1, "most", True, 1.5, None])
def test_bad_consistency_parameter_is_refused(raw: object) -> None:
    """Anything else is a client error with a message saying what is accepted."""
    with pytest.raises(InvalidReadConsistencyError):
        parse_read_consistency(raw)


def test_reads_go_to_the_local_active_replica_first() -> None:
    """Reads prefer the local replica, then shuffled Active remotes; never Dead or Partial."""
    states = {PeerId(1): A, PeerId(2): A, PeerId(3): D, PeerId(4): P, PeerId(5): A}
    order = read_order(states, PeerId(2), random.Random(0))
    assert order[0] == PeerId(2)
    assert sorted(order) == [PeerId(1), PeerId(2), PeerId(5)]
    assert read_order(states, PeerId(3), random.Random(0))[0] != PeerId(3)
    orders = {read_order(states, None, random.Random(seed)) for seed in range(20)}
    assert len(orders) == 6
    assert read_order(states, None, random.Random(4)) == read_order(states, None, random.Random(4))


def test_fan_out_defaults_to_zero_with_a_local_replica_and_one_without() -> None:
    """read_fan_out_factor unset: ask one extra replica only when there is no local one."""
    states = {PeerId(1): A, PeerId(2): A, PeerId(3): A}
    rng = random.Random(1)
    local = plan_read(states, PeerId(1), 1, read_fan_out_factor=None, rng=rng)
    assert (local.initial_parallel, local.order[0]) == (1, PeerId(1))
    remote = plan_read(states, PeerId(9), 1, read_fan_out_factor=None, rng=rng)
    assert remote.initial_parallel == 2
    wide = plan_read(states, PeerId(1), 2, read_fan_out_factor=5, rng=rng)
    assert (wide.initial_parallel, wide.required) == (3, 2)


def test_fan_out_delay_is_off_unless_set_to_a_positive_number_of_milliseconds() -> None:
    """read_fan_out_delay_ms (Qdrant's hedged read): unset or 0 never hedges; 250 ms hedges
    after 0.25 s; a negative delay is refused."""
    states = {PeerId(1): A, PeerId(2): A}
    for delay_ms, expected in ((None, None), (0, None), (250, 0.25)):
        plan = plan_read(states, PeerId(1), 1, read_fan_out_factor=None, rng=random.Random(0),
                         read_fan_out_delay_ms=delay_ms)  # fmt: skip
        assert plan.fan_out_delay_s == expected
    with pytest.raises(InvalidReadConsistencyError, match="read_fan_out_delay_ms"):
        plan_read(states, PeerId(1), 1, read_fan_out_factor=None, rng=random.Random(0),
                  read_fan_out_delay_ms=-5)  # fmt: skip


def test_initializing_replicas_lower_the_count_but_are_never_asked() -> None:
    """Initializing replicas count as available for the requirement yet serve no reads."""
    states = {PeerId(1): A, PeerId(2): INIT}
    with pytest.raises(NotEnoughReplicasError, match="only 1 can serve"):
        plan_read(states, PeerId(1), 2, read_fan_out_factor=0, rng=random.Random(0))
    with pytest.raises(InvalidReadConsistencyError):
        plan_read(states, PeerId(1), 1, read_fan_out_factor=-1, rng=random.Random(0))


def test_majority_and_all_combine_answers_differently() -> None:
    """majority keeps a point seen by 2 of 3 replicas; all keeps only what every one saw."""
    answers = [[1, 2, 3], [1, 3], [1, 2]]
    assert resolve_answers(answers, MAJ) == [1, 2, 3]
    assert resolve_answers(answers, ALL) == [1]
    assert resolve_answers([], ALL) == []
    assert resolve_answers([[4, 4, 5]], ALL) == [4, 5]


@given(st.lists(st.lists(st.integers(0, 9)), min_size=1, max_size=5))
def test_all_is_always_a_subset_of_majority(answers: list[list[int]]) -> None:
    """Keeping what every answer has is stricter than keeping what most answers have."""
    strict = resolve_answers(answers, ALL)
    loose = resolve_answers(answers, MAJ)
    assert set(strict) <= set(loose)
    assert set(strict) == set.intersection(*(set(a) for a in answers))


def _ident(item: tuple[int, str]) -> int:
    return item[0]


def _whole(item: tuple[int, str]) -> tuple[int, str]:
    return item


def test_copies_that_disagree_count_as_different_versions() -> None:
    """A point updated on two replicas but not yet on the third: ``all`` leaves it out (no
    version is everywhere), ``majority`` answers the version two replicas agree on."""
    fresh = [(1, "a"), (2, "new"), (3, "c")]
    lagging = [(1, "a"), (2, "old"), (3, "c")]
    answers = [fresh, fresh, lagging]
    assert resolve_items(answers, ALL, _ident, _whole) == [(1, "a"), (3, "c")]
    assert resolve_items(answers, MAJ, _ident, _whole) == [(1, "a"), (2, "new"), (3, "c")]
    # Comparing ids alone (the content ignored) keeps the first copy seen.
    assert resolve_items(answers, ALL, _ident, _ident)[1] == (2, "new")


def test_majority_of_three_versions_keeps_nothing_for_that_point() -> None:
    """Three replicas, three different copies of point 5: no version has a majority."""
    answers = [[(5, "x")], [(5, "y")], [(5, "z")]]
    assert resolve_items(answers, MAJ, _ident, _whole) == []
    assert resolve_items([[(5, "x")], [(5, "y")], [(5, "x")]], MAJ, _ident, _whole) == [(5, "x")]


def test_an_answer_counts_once_and_order_is_first_seen() -> None:
    """A duplicate inside one answer does not vote twice; ids come out in first-seen order."""
    assert resolve_items([[(1, "a"), (1, "a")], [(2, "b")]], MAJ, _ident, _whole) == []
    answers = [[(3, "c"), (1, "a")], [(1, "a"), (3, "c"), (2, "b")]]
    assert resolve_items(answers, ALL, _ident, _whole) == [(3, "c"), (1, "a")]
    assert resolve_items([], ALL, _ident, _whole) == []


@given(st.lists(st.lists(st.integers(0, 9)), min_size=1, max_size=5))
def test_resolving_plain_ids_agrees_with_resolve_answers(answers: list[list[int]]) -> None:
    """With the id as the whole content, resolving items is resolving ids."""
    for condition in (ALL, MAJ):
        plain = resolve_answers(answers, condition)
        assert resolve_items(answers, condition, lambda x: x, lambda x: x) == plain


@pytest.mark.parametrize(
    ("counts", "all_", "majority"),
    [([7], 7, 7), ([5, 7, 9], 5, 7), ([9, 5], 5, 9), ([4, 4, 6, 8], 4, 6), ([], 0, 0)],
)
def test_counts_combine_as_minimum_or_middle(counts: list[int], all_: int, majority: int) -> None:
    """``all`` trusts the smallest count, ``majority`` the middle one (Qdrant's rule)."""
    assert resolve_count(counts, ALL) == all_
    assert resolve_count(counts, MAJ) == majority

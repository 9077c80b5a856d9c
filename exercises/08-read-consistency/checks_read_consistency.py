"""Checks for exercise 08: resolving a read's ``consistency`` against a shard's replicas.

The rule (spec "Consistency guarantees"; refimpl/replication/reads.py), with ``total`` replicas:
an integer ``n`` needs ``clamp(n, 1, total)`` answers kept only if in ALL of them; ``majority``
needs ``total`` answers kept if in MORE THAN HALF; ``quorum`` needs ``total // 2 + 1`` answers
combined by ALL; ``all`` needs ``total`` combined by ALL. Fewer available replicas than needed
raises ``NotEnoughReplicasError``; an integer below 1 raises ``InvalidReadConsistencyError``.
Graded against a plain oracle, on named cases, and end to end through ``plan_read`` and
``resolve_answers`` on replicas whose contents diverge.
"""

import random

from hypothesis import given
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from refimpl.ids import PeerId
from refimpl.replication import reads
from refimpl.replication.reads import (
    InvalidReadConsistencyError,
    NotEnoughReplicasError,
    ReadConsistency,
    ReadConsistencyType,
    ReadRequirement,
    ResolveCondition,
)
from refimpl.replication.states import ReplicaState

EXERCISE = Exercise(
    marker="read-consistency",
    title="Read consistency resolution (majority, quorum, all, a number)",
    book="book/write_concern.md (Reads: local first, a partial fan-out)",
)

T = ReadConsistencyType
C = ResolveCondition


def oracle(
    consistency: ReadConsistency, total: int, available: int
) -> ReadRequirement | type[Exception]:
    """The requirement, or the exception type the rule demands."""
    if total < 1:
        return NotEnoughReplicasError
    if isinstance(consistency, int):
        if consistency < 1:
            return InvalidReadConsistencyError
        wanted = ReadRequirement(min(consistency, total), C.ALL)
    elif consistency is T.MAJORITY:
        wanted = ReadRequirement(total, C.MAJORITY)
    elif consistency is T.QUORUM:
        wanted = ReadRequirement(total // 2 + 1, C.ALL)
    else:
        wanted = ReadRequirement(total, C.ALL)
    return NotEnoughReplicasError if available < wanted.required else wanted


def _show(consistency: ReadConsistency) -> str:
    return str(consistency) if isinstance(consistency, int) else repr(consistency.value)


def _ask(consistency: ReadConsistency, total: int, available: int) -> None:
    want = oracle(consistency, total, available)
    call = f"read_requirement({_show(consistency)}, total_replicas={total}, available_replicas={available})"
    try:
        got: ReadRequirement | type[Exception] = reads.read_requirement(
            consistency, total, available
        )
    except (NotEnoughReplicasError, InvalidReadConsistencyError) as exc:
        got = type(exc)
    if got != want:
        shown = got.__name__ if isinstance(got, type) else got
        wanted = want.__name__ if isinstance(want, type) else want
        raise CheckFailedError(f"{call} gave {shown}; the rule gives {wanted}")


consistencies = st.one_of(st.integers(-1, 7), st.sampled_from(list(T)))


@EXERCISE.check(points=4)
@grading_settings(max_examples=150)
@given(consistencies, st.integers(0, 6), st.data())
def matches_the_rule_on_random_inputs(
    consistency: ReadConsistency, total: int, data: st.DataObject
) -> None:
    """Random levels, numbers and replica counts give the rule's requirement or error."""
    _ask(consistency, total, data.draw(st.integers(0, total), label="available"))


@EXERCISE.check(points=2)
def quorum_and_majority_are_not_swapped() -> None:
    """Five replicas: quorum needs 3 answers combined by ALL; majority asks all 5 and keeps >half."""
    _ask(T.QUORUM, 5, 5)
    _ask(T.MAJORITY, 5, 5)
    _ask(T.QUORUM, 4, 3)
    _ask(T.ALL, 3, 3)


@EXERCISE.check(points=1)
def a_number_is_clamped_to_the_replicas() -> None:
    """consistency=7 on three replicas needs all three; consistency=1 needs one."""
    _ask(7, 3, 3)
    _ask(1, 3, 1)
    _ask(2, 2, 2)


@EXERCISE.check(points=1)
def too_few_replicas_or_a_bad_number_raise() -> None:
    """Too few available replicas raise NotEnoughReplicasError; consistency 0 raises InvalidReadConsistencyError."""
    _ask(T.ALL, 3, 2)
    _ask(T.QUORUM, 5, 2)
    _ask(3, 3, 2)
    _ask(0, 3, 3)


def run_read(seed: int) -> None:
    """One seeded read over diverging replicas, through plan_read and resolve_answers."""
    rng = random.Random(seed)
    peers = [PeerId(i + 1) for i in range(rng.randint(1, 5))]
    states = {p: rng.choice([ReplicaState.Active] * 3 + [ReplicaState.Dead]) for p in peers}
    data = {p: sorted(rng.sample(range(8), rng.randint(0, 8))) for p in peers}
    consistency: ReadConsistency = rng.choice([1, 2, 3, *T])
    local = rng.choice(peers)
    order = reads.read_order(states, local, random.Random(seed + 1))
    available = len(order)
    want = oracle(consistency, len(peers), available)
    lines = [
        f"states { ({p: s.value for p, s in states.items()}) }",
        f"contents {data}",
        f"read consistency={_show(consistency)} on local peer {local}",
    ]
    try:
        plan = reads.plan_read(
            states, local, consistency, read_fan_out_factor=None, rng=random.Random(seed + 1)
        )
    except (NotEnoughReplicasError, InvalidReadConsistencyError) as exc:
        if want is type(exc):
            return
        raise CheckFailedError(
            f"plan_read raised {type(exc).__name__}", seed=seed, transcript="\n".join(lines)
        ) from exc
    if isinstance(want, type):
        raise CheckFailedError(
            f"the read was planned, the rule says {want.__name__}",
            seed=seed,
            transcript="\n".join(lines),
        )
    got = reads.resolve_answers([data[p] for p in plan.order[: plan.required]], plan.condition)
    expected = reads.resolve_answers([data[p] for p in order[: want.required]], want.condition)
    lines.append(
        f"asked {list(plan.order[: plan.required])}, combined by {plan.condition.value}: {got}"
    )
    if got != expected:
        raise CheckFailedError(
            f"the read returned {got}, the rule gives {expected}",
            seed=seed,
            transcript="\n".join(lines),
        )


@EXERCISE.check(points=2)
def reads_over_diverging_replicas() -> None:
    """300 seeded reads through plan_read and resolve_answers return what the rule says."""
    smallest_failure(range(300), run_read)

"""Checks for exercise 07: the write-consistency outcome of one write to a shard's replicas.

The rule (spec "Consistency guarantees"; refimpl/replication/write_concern.py): with
``required = min(write_consistency_factor, replicas)``, a write succeeds when at least
``required`` replicas acknowledged and one of them is Active; then every replica that failed is
marked Dead *before* the client hears "ok"; a failed write marks nobody. Graded against a plain
oracle, on the spec's examples, on bad input, and by a seeded replica-set simulation (random
acknowledgement failures, transfers, reads at every consistency level) that checks after every
step that each Active replica holds every acknowledged write and that no read loses one.
"""

import random
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings, smallest_failure
from refimpl.ids import PeerId
from refimpl.replication import write_concern
from refimpl.replication.reads import (
    NotEnoughReplicasError,
    ReadConsistency,
    ReadConsistencyType,
    plan_read,
    resolve_answers,
)
from refimpl.replication.states import ReplicaEvent, ReplicaState, accepts_writes, transition
from refimpl.replication.write_concern import ReplicaSetError, write_targets

EXERCISE = Exercise(
    marker="write-consistency",
    title="Write-consistency outcome (acks, factor, replicas -> success, who is marked Dead)",
    book="book/write_concern.md (The rule)",
)

S = ReplicaState


def oracle(
    acks: Mapping[PeerId, bool], states: Mapping[PeerId, ReplicaState], factor: int
) -> tuple[bool, int, int, tuple[PeerId, ...], tuple[PeerId, ...]]:
    """(succeeded, required, successes, failed, to_mark_dead), straight from the rule."""
    required = min(factor, len(states))
    successes = sum(acks.values())
    failed = tuple(sorted(p for p, ok in acks.items() if not ok))
    active_ack = any(ok and states[p] is S.Active for p, ok in acks.items())
    ok = bool(acks) and successes >= required and active_ack
    return ok, required, successes, failed, failed if ok else ()


def _compare(acks: dict[PeerId, bool], states: dict[PeerId, ReplicaState], factor: int) -> None:
    got = write_concern.write_outcome(acks, states, factor)
    want = oracle(acks, states, factor)
    have = (got.succeeded, got.required, got.successes, got.failed, got.to_mark_dead)
    setup = (
        f"states={ {p: s.value for p, s in states.items()} } acks={acks} "
        f"write_consistency_factor={factor}"
    )
    names = ("succeeded", "required", "successes", "failed", "to_mark_dead")
    for name, a, b in zip(names, have, want, strict=True):
        if a != b:
            raise CheckFailedError(f"{name} is {a!r}, the rule gives {b!r} for {setup}")
    if got.succeeded == bool(got.reason):
        raise CheckFailedError(f"reason {got.reason!r} must be empty exactly on success ({setup})")


@st.composite
def writes(draw: st.DrawFn) -> tuple[dict[PeerId, bool], dict[PeerId, ReplicaState], int]:
    """A shard's replica states, the acks of the write targets, and a factor."""
    n = draw(st.integers(1, 5))
    states = {PeerId(i + 1): draw(st.sampled_from(list(S))) for i in range(n)}
    acks = {p: draw(st.booleans()) for p, s in states.items() if accepts_writes(s)}
    return acks, states, draw(st.integers(1, 6))


@EXERCISE.check(points=3)
@grading_settings(max_examples=150)
@given(writes())
def matches_the_rule_on_random_writes(
    case: tuple[dict[PeerId, bool], dict[PeerId, ReplicaState], int],
) -> None:
    """Every field of the outcome agrees with the rule, for random states, acks and factors."""
    _compare(*case)


@EXERCISE.check(points=2)
def the_spec_examples() -> None:
    """Three Active replicas: factor 2 with one failure succeeds and marks it Dead; a Dead replica blocks factor 3."""
    p1, p2, p3 = PeerId(1), PeerId(2), PeerId(3)
    three = {p1: S.Active, p2: S.Active, p3: S.Active}
    _compare({p1: True, p2: True, p3: False}, three, 2)
    _compare({p1: True, p2: False, p3: False}, three, 2)
    _compare({p1: True, p2: True}, {p1: S.Active, p2: S.Active, p3: S.Dead}, 3)
    _compare({p1: False, p2: True}, {p1: S.Active, p2: S.Partial}, 1)
    _compare({p1: True, p2: True, p3: True}, three, 5)


@EXERCISE.check(points=1)
def bad_input_raises_replica_set_error() -> None:
    """A factor below 1, or an ack from a replica that takes no writes, raises ReplicaSetError."""
    states = {PeerId(1): S.Active, PeerId(2): S.Dead}
    for acks, factor in (({PeerId(1): True}, 0), ({PeerId(1): True, PeerId(2): True}, 1)):
        try:
            write_concern.write_outcome(acks, states, factor)
        except ReplicaSetError:
            continue
        raise CheckFailedError(
            f"write_outcome({acks}, {states}, {factor}) did not raise ReplicaSetError"
        )


CONSISTENCIES: list[ReadConsistency] = [1, 2, 3, *ReadConsistencyType]


def _step_write(rng: random.Random, world: "ReplicaWorld", point: int) -> None:
    targets = write_targets(world.states)
    acks = {p: rng.random() > 0.25 for p in targets}
    for p, ok in acks.items():
        if ok or rng.random() < 0.3:  # a timed-out replica may have applied the write anyway
            world.data[p].add(point)
    outcome = write_concern.write_outcome(acks, world.states, world.factor)
    world.log(
        f"write {point}: acks {acks} -> succeeded={outcome.succeeded} mark Dead {list(outcome.to_mark_dead)}"
    )
    if outcome.succeeded:
        for p in outcome.to_mark_dead:
            world.states[p] = transition(world.states[p], ReplicaEvent.UPDATE_FAILED)
        world.acked.add(point)


class ReplicaWorld:
    """One shard's replicas: states, the points each holds, what clients were told succeeded."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.peers = [PeerId(i + 1) for i in range(rng.randint(2, 5))]
        self.factor = rng.randint(1, len(self.peers) + 1)
        self.states = dict.fromkeys(self.peers, S.Active)
        self.data: dict[PeerId, set[int]] = {p: set() for p in self.peers}
        self.acked: set[int] = set()
        self.lines = [
            f"seed {seed}: {len(self.peers)} replicas, write_consistency_factor {self.factor}"
        ]

    def log(self, line: str) -> None:
        self.lines.append(line)

    def recover_one(self, rng: random.Random) -> None:
        dead = [p for p in self.peers if self.states[p] is S.Dead]
        sources = [p for p in self.peers if self.states[p] is S.Active]
        if not dead or not sources:
            return
        target, source = rng.choice(dead), rng.choice(sources)
        self.states[target] = transition(self.states[target], ReplicaEvent.TRANSFER_STARTED)
        self.data[target] |= self.data[source]
        self.states[target] = transition(self.states[target], ReplicaEvent.TRANSFER_FINISHED)
        self.log(f"transfer {source} -> {target}: {target} Active again")

    def read(self, rng: random.Random) -> str | None:
        consistency = rng.choice(CONSISTENCIES)
        try:
            plan = plan_read(
                self.states, rng.choice(self.peers), consistency, read_fan_out_factor=None, rng=rng
            )
        except NotEnoughReplicasError:
            return None
        asked = plan.order[: plan.required]
        found = set(resolve_answers([sorted(self.data[p]) for p in asked], plan.condition))
        shown = consistency if isinstance(consistency, int) else consistency.value
        self.log(f"read consistency={shown} from {list(asked)}")
        lost = sorted(self.acked - found)
        return f"a read from {list(asked)} misses acknowledged writes {lost}" if lost else None

    def problem(self) -> str | None:
        for p in self.peers:
            missing = sorted(self.acked - self.data[p])
            if self.states[p] is S.Active and missing:
                return f"replica {p} is Active but misses acknowledged writes {missing}"
        return None


def run_world(seed: int, steps: int = 30) -> None:
    """One seeded run; raises CheckFailedError with the transcript on the first violation."""
    rng = random.Random(seed * 7919)
    world = ReplicaWorld(seed)
    for point in range(steps):
        roll = rng.random()
        if roll < 0.6:
            _step_write(rng, world, point)
        elif roll < 0.8:
            world.recover_one(rng)
        problem = world.read(rng) if roll >= 0.8 else None
        problem = problem or world.problem()
        if problem is not None:
            world.log(f"VIOLATION: {problem}")
            raise CheckFailedError(problem, seed=seed, transcript="\n".join(world.lines))


@EXERCISE.check(points=4)
def replica_set_simulation_keeps_acknowledged_writes() -> None:
    """200 seeded runs of writes, failures, transfers and reads: no acknowledged write is ever lost."""
    smallest_failure(range(200), run_world)

"""Reads across replicas: which replicas to ask, how many must answer, how to merge answers.

Rules (spec "Consistency guarantees": reads use a partial fan-out strategy; Qdrant
``execute_read_operation.rs`` and ``consistency_params.rs``, facts §5.2):

* only Active replicas serve reads; the local replica is tried first, the others in a
  shuffled order (shuffled by a seeded ``random.Random`` passed in);
* ``read_fan_out_factor`` extra replicas are asked at once; left unset it is 0 when the local
  replica can serve the read and 1 otherwise; with ``read_fan_out_delay_ms`` set (and not 0),
  a read still short of answers after that long asks one more replica (a hedged read);
* the ``consistency`` parameter says how many answers are needed and how they combine, with
  ``total`` = the number of replicas of the shard:

  - an integer ``n``: ``clamp(n, 1, total)`` answers, keep what is in **all** of them;
  - ``majority``: ask all ``total``, keep what appears in **more than half** of the answers;
  - ``quorum``: ``total // 2 + 1`` answers, keep what is in **all** of them;
  - ``all``: ask all ``total``, keep what is in all of them.

  (Qdrant's own doc comments swap ``majority`` and ``quorum``; this follows what its code does.)
* if fewer replicas can answer (Active plus Initializing, as Qdrant counts) than are needed,
  the read fails with :class:`NotEnoughReplicasError`. Failed reads never mark replicas Dead.
* combining answers (Qdrant ``shards/resolve.rs``): records and scored points are grouped by
  point id; two copies of a point agree when their content agrees (payload, vector, order
  value, and for a query the score — never the replica-local version number). A point is kept
  when one copy of it is in at least all (``ALL``) or more than half (``MAJORITY``) of the
  answers; a point whose replicas disagree, say because one of them has not applied an update
  yet, is therefore *left out* of an ``all`` read rather than answered from either side
  (:func:`resolve_items`). Counts combine as the smallest (``ALL``) or the middle one of the
  sorted counts (``MAJORITY``) (:func:`resolve_count`).
"""

import enum
import random
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from refimpl.ids import PeerId
from refimpl.replication.states import ReplicaState, serves_reads


class ReadConsistencyType(enum.Enum):
    """The named read-consistency levels (query parameter spellings)."""

    MAJORITY = "majority"
    QUORUM = "quorum"
    ALL = "all"


ReadConsistency = int | ReadConsistencyType
"""A number of replicas, or a named level."""


class ResolveCondition(enum.Enum):
    """How answers from several replicas are combined."""

    ALL = "all"
    """Keep what every answer contains."""
    MAJORITY = "majority"
    """Keep what more than half of the answers contain."""


class InvalidReadConsistencyError(ValueError):
    """A ``consistency`` value that is neither a positive integer nor a known level."""


class NotEnoughReplicasError(ValueError):
    """Fewer replicas can answer than the read consistency requires."""


@dataclass(frozen=True, slots=True)
class ReadRequirement:
    """How many answers a read needs and how they combine."""

    required: int
    condition: ResolveCondition


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Which replicas to ask, in order, and how many to ask at once."""

    order: tuple[PeerId, ...]
    initial_parallel: int
    """Ask this many of ``order`` at once; move down the list when one fails."""
    required: int
    condition: ResolveCondition
    fan_out_delay_s: float | None = None
    """After this long without enough answers, ask the next replica too (``None``: never)."""


def parse_read_consistency(raw: object) -> ReadConsistency:
    """Turn a query-parameter or JSON value into a :data:`ReadConsistency`."""
    if isinstance(raw, ReadConsistencyType):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    elif isinstance(raw, str):
        try:
            return ReadConsistencyType(raw.strip().lower())
        except ValueError:
            pass
        raise InvalidReadConsistencyError(
            f"consistency must be a positive integer or one of majority, quorum, all; got {raw!r}"
        )
    else:
        raise InvalidReadConsistencyError(
            f"consistency must be an integer or a string, got {raw!r}"
        )
    if value < 1:
        raise InvalidReadConsistencyError(
            f"read consistency factor cannot be less than 1, got {value}"
        )
    return value


def read_requirement(
    consistency: ReadConsistency, total_replicas: int, available_replicas: int
) -> ReadRequirement:
    """Resolve ``consistency`` against a shard's replicas.

    ``total_replicas`` counts every replica of the shard; ``available_replicas`` those that can
    answer (Active) or at least lower the count (Initializing). Integer ``n`` needs
    ``clamp(n, 1, total)`` answers combined by ALL; ``majority`` needs ``total`` answers combined
    by MAJORITY; ``quorum`` needs ``total // 2 + 1`` combined by ALL; ``all`` needs ``total``
    combined by ALL. Raises :class:`NotEnoughReplicasError` when ``available_replicas`` is below the
    requirement, :class:`InvalidReadConsistencyError` for an integer below 1.
    """
    # [exercise: read-consistency] begin
    if total_replicas < 1:
        raise NotEnoughReplicasError("the shard has no replica")
    match consistency:
        case ReadConsistencyType.MAJORITY:
            requirement = ReadRequirement(total_replicas, ResolveCondition.MAJORITY)
        case ReadConsistencyType.QUORUM:
            requirement = ReadRequirement(total_replicas // 2 + 1, ResolveCondition.ALL)
        case ReadConsistencyType.ALL:
            requirement = ReadRequirement(total_replicas, ResolveCondition.ALL)
        case int():
            if consistency < 1:
                raise InvalidReadConsistencyError(
                    f"read consistency factor cannot be less than 1, got {consistency}"
                )
            requirement = ReadRequirement(min(consistency, total_replicas), ResolveCondition.ALL)
        case _:  # an untyped caller's "all" (a str, not the enum member), None, 2.5, ...
            raise InvalidReadConsistencyError(
                f"unknown read consistency {consistency!r}: "
                "use a positive integer, majority, quorum or all"
            )
    if available_replicas < requirement.required:
        raise NotEnoughReplicasError(
            f"the read needs {requirement.required} replicas but only {available_replicas} "
            f"of {total_replicas} are active"
        )
    return requirement
    # [exercise: read-consistency] end


def read_order(
    states: Mapping[PeerId, ReplicaState],
    local_peer: PeerId | None,
    rng: random.Random,
    locally_disabled: frozenset[PeerId] = frozenset(),
) -> tuple[PeerId, ...]:
    """Readable replicas: the local one first, then the others shuffled by ``rng``."""
    readable = [p for p, s in states.items() if serves_reads(s) and p not in locally_disabled]
    remotes = sorted(p for p in readable if p != local_peer)
    rng.shuffle(remotes)
    local = [local_peer] if local_peer is not None and local_peer in readable else []
    return (*local, *remotes)


def plan_read(
    states: Mapping[PeerId, ReplicaState],
    local_peer: PeerId | None,
    consistency: ReadConsistency,
    *,
    read_fan_out_factor: int | None,
    rng: random.Random,
    locally_disabled: frozenset[PeerId] = frozenset(),
    read_fan_out_delay_ms: int | None = None,
) -> ReadPlan:
    """Everything a coordinator needs to run a read on one shard's replica set."""
    if read_fan_out_factor is not None and read_fan_out_factor < 0:
        raise InvalidReadConsistencyError(
            f"read_fan_out_factor cannot be negative, got {read_fan_out_factor}"
        )
    if read_fan_out_delay_ms is not None and read_fan_out_delay_ms < 0:
        raise InvalidReadConsistencyError(
            f"read_fan_out_delay_ms cannot be negative, got {read_fan_out_delay_ms}"
        )
    order = read_order(states, local_peer, rng, locally_disabled)
    available = len(order) + sum(1 for s in states.values() if s is ReplicaState.Initializing)
    requirement = read_requirement(consistency, len(states), available)
    if len(order) < requirement.required:
        raise NotEnoughReplicasError(
            f"the read needs {requirement.required} replicas but only {len(order)} can serve it"
        )
    local_first = bool(order) and order[0] == local_peer
    fan_out = read_fan_out_factor if read_fan_out_factor is not None else (0 if local_first else 1)
    return ReadPlan(
        order=order,
        initial_parallel=min(len(order), requirement.required + fan_out),
        required=requirement.required,
        condition=requirement.condition,
        fan_out_delay_s=read_fan_out_delay_ms / 1000 if read_fan_out_delay_ms else None,
    )


K = TypeVar("K", bound=Hashable)


def resolve_answers(answers: Sequence[Iterable[K]], condition: ResolveCondition) -> list[K]:
    """Combine the answers (e.g. point ids) of several replicas, in first-seen order."""
    if not answers:
        return []
    counts: Counter[K] = Counter()
    first_seen: dict[K, None] = {}
    for answer in answers:
        distinct = dict.fromkeys(answer)
        counts.update(distinct.keys())
        first_seen.update(distinct)
    match condition:
        case ResolveCondition.ALL:
            needed = len(answers)
        case ResolveCondition.MAJORITY:
            needed = len(answers) // 2 + 1
    return [key for key in first_seen if counts[key] >= needed]


def _needed(condition: ResolveCondition, answers: int) -> int:
    match condition:
        case ResolveCondition.ALL:
            return answers
        case ResolveCondition.MAJORITY:
            return answers // 2 + 1


Item = TypeVar("Item")


def resolve_items(
    answers: Sequence[Sequence[Item]],
    condition: ResolveCondition,
    identity: Callable[[Item], Hashable],
    content: Callable[[Item], Hashable],
) -> list[Item]:
    """Combine several replicas' answers item by item, in first-seen order.

    Items with the same ``identity`` (a point id) are copies of one point; copies with equal
    ``content`` count as the same version. The first version of an id found in enough answers
    (every answer for ``ALL``, more than half for ``MAJORITY``; each answer counted once) is
    kept; an id with no such version is left out.
    """
    needed = _needed(condition, len(answers))
    votes: dict[Hashable, dict[Hashable, tuple[Item, set[int]]]] = {}
    order: list[Hashable] = []
    for row, answer in enumerate(answers):
        for item in answer:
            key = identity(item)
            versions = votes.get(key)
            if versions is None:
                versions = votes[key] = {}
                order.append(key)
            version = versions.setdefault(content(item), (item, set()))
            version[1].add(row)
    kept = []
    for key in order:
        winner = next((v for v, rows in votes[key].values() if len(rows) >= needed), None)
        if winner is not None:
            kept.append(winner)
    return kept


def resolve_count(counts: Sequence[int], condition: ResolveCondition) -> int:
    """Combine several replicas' counts: the smallest for ``ALL``, for ``MAJORITY`` the middle
    of the sorted counts (the upper middle of an even number), as Qdrant does."""
    if not counts:
        return 0
    match condition:
        case ResolveCondition.ALL:
            return min(counts)
        case ResolveCondition.MAJORITY:
            return sorted(counts)[len(counts) // 2]


__all__ = [
    "InvalidReadConsistencyError",
    "NotEnoughReplicasError",
    "ReadConsistency",
    "ReadConsistencyType",
    "ReadPlan",
    "ReadRequirement",
    "ResolveCondition",
    "parse_read_consistency",
    "plan_read",
    "read_order",
    "read_requirement",
    "resolve_answers",
    "resolve_count",
    "resolve_items",
]

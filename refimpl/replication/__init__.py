"""Replication: replica states and the rules for writes and reads across a shard's replicas.

* :mod:`refimpl.replication.states` — :class:`ReplicaState`, the transition table and
  :func:`transition`; which states take writes and serve reads;
* :mod:`refimpl.replication.write_concern` — :func:`write_outcome`, the write-concern rule;
* :mod:`refimpl.replication.reads` — read ``consistency``, fan-out and merging answers.

Pure and synchronous: no I/O, no clock; randomness only through a ``random.Random`` passed in.
"""

from refimpl.replication.reads import (
    InvalidReadConsistencyError,
    NotEnoughReplicasError,
    ReadConsistency,
    ReadConsistencyType,
    ReadPlan,
    ReadRequirement,
    ResolveCondition,
    parse_read_consistency,
    plan_read,
    read_order,
    read_requirement,
    resolve_answers,
)
from refimpl.replication.states import (
    READABLE_STATES,
    SOURCE_OF_TRUTH_STATES,
    TRANSITIONS,
    WRITABLE_STATES,
    IllegalTransition,
    ReplicaEvent,
    ReplicaState,
    accepts_writes,
    is_source_of_truth,
    legal_events,
    serves_reads,
    transition,
)
from refimpl.replication.write_concern import (
    ReplicaSetError,
    WriteOutcome,
    write_outcome,
    write_targets,
)

__all__ = [
    "READABLE_STATES",
    "SOURCE_OF_TRUTH_STATES",
    "TRANSITIONS",
    "WRITABLE_STATES",
    "IllegalTransition",
    "InvalidReadConsistencyError",
    "NotEnoughReplicasError",
    "ReadConsistency",
    "ReadConsistencyType",
    "ReadPlan",
    "ReadRequirement",
    "ReplicaEvent",
    "ReplicaSetError",
    "ReplicaState",
    "ResolveCondition",
    "WriteOutcome",
    "accepts_writes",
    "is_source_of_truth",
    "legal_events",
    "parse_read_consistency",
    "plan_read",
    "read_order",
    "read_requirement",
    "resolve_answers",
    "serves_reads",
    "transition",
    "write_outcome",
    "write_targets",
]

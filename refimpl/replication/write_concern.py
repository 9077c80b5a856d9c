"""The write-concern rule: when a write to a shard's replicas counts as done.

Rules (spec "Consistency guarantees"; Qdrant ``replica_set/update.rs``, facts §5.1):

* a write goes in parallel to every replica that accepts writes (Active, Partial,
  Initializing); Dead and Recovery replicas are skipped;
* it succeeds when at least ``required = min(write_consistency_factor, replicas)`` of them
  acknowledge, where ``replicas`` counts *every* replica of the shard, whatever its state (as
  Qdrant does: with ``write_consistency_factor == replication_factor`` one Dead replica makes
  every write fail until it is recovered); and at least one acknowledgement must come from an
  Active replica, the only kind that is surely complete;
* when it succeeds but some replicas failed, those replicas must be marked Dead through
  consensus *before* the client gets its answer: otherwise a later read could be served by a
  replica that missed an acknowledged write;
* when it fails, nobody is marked Dead and nothing is rolled back: replicas that applied the
  write keep it, so the client must treat the outcome as unknown (this is not a transaction).

Theory of operation: :func:`write_outcome` is the pure decision. The peer that coordinates the
write sends it, collects one boolean per replica it sent to, calls this function, proposes the
``update_failed`` transitions it lists, waits for them to commit, and only then answers.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from refimpl.ids import PeerId
from refimpl.replication.states import ReplicaState, accepts_writes, is_source_of_truth


class ReplicaSetError(ValueError):
    """Inconsistent input to a replica-set decision (a caller bug or a bad parameter)."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """The decision on one write to one shard."""

    succeeded: bool
    required: int
    """``min(write_consistency_factor, number of replicas of the shard)``."""
    successes: int
    failed: tuple[PeerId, ...]
    """Replicas that were sent the write and did not acknowledge it, ascending."""
    to_mark_dead: tuple[PeerId, ...]
    """Replicas to move to Dead (event ``update_failed``) before acknowledging the client."""
    reason: str
    """Empty on success; otherwise a message fit for the client."""


def write_targets(
    states: Mapping[PeerId, ReplicaState], locally_disabled: frozenset[PeerId] = frozenset()
) -> tuple[PeerId, ...]:
    """The replicas a write is sent to, ascending: those accepting writes, minus the ones this
    coordinator has already given up on while their Dead state is being committed."""
    return tuple(
        sorted(p for p, s in states.items() if accepts_writes(s) and p not in locally_disabled)
    )


def write_outcome(
    acks: Mapping[PeerId, bool],
    states: Mapping[PeerId, ReplicaState],
    write_consistency_factor: int,
) -> WriteOutcome:
    """Decide a write from the acknowledgements of the replicas it was sent to.

    ``states`` holds every replica of the shard; ``acks`` holds, for each replica the write was
    sent to (each must accept writes), whether it acknowledged. ``required`` is
    ``min(write_consistency_factor, len(states))``. The write succeeds when at least
    ``required`` replicas acknowledged and at least one of those is Active; then every replica
    that failed is listed in ``to_mark_dead``. A failed write marks nobody Dead.
    """
    # [exercise: write-consistency] begin
    if write_consistency_factor < 1:
        raise ReplicaSetError(
            f"write_consistency_factor must be at least 1, got {write_consistency_factor}"
        )
    for peer in acks:
        if peer not in states or not accepts_writes(states[peer]):
            raise ReplicaSetError(f"peer {peer} answered a write but is not a write target")
    required = min(write_consistency_factor, len(states))
    successes = sum(1 for ok in acks.values() if ok)
    failed = tuple(sorted(p for p, ok in acks.items() if not ok))

    def refuse(reason: str) -> WriteOutcome:
        return WriteOutcome(False, required, successes, failed, (), reason)

    if not acks:
        return refuse("the shard has no replica that accepts writes")
    if successes < required:
        return refuse(
            f"only {successes} of the required {required} replicas acknowledged the write; "
            "it may have been applied on some replicas"
        )
    if not any(ok and is_source_of_truth(states[p]) for p, ok in acks.items()):
        return refuse("the write was not applied on any Active replica")
    return WriteOutcome(True, required, successes, failed, failed, "")
    # [exercise: write-consistency] end


__all__ = ["ReplicaSetError", "WriteOutcome", "write_outcome", "write_targets"]

"""Replica states and their transitions, kept as a table.

Rules (spec "Error handling"; Qdrant ``replica_set_state.rs``, facts §4):

* a replica of a shard on a peer is in exactly one :class:`ReplicaState`;
* it changes state only by an event listed in :data:`TRANSITIONS`, the single source of truth
  for code, tests and the book's diagram; any other (state, event) pair raises
  :class:`IllegalTransition`;
* which states take writes and which serve reads are fixed here too: Active, Partial and
  Initializing replicas receive updates; only Active replicas serve reads and can be the
  source of a transfer.

Theory of operation. A new replica starts *Initializing* (the collection was just created) and
becomes *Active* once its peer has built the local shard. A write that fails on a replica while
it succeeds elsewhere makes it *Dead*. A dead replica is brought back by a transfer from an
Active one: a record-streaming transfer fills it while it is *Partial* (it already receives new
writes, so nothing is missed), a snapshot transfer first restores a snapshot while it is in
*Recovery* (it refuses normal writes until the snapshot is in, then turns Partial). Finishing the
transfer makes it Active; aborting it makes it Dead again. A user-driven snapshot recovery also
passes through Recovery. ``None`` stands for "no replica on this peer yet": creating a
collection and starting a transfer to a new peer are transitions out of ``None``.

We keep five of Qdrant's eleven states: the spec's Active, Dead and Partial, plus Initializing
and Recovery, which our flows need. Listener, resharding states, ActiveRead, ManualRecovery and
the deprecated PartialSnapshot are left out (ManualRecovery's role is played by Recovery).
"""

import enum
from collections.abc import Mapping


class ReplicaState(enum.Enum):
    """The state of one replica; values are Qdrant's JSON spellings."""

    Active = "Active"
    Dead = "Dead"
    Partial = "Partial"
    Initializing = "Initializing"
    Recovery = "Recovery"


class ReplicaEvent(enum.Enum):
    """Why a replica changes state."""

    CREATED = "created"
    """The collection was created with a replica on this peer."""
    ACTIVATED = "activated"
    """The hosting peer built its local shard and confirms it."""
    UPDATE_FAILED = "update_failed"
    """A write failed on this replica while it succeeded on enough others."""
    TRANSFER_STARTED = "transfer_started"
    """A record-streaming transfer to this replica started."""
    SNAPSHOT_TRANSFER_STARTED = "snapshot_transfer_started"
    """A snapshot (or WAL-delta) transfer to this replica started."""
    SNAPSHOT_APPLIED = "snapshot_applied"
    """The transferred snapshot is restored; queued updates follow (Qdrant RecoveryToPartial)."""
    TRANSFER_FINISHED = "transfer_finished"
    """The transfer completed: the replica holds everything."""
    TRANSFER_ABORTED = "transfer_aborted"
    """A replicating transfer to this replica failed or was cancelled."""
    SNAPSHOT_RECOVERY_STARTED = "snapshot_recovery_started"
    """A user asked to recover this replica from an uploaded snapshot."""
    RECOVERED = "recovered"
    """The user's snapshot recovery completed."""
    RECOVERY_FAILED = "recovery_failed"
    """The user's snapshot recovery failed; the replica must be recovered again."""


S = ReplicaState
E = ReplicaEvent

# [transition-table] begin
TRANSITIONS: Mapping[tuple[ReplicaState | None, ReplicaEvent], ReplicaState] = {
    (None, E.CREATED): S.Initializing,
    (None, E.TRANSFER_STARTED): S.Partial,
    (None, E.SNAPSHOT_TRANSFER_STARTED): S.Recovery,
    (None, E.SNAPSHOT_RECOVERY_STARTED): S.Recovery,
    (S.Initializing, E.ACTIVATED): S.Active,
    (S.Initializing, E.UPDATE_FAILED): S.Dead,
    (S.Active, E.UPDATE_FAILED): S.Dead,
    (S.Partial, E.UPDATE_FAILED): S.Dead,
    (S.Dead, E.TRANSFER_STARTED): S.Partial,
    (S.Dead, E.SNAPSHOT_TRANSFER_STARTED): S.Recovery,
    (S.Recovery, E.SNAPSHOT_APPLIED): S.Partial,
    (S.Partial, E.TRANSFER_FINISHED): S.Active,
    (S.Partial, E.TRANSFER_ABORTED): S.Dead,
    (S.Recovery, E.TRANSFER_ABORTED): S.Dead,
    (S.Active, E.SNAPSHOT_RECOVERY_STARTED): S.Recovery,
    (S.Dead, E.SNAPSHOT_RECOVERY_STARTED): S.Recovery,
    (S.Recovery, E.RECOVERED): S.Active,
    (S.Recovery, E.RECOVERY_FAILED): S.Dead,
}
"""``(state before, event) -> state after``; ``None`` is "no replica yet"."""
# [transition-table] end

WRITABLE_STATES = frozenset({S.Active, S.Partial, S.Initializing})
"""States that receive point updates (Qdrant: "updatable")."""

READABLE_STATES = frozenset({S.Active})
"""States that serve reads."""

SOURCE_OF_TRUTH_STATES = frozenset({S.Active})
"""States that can be a transfer's source and must keep at least one replica per shard."""


class IllegalTransition(ValueError):  # noqa: N818 (the name the design documents use)
    """An event that the transition table does not allow from the current state."""

    def __init__(self, state: ReplicaState | None, event: ReplicaEvent) -> None:
        legal = sorted(e.value for e in legal_events(state))
        name = "no replica" if state is None else state.value
        super().__init__(
            f"replica state {name} has no transition on {event.value!r}; "
            f"allowed events: {', '.join(legal) or 'none'}"
        )
        self.state = state
        self.event = event


def transition(state: ReplicaState | None, event: ReplicaEvent) -> ReplicaState:
    """Return the state after ``event``, as :data:`TRANSITIONS` says.

    ``state`` is ``None`` when the peer has no replica yet. Raises :class:`IllegalTransition`
    when the table has no entry for ``(state, event)``.
    """
    # [exercise: replica-transitions] begin
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None
    # [exercise: replica-transitions] end


def legal_events(state: ReplicaState | None) -> frozenset[ReplicaEvent]:
    """Events the table allows from ``state``."""
    return frozenset(event for (before, event) in TRANSITIONS if before == state)


def accepts_writes(state: ReplicaState) -> bool:
    """Whether a replica in ``state`` is sent point updates."""
    return state in WRITABLE_STATES


def serves_reads(state: ReplicaState) -> bool:
    """Whether a replica in ``state`` may answer searches and retrieves."""
    return state in READABLE_STATES


def is_source_of_truth(state: ReplicaState) -> bool:
    """Whether a replica in ``state`` holds everything acknowledged (transfer source)."""
    return state in SOURCE_OF_TRUTH_STATES


__all__ = [
    "READABLE_STATES",
    "SOURCE_OF_TRUTH_STATES",
    "TRANSITIONS",
    "WRITABLE_STATES",
    "IllegalTransition",
    "ReplicaEvent",
    "ReplicaState",
    "accepts_writes",
    "is_source_of_truth",
    "legal_events",
    "serves_reads",
    "transition",
]

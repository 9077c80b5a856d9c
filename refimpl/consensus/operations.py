"""Operations on the cluster state, and the results of applying them.

Rules (facts §2: the operations Qdrant sends through Raft):

* every change to the cluster state is one of the frozen dataclasses below, joined in the
  :data:`Operation` union; nothing else goes into a Raft entry;
* an operation is decided *before* it is proposed wherever a choice is involved (the shard
  placement of a new collection), so applying it is deterministic;
* applying returns :class:`Applied` or :class:`Rejected` (with a :class:`RejectReason`); a
  rejected operation leaves the state unchanged on every peer.

Theory of operation: replica-state changes are named by the *event* that causes them
(:class:`refimpl.replication.ReplicaEvent`), so the transition table of
:mod:`refimpl.replication.states` decides what is legal. ``from_state`` on
:class:`SetReplicaState` is a compare-and-set guard, as in Qdrant: a peer that saw a replica
Active and wants it Dead says so, and the operation is refused if another change came first.
"""

import enum
from dataclasses import dataclass

from refimpl.consensus.model import CollectionConfig, HnswConfig, ShardTransfer
from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaEvent, ReplicaState


@dataclass(frozen=True, slots=True)
class AddPeer:
    """A peer joins (or an existing peer announces a new URI)."""

    peer_id: PeerId
    uri: str


@dataclass(frozen=True, slots=True)
class RemovePeer:
    """A peer leaves; refused while it holds replicas unless ``force`` drops them."""

    peer_id: PeerId
    force: bool = False


@dataclass(frozen=True, slots=True)
class CreateCollection:
    """Create a collection; ``placement[shard]`` lists the peers hosting that shard."""

    name: str
    config: CollectionConfig
    placement: tuple[tuple[PeerId, ...], ...]


@dataclass(frozen=True, slots=True)
class UpdateCollectionParams:
    """Change parameters of an existing collection; ``None`` leaves a field unchanged."""

    name: str
    write_consistency_factor: int | None = None
    replication_factor: int | None = None
    read_fan_out_factor: int | None = None
    hnsw_config: HnswConfig | None = None
    read_fan_out_delay_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteCollection:
    name: str


@dataclass(frozen=True, slots=True)
class SetReplicaState:
    """Move one replica through the transition table; refused if it is not in ``from_state``
    (when given).

    ``resync_others`` goes with ``RECOVERED`` only (a snapshot recovered with priority
    ``snapshot``): in the same operation every transfer of the shard ends and every other
    Active replica becomes Dead, so they all pull the recovered content. Two operations would
    leave a window -- a crash between them -- in which Active replicas disagree."""

    collection: str
    shard_id: ShardId
    peer_id: PeerId
    event: ReplicaEvent
    from_state: ReplicaState | None = None
    resync_others: bool = False


@dataclass(frozen=True, slots=True)
class StartTransfer:
    collection: str
    transfer: ShardTransfer


@dataclass(frozen=True, slots=True)
class FinishTransfer:
    """The target has everything: it becomes Active; a move drops the source replica."""

    collection: str
    shard_id: ShardId
    from_peer: PeerId
    to_peer: PeerId


@dataclass(frozen=True, slots=True)
class AbortTransfer:
    """Stop a transfer: a replicating target becomes Dead, a moving target is dropped."""

    collection: str
    shard_id: ShardId
    from_peer: PeerId
    to_peer: PeerId
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RemoveReplica:
    """Drop one replica (the spec's ``drop_replica``); never the last Active one."""

    collection: str
    shard_id: ShardId
    peer_id: PeerId


@dataclass(frozen=True, slots=True)
class CreateRecoveryReplica:
    """Add a replica in Recovery on a peer, to be filled from a snapshot (for a shard that
    lost every copy, spec "Recover from snapshot")."""

    collection: str
    shard_id: ShardId
    peer_id: PeerId


Operation = (
    AddPeer
    | RemovePeer
    | CreateCollection
    | UpdateCollectionParams
    | DeleteCollection
    | SetReplicaState
    | StartTransfer
    | FinishTransfer
    | AbortTransfer
    | RemoveReplica
    | CreateRecoveryReplica
)

OPERATION_TYPES: tuple[type[Operation], ...] = (
    AddPeer,
    RemovePeer,
    CreateCollection,
    UpdateCollectionParams,
    DeleteCollection,
    SetReplicaState,
    StartTransfer,
    FinishTransfer,
    AbortTransfer,
    RemoveReplica,
    CreateRecoveryReplica,
)


class RejectReason(enum.Enum):
    """Why an operation did not apply; ``http_status`` is the REST answer it maps to."""

    UNKNOWN_COLLECTION = "unknown_collection"
    COLLECTION_EXISTS = "collection_exists"
    UNKNOWN_PEER = "unknown_peer"
    PEER_HAS_REPLICAS = "peer_has_replicas"
    BAD_CONFIG = "bad_config"
    BAD_PLACEMENT = "bad_placement"
    UNKNOWN_REPLICA = "unknown_replica"
    REPLICA_EXISTS = "replica_exists"
    STATE_MISMATCH = "state_mismatch"
    ILLEGAL_TRANSITION = "illegal_transition"
    LAST_ACTIVE_REPLICA = "last_active_replica"
    BAD_TRANSFER = "bad_transfer"
    TRANSFER_CONFLICT = "transfer_conflict"
    UNKNOWN_TRANSFER = "unknown_transfer"

    @property
    def http_status(self) -> int:
        return 404 if self in _NOT_FOUND else 400


_NOT_FOUND = frozenset(
    {RejectReason.UNKNOWN_COLLECTION, RejectReason.UNKNOWN_PEER, RejectReason.UNKNOWN_TRANSFER}
)


@dataclass(frozen=True, slots=True)
class Applied:
    """The operation changed the state; ``summary`` says how, for logs."""

    summary: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The operation did not apply; the state is unchanged."""

    reason: RejectReason
    message: str


ApplyResult = Applied | Rejected

__all__ = [
    "OPERATION_TYPES",
    "AbortTransfer",
    "AddPeer",
    "Applied",
    "ApplyResult",
    "CreateCollection",
    "CreateRecoveryReplica",
    "DeleteCollection",
    "FinishTransfer",
    "Operation",
    "RejectReason",
    "Rejected",
    "RemovePeer",
    "RemoveReplica",
    "SetReplicaState",
    "StartTransfer",
    "UpdateCollectionParams",
]

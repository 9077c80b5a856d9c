"""The replicated cluster state (spec "Raft"): peers, collections, shard placement, replica
states and shard transfers, changed only by typed operations applied in log order.

* :mod:`refimpl.consensus.model` — the state and collection config;
* :mod:`refimpl.consensus.operations` — the operations and their results;
* :mod:`refimpl.consensus.apply` — ``apply(state, operation) -> (state, result)``, pure;
* :mod:`refimpl.consensus.placement` — where a new collection's replicas go;
* :mod:`refimpl.consensus.codec` — stable JSON bytes for Raft entries and snapshots.

Pure and synchronous: no I/O, no clock, no trio.
"""

from refimpl.consensus.apply import Outcome, apply, state_problems
from refimpl.consensus.codec import (
    CodecError,
    decode_operation,
    decode_state,
    encode_operation,
    encode_state,
)
from refimpl.consensus.model import (
    ClusterState,
    CollectionConfig,
    CollectionState,
    Distance,
    HnswConfig,
    PeerInfo,
    ShardTransfer,
    TransferMethod,
    VectorParams,
    collection_name_problem,
    config_problems,
)
from refimpl.consensus.operations import (
    OPERATION_TYPES,
    AbortTransfer,
    AddPeer,
    Applied,
    ApplyResult,
    CreateCollection,
    CreateRecoveryReplica,
    DeleteCollection,
    FinishTransfer,
    Operation,
    Rejected,
    RejectReason,
    RemovePeer,
    RemoveReplica,
    SetReplicaState,
    StartTransfer,
    UpdateCollectionParams,
)
from refimpl.consensus.placement import PlacementError, plan_placement

__all__ = [
    "OPERATION_TYPES",
    "AbortTransfer",
    "AddPeer",
    "Applied",
    "ApplyResult",
    "ClusterState",
    "CodecError",
    "CollectionConfig",
    "CollectionState",
    "CreateCollection",
    "CreateRecoveryReplica",
    "DeleteCollection",
    "Distance",
    "FinishTransfer",
    "HnswConfig",
    "Operation",
    "Outcome",
    "PeerInfo",
    "PlacementError",
    "RejectReason",
    "Rejected",
    "RemovePeer",
    "RemoveReplica",
    "SetReplicaState",
    "ShardTransfer",
    "StartTransfer",
    "TransferMethod",
    "UpdateCollectionParams",
    "VectorParams",
    "apply",
    "collection_name_problem",
    "config_problems",
    "decode_operation",
    "decode_state",
    "encode_operation",
    "encode_state",
    "plan_placement",
    "state_problems",
]

"""Applying an operation to the cluster state: a pure function, the same on every peer.

Rules (spec "Raft": collection operations are durable and eventually executed by all nodes):

* ``apply(state, operation)`` returns ``(new_state, result)``; it never changes ``state``,
  never raises for a well-typed operation, and depends on nothing but its arguments — so every
  peer that applies the same committed log reaches the same state;
* an operation that cannot apply (unknown collection or peer, duplicate collection, a
  placement naming a peer that left, an illegal replica transition, a peer that still holds
  replicas, the last Active replica of a shard) returns :class:`Rejected` and the state
  unchanged;
* replica states change only through :func:`refimpl.replication.transition`; the last Active
  replica of a shard never leaves Active (spec "Replication": a collection must contain at
  least one active replica of a shard);
* when a replica becomes Dead, every transfer it takes part in is aborted (as Qdrant does).

Theory of operation: one small function per operation; each looks things up, returns early with
a rejection, and otherwise builds the new state by copying only the containers it changes.
"""

from dataclasses import replace
from typing import assert_never

from refimpl.consensus.model import (
    URI_MAX_CHARS,
    ClusterState,
    CollectionState,
    PeerInfo,
    ShardTransfer,
    TransferMethod,
    collection_name_problem,
    config_problems,
)
from refimpl.consensus.operations import (
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
from refimpl.ids import PeerId, ShardId
from refimpl.replication import (
    TRANSITIONS,
    IllegalTransition,
    ReplicaEvent,
    ReplicaState,
    is_source_of_truth,
    transition,
)

Outcome = tuple[ClusterState, ApplyResult]

# Events that only transfer operations may cause, so transfers stay in the bookkeeping.
_TRANSFER_EVENTS = frozenset(
    {
        ReplicaEvent.CREATED,
        ReplicaEvent.TRANSFER_STARTED,
        ReplicaEvent.SNAPSHOT_TRANSFER_STARTED,
        ReplicaEvent.TRANSFER_FINISHED,
        ReplicaEvent.TRANSFER_ABORTED,
    }
)


def apply(state: ClusterState, operation: Operation) -> Outcome:
    """Apply one committed operation; return the new state and what happened."""
    match operation:
        case AddPeer():
            return _add_peer(state, operation)
        case RemovePeer():
            return _remove_peer(state, operation)
        case CreateCollection():
            return _create_collection(state, operation)
        case UpdateCollectionParams():
            return _update_params(state, operation)
        case DeleteCollection():
            return _delete_collection(state, operation)
        case SetReplicaState():
            return _set_replica_state(state, operation)
        case StartTransfer():
            return _start_transfer(state, operation)
        case FinishTransfer():
            return _finish_transfer(state, operation)
        case AbortTransfer():
            return _abort_transfer(state, operation)
        case RemoveReplica():
            return _remove_replica(state, operation)
        case CreateRecoveryReplica():
            return _create_recovery_replica(state, operation)
        case _:
            assert_never(operation)


# --- helpers -----------------------------------------------------------------------------


def _reject(state: ClusterState, reason: RejectReason, message: str) -> Outcome:
    return state, Rejected(reason, message)


def _put(state: ClusterState, name: str, coll: CollectionState | None) -> ClusterState:
    collections = dict(state.collections)
    if coll is None:
        del collections[name]
    else:
        collections[name] = coll
    return replace(state, collections=collections)


def _set_replica(
    coll: CollectionState, shard: ShardId, peer: PeerId, new: ReplicaState | None
) -> CollectionState:
    shard_map = dict(coll.replicas[shard])
    if new is None:
        shard_map.pop(peer, None)
    else:
        shard_map[peer] = new
    replicas = dict(coll.replicas)
    replicas[shard] = shard_map
    return replace(coll, replicas=replicas)


def _is_last_active(coll: CollectionState, shard: ShardId, peer: PeerId) -> bool:
    replicas = coll.replicas[shard]
    active = [p for p, s in replicas.items() if is_source_of_truth(s)]
    return active == [peer]


def _drop_transfer(coll: CollectionState, transfer: ShardTransfer) -> CollectionState:
    """End a transfer without finishing it: replicating target -> Dead, moving target gone."""
    coll = replace(coll, transfers=tuple(t for t in coll.transfers if t.key != transfer.key))
    target = coll.replicas[transfer.shard_id].get(transfer.to_peer)
    if target is None:
        return coll
    if not transfer.sync:
        return _set_replica(coll, transfer.shard_id, transfer.to_peer, None)
    if (target, ReplicaEvent.TRANSFER_ABORTED) in TRANSITIONS:
        new = transition(target, ReplicaEvent.TRANSFER_ABORTED)
        return _set_replica(coll, transfer.shard_id, transfer.to_peer, new)
    return coll


def _drop_transfers_involving(
    coll: CollectionState, peer: PeerId, shard: ShardId | None = None
) -> CollectionState:
    for transfer in coll.transfers:
        involved = peer in (transfer.from_peer, transfer.to_peer)
        if involved and (shard is None or transfer.shard_id == shard):
            coll = _drop_transfer(coll, transfer)
    return coll


def _find_replica(
    state: ClusterState, name: str, shard: ShardId, peer: PeerId
) -> tuple[CollectionState, ReplicaState] | Rejected:
    coll = state.collections.get(name)
    if coll is None:
        return Rejected(RejectReason.UNKNOWN_COLLECTION, f"collection {name!r} does not exist")
    current = coll.replicas.get(shard, {}).get(peer)
    if current is None:
        return Rejected(
            RejectReason.UNKNOWN_REPLICA,
            f"collection {name!r} has no replica of shard {shard} on peer {peer}",
        )
    return coll, current


def _find_transfer(
    state: ClusterState, name: str, key: tuple[ShardId, PeerId, PeerId]
) -> tuple[CollectionState, ShardTransfer] | Rejected:
    coll = state.collections.get(name)
    if coll is None:
        return Rejected(RejectReason.UNKNOWN_COLLECTION, f"collection {name!r} does not exist")
    for transfer in coll.transfers:
        if transfer.key == key:
            return coll, transfer
    shard, src, dst = key
    return Rejected(
        RejectReason.UNKNOWN_TRANSFER,
        f"there is no transfer of shard {shard} from peer {src} to peer {dst} in {name!r}",
    )


# --- peers -------------------------------------------------------------------------------


def _add_peer(state: ClusterState, op: AddPeer) -> Outcome:
    if op.peer_id < 1:
        return _reject(state, RejectReason.BAD_CONFIG, f"peer id must be positive: {op.peer_id}")
    if not op.uri or len(op.uri) > URI_MAX_CHARS:
        return _reject(state, RejectReason.BAD_CONFIG, "peer URI must be a non-empty string")
    peers = dict(state.peers)
    known = peers.get(op.peer_id)
    peers[op.peer_id] = PeerInfo(op.uri)
    verb = "added" if known is None else f"moved from {known.uri}"
    return replace(state, peers=peers), Applied(f"peer {op.peer_id} {verb} at {op.uri}")


def _remove_peer(state: ClusterState, op: RemovePeer) -> Outcome:
    if op.peer_id not in state.peers:
        return _reject(state, RejectReason.UNKNOWN_PEER, f"peer {op.peer_id} is not in the cluster")
    holdings = state.holdings(op.peer_id)
    if holdings and not op.force:
        listed = ", ".join(f"{name}/{shard}" for name, shard in holdings[:5])
        return _reject(
            state,
            RejectReason.PEER_HAS_REPLICAS,
            f"peer {op.peer_id} still holds {len(holdings)} shard replicas ({listed}); "
            "move them to other peers first, or remove with force=true to drop them",
        )
    for name, original in list(state.collections.items()):
        coll = _drop_transfers_involving(original, op.peer_id)
        for shard in coll.replicas:
            coll = _set_replica(coll, shard, op.peer_id, None)
        state = _put(state, name, coll)
    peers = {p: info for p, info in state.peers.items() if p != op.peer_id}
    dropped = f", dropping {len(holdings)} replicas" if holdings else ""
    return replace(state, peers=peers), Applied(f"peer {op.peer_id} removed{dropped}")


# --- collections -------------------------------------------------------------------------


def _placement_problem(state: ClusterState, op: CreateCollection) -> str | None:
    if len(op.placement) != op.config.shard_number:
        return (
            f"placement lists {len(op.placement)} shards, shard_number is {op.config.shard_number}"
        )
    for shard, peers in enumerate(op.placement):
        if not peers or len(peers) > op.config.replication_factor:
            return f"shard {shard} must have 1 to replication_factor replicas, has {len(peers)}"
        if len(set(peers)) != len(peers):
            return f"shard {shard} has two replicas on the same peer"
        unknown = [p for p in peers if p not in state.peers]
        if unknown:
            return f"shard {shard} is placed on peer {unknown[0]}, which is not in the cluster"
    return None


def _create_collection(state: ClusterState, op: CreateCollection) -> Outcome:
    name_problem = collection_name_problem(op.name)
    if name_problem is not None:
        return _reject(state, RejectReason.BAD_CONFIG, name_problem)
    if op.name in state.collections:
        return _reject(
            state, RejectReason.COLLECTION_EXISTS, f"collection {op.name!r} already exists"
        )
    problems = config_problems(op.config)
    if problems:
        return _reject(state, RejectReason.BAD_CONFIG, "; ".join(problems))
    placement_problem = _placement_problem(state, op)
    if placement_problem is not None:
        return _reject(state, RejectReason.BAD_PLACEMENT, placement_problem)
    initial = transition(None, ReplicaEvent.CREATED)
    replicas = {
        ShardId(shard): {peer: initial for peer in peers}
        for shard, peers in enumerate(op.placement)
    }
    coll = CollectionState(config=op.config, replicas=replicas)
    return _put(state, op.name, coll), Applied(
        f"collection {op.name!r} created with {op.config.shard_number} shards"
    )


def _update_params(state: ClusterState, op: UpdateCollectionParams) -> Outcome:
    coll = state.collections.get(op.name)
    if coll is None:
        return _reject(
            state, RejectReason.UNKNOWN_COLLECTION, f"collection {op.name!r} does not exist"
        )
    config = coll.config
    if op.write_consistency_factor is not None:
        config = replace(config, write_consistency_factor=op.write_consistency_factor)
    if op.replication_factor is not None:
        config = replace(config, replication_factor=op.replication_factor)
    if op.read_fan_out_factor is not None:
        config = replace(config, read_fan_out_factor=op.read_fan_out_factor)
    if op.read_fan_out_delay_ms is not None:
        config = replace(config, read_fan_out_delay_ms=op.read_fan_out_delay_ms)
    if op.hnsw_config is not None:
        config = replace(config, hnsw_config=op.hnsw_config)
    problems = config_problems(config)
    if problems:
        return _reject(state, RejectReason.BAD_CONFIG, "; ".join(problems))
    return _put(state, op.name, replace(coll, config=config)), Applied(
        f"collection {op.name!r} parameters updated"
    )


def _delete_collection(state: ClusterState, op: DeleteCollection) -> Outcome:
    if op.name not in state.collections:
        return _reject(
            state, RejectReason.UNKNOWN_COLLECTION, f"collection {op.name!r} does not exist"
        )
    return _put(state, op.name, None), Applied(f"collection {op.name!r} deleted")


# --- replicas ----------------------------------------------------------------------------


def _transfer_guard(coll: CollectionState, op: SetReplicaState) -> Rejected | None:
    """A replica in a transfer only takes the events the transfer expects: a failed update
    (which aborts the transfer) and, on the target, the snapshot being applied."""
    involved = [
        t
        for t in coll.transfers
        if t.shard_id == op.shard_id and op.peer_id in (t.from_peer, t.to_peer)
    ]
    is_target = any(t.to_peer == op.peer_id for t in involved)
    if op.event is ReplicaEvent.SNAPSHOT_APPLIED and not is_target:
        return Rejected(
            RejectReason.ILLEGAL_TRANSITION,
            "a snapshot can only be applied on the target of a transfer",
        )
    allowed = {ReplicaEvent.UPDATE_FAILED, ReplicaEvent.SNAPSHOT_APPLIED}
    if involved and op.event not in allowed:
        return Rejected(
            RejectReason.TRANSFER_CONFLICT,
            f"the replica on peer {op.peer_id} is in a transfer of shard {op.shard_id}; "
            f"event {op.event.value!r} must wait until it finishes or is aborted",
        )
    return None


def _set_replica_state(state: ClusterState, op: SetReplicaState) -> Outcome:
    found = _find_replica(state, op.collection, op.shard_id, op.peer_id)
    if isinstance(found, Rejected):
        return state, found
    coll, current = found
    where = f"replica of {op.collection}/{op.shard_id} on peer {op.peer_id}"
    if op.from_state is not None and current is not op.from_state:
        return _reject(
            state,
            RejectReason.STATE_MISMATCH,
            f"{where} is {current.value}, not {op.from_state.value}",
        )
    if op.event in _TRANSFER_EVENTS:
        return _reject(
            state,
            RejectReason.ILLEGAL_TRANSITION,
            f"event {op.event.value!r} is applied by collection or transfer operations only",
        )
    guard = _transfer_guard(coll, op)
    if guard is not None:
        return state, guard
    if op.resync_others and op.event is not ReplicaEvent.RECOVERED:
        return _reject(
            state,
            RejectReason.ILLEGAL_TRANSITION,
            f"{where}: resync_others goes with the {ReplicaEvent.RECOVERED.value!r} event only",
        )
    try:
        new = transition(current, op.event)
    except IllegalTransition as error:
        return _reject(state, RejectReason.ILLEGAL_TRANSITION, f"{where}: {error}")
    if not is_source_of_truth(new) and _is_last_active(coll, op.shard_id, op.peer_id):
        return _reject(
            state,
            RejectReason.LAST_ACTIVE_REPLICA,
            f"cannot deactivate the last active {where}",
        )
    coll = _set_replica(coll, op.shard_id, op.peer_id, new)
    if new is ReplicaState.Dead:
        coll = _drop_transfers_involving(coll, op.peer_id, op.shard_id)
    also = ""
    if op.resync_others:
        coll, demoted = _demote_others(coll, op.shard_id, op.peer_id)
        also = f"; Dead to resync from it: {sorted(demoted)}"
    return _put(state, op.collection, coll), Applied(
        f"{where}: {current.value} -> {new.value} ({op.event.value}){also}"
    )


def _demote_others(
    coll: CollectionState, shard: ShardId, keep: PeerId
) -> tuple[CollectionState, list[PeerId]]:
    """Every transfer of ``shard`` ends and every Active replica but ``keep``'s becomes Dead
    (``SetReplicaState.resync_others``); returns the demoted peers."""
    for transfer in coll.transfers:
        if transfer.shard_id == shard:
            coll = _drop_transfer(coll, transfer)
    demoted = [
        peer
        for peer, current in coll.replicas[shard].items()
        if peer != keep and current is ReplicaState.Active
    ]
    for peer in demoted:
        coll = _set_replica(coll, shard, peer, transition(ReplicaState.Active,
                                                          ReplicaEvent.UPDATE_FAILED))  # fmt: skip
    return coll, demoted


def _remove_replica(state: ClusterState, op: RemoveReplica) -> Outcome:
    found = _find_replica(state, op.collection, op.shard_id, op.peer_id)
    if isinstance(found, Rejected):
        return state, found
    coll, current = found
    where = f"replica of {op.collection}/{op.shard_id} on peer {op.peer_id}"
    if any(
        op.peer_id in (t.from_peer, t.to_peer) for t in coll.transfers if t.shard_id == op.shard_id
    ):
        return _reject(
            state, RejectReason.TRANSFER_CONFLICT, f"{where} is in a transfer; abort it first"
        )
    if len(coll.replicas[op.shard_id]) == 1 or (
        is_source_of_truth(current) and _is_last_active(coll, op.shard_id, op.peer_id)
    ):
        return _reject(
            state,
            RejectReason.LAST_ACTIVE_REPLICA,
            f"cannot remove the {where}: a shard must keep at least one active replica",
        )
    coll = _set_replica(coll, op.shard_id, op.peer_id, None)
    return _put(state, op.collection, coll), Applied(f"{where} removed")


def _create_recovery_replica(state: ClusterState, op: CreateRecoveryReplica) -> Outcome:
    coll = state.collections.get(op.collection)
    if coll is None or op.shard_id not in coll.replicas:
        return _reject(
            state,
            RejectReason.UNKNOWN_COLLECTION if coll is None else RejectReason.UNKNOWN_REPLICA,
            f"collection {op.collection!r} has no shard {op.shard_id}",
        )
    if op.peer_id not in state.peers:
        return _reject(state, RejectReason.UNKNOWN_PEER, f"peer {op.peer_id} is not in the cluster")
    if op.peer_id in coll.replicas[op.shard_id]:
        return _reject(
            state,
            RejectReason.REPLICA_EXISTS,
            f"peer {op.peer_id} already has a replica of {op.collection}/{op.shard_id}",
        )
    new = transition(None, ReplicaEvent.SNAPSHOT_RECOVERY_STARTED)
    coll = _set_replica(coll, op.shard_id, op.peer_id, new)
    return _put(state, op.collection, coll), Applied(
        f"replica of {op.collection}/{op.shard_id} on peer {op.peer_id} created in {new.value}"
    )


# --- transfers ---------------------------------------------------------------------------


def _transfer_problem(
    state: ClusterState, coll: CollectionState, t: ShardTransfer
) -> Rejected | None:
    if t.from_peer == t.to_peer:
        return Rejected(RejectReason.BAD_TRANSFER, "source and target peer must differ")
    for peer in (t.from_peer, t.to_peer):
        if peer not in state.peers:
            return Rejected(RejectReason.UNKNOWN_PEER, f"peer {peer} is not in the cluster")
    replicas = coll.replicas.get(t.shard_id)
    if replicas is None:
        return Rejected(RejectReason.UNKNOWN_REPLICA, f"the collection has no shard {t.shard_id}")
    source = replicas.get(t.from_peer)
    if source is None or not is_source_of_truth(source):
        shown = "no replica" if source is None else source.value
        return Rejected(
            RejectReason.BAD_TRANSFER,
            f"the source replica on peer {t.from_peer} must be Active, it is {shown}",
        )
    target = replicas.get(t.to_peer)
    if target is not None and not (t.sync and target is ReplicaState.Dead):
        return Rejected(
            RejectReason.BAD_TRANSFER,
            f"peer {t.to_peer} already has a replica of shard {t.shard_id} ({target.value})",
        )
    for other in coll.transfers:
        if other.shard_id == t.shard_id and {other.from_peer, other.to_peer} & {
            t.from_peer,
            t.to_peer,
        }:
            return Rejected(
                RejectReason.TRANSFER_CONFLICT,
                f"shard {t.shard_id} already has a transfer involving these peers",
            )
    return None


def _start_transfer(state: ClusterState, op: StartTransfer) -> Outcome:
    coll = state.collections.get(op.collection)
    if coll is None:
        return _reject(
            state, RejectReason.UNKNOWN_COLLECTION, f"collection {op.collection!r} does not exist"
        )
    t = op.transfer
    problem = _transfer_problem(state, coll, t)
    if problem is not None:
        return state, problem
    event = (
        ReplicaEvent.TRANSFER_STARTED
        if t.method is TransferMethod.STREAM_RECORDS
        else ReplicaEvent.SNAPSHOT_TRANSFER_STARTED
    )
    new = transition(coll.replicas[t.shard_id].get(t.to_peer), event)
    coll = _set_replica(coll, t.shard_id, t.to_peer, new)
    coll = replace(coll, transfers=(*coll.transfers, t))
    kind = "replication" if t.sync else "move"
    return _put(state, op.collection, coll), Applied(
        f"{kind} of {op.collection}/{t.shard_id} from peer {t.from_peer} to peer {t.to_peer} "
        f"started ({t.method.value}); target is {new.value}"
    )


def _finish_transfer(state: ClusterState, op: FinishTransfer) -> Outcome:
    found = _find_transfer(state, op.collection, (op.shard_id, op.from_peer, op.to_peer))
    if isinstance(found, Rejected):
        return state, found
    coll, t = found
    target = coll.replicas[t.shard_id][t.to_peer]
    try:
        new = transition(target, ReplicaEvent.TRANSFER_FINISHED)
    except IllegalTransition as error:
        return _reject(state, RejectReason.ILLEGAL_TRANSITION, f"cannot finish yet: {error}")
    coll = replace(coll, transfers=tuple(x for x in coll.transfers if x.key != t.key))
    coll = _set_replica(coll, t.shard_id, t.to_peer, new)
    if not t.sync:
        coll = _set_replica(coll, t.shard_id, t.from_peer, None)
    return _put(state, op.collection, coll), Applied(
        f"transfer of {op.collection}/{t.shard_id} to peer {t.to_peer} finished"
        + ("" if t.sync else f"; replica on peer {t.from_peer} dropped")
    )


def _abort_transfer(state: ClusterState, op: AbortTransfer) -> Outcome:
    found = _find_transfer(state, op.collection, (op.shard_id, op.from_peer, op.to_peer))
    if isinstance(found, Rejected):
        return state, found
    coll, t = found
    coll = _drop_transfer(coll, t)
    why = f": {op.reason}" if op.reason else ""
    return _put(state, op.collection, coll), Applied(
        f"transfer of {op.collection}/{t.shard_id} to peer {t.to_peer} aborted{why}"
    )


# --- invariants --------------------------------------------------------------------------


def state_problems(state: ClusterState) -> list[str]:
    """Invariants every reachable state keeps (used by property tests and the simulator)."""
    problems = []
    for name, coll in state.collections.items():
        if sorted(coll.replicas) != list(range(coll.config.shard_number)):
            problems.append(f"{name}: shards are not 0..shard_number-1")
        for shard, replicas in coll.replicas.items():
            for peer in replicas:
                if peer not in state.peers:
                    problems.append(f"{name}/{shard}: replica on unknown peer {peer}")
        for t in coll.transfers:
            replicas = coll.replicas.get(t.shard_id, {})
            if replicas.get(t.from_peer) is not ReplicaState.Active:
                problems.append(f"{name}/{t.shard_id}: transfer source is not Active")
            if replicas.get(t.to_peer) not in (ReplicaState.Partial, ReplicaState.Recovery):
                problems.append(f"{name}/{t.shard_id}: transfer target is not Partial/Recovery")
    return problems


__all__ = ["Outcome", "apply", "state_problems"]

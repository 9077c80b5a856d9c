"""Tests for applying operations to the cluster state (spec "Raft", "Sharding", "Cluster
scaling", "Replication"; Qdrant's consensus operations as summarised in facts §2, §4.2, §6)."""

from refimpl.consensus import (
    AbortTransfer,
    AddPeer,
    ClusterState,
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
    ShardTransfer,
    StartTransfer,
    TransferMethod,
    UpdateCollectionParams,
    apply,
    state_problems,
)
from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaEvent, ReplicaState
from tests.consensus._build import cluster, config, must, replicas, run

A, D, P = ReplicaState.Active, ReplicaState.Dead, ReplicaState.Partial
S0 = ShardId(0)


def rejected(result: object, reason: RejectReason) -> bool:
    return isinstance(result, Rejected) and result.reason is reason


def test_new_collection_replicas_start_initializing_then_activate() -> None:
    """Replication: a new replica starts Initializing and becomes Active through consensus."""
    state = cluster(activate=False)
    assert set(replicas(state).values()) == {ReplicaState.Initializing}
    peer = next(iter(replicas(state)))
    state = must(state, SetReplicaState("c", S0, peer, ReplicaEvent.ACTIVATED))
    assert replicas(state)[peer] is A


def test_duplicate_and_unknown_collections_are_rejected_not_raised() -> None:
    """Operations that cannot apply give a typed error result and leave the state unchanged."""
    state = cluster()
    dup = CreateCollection("c", config(), ((PeerId(1),), (PeerId(2),)))
    cases: list[tuple[Operation, RejectReason]] = [
        (dup, RejectReason.COLLECTION_EXISTS),
        (DeleteCollection("nope"), RejectReason.UNKNOWN_COLLECTION),
        (
            UpdateCollectionParams("nope", write_consistency_factor=2),
            RejectReason.UNKNOWN_COLLECTION,
        ),
        (
            SetReplicaState("nope", S0, PeerId(1), ReplicaEvent.ACTIVATED),
            RejectReason.UNKNOWN_COLLECTION,
        ),
    ]
    for op, reason in cases:
        new, result = run(state, op)
        assert rejected(result, reason), (op, result)
        assert new is state
    assert RejectReason.UNKNOWN_COLLECTION.http_status == 404
    assert RejectReason.COLLECTION_EXISTS.http_status == 400


def test_placement_must_name_known_distinct_peers_one_entry_per_shard() -> None:
    """Sharding: the placement is agreed in the operation; a removed peer cannot host a shard."""
    state = cluster()
    bad = [
        ((PeerId(1), PeerId(9)), (PeerId(2),)),
        ((PeerId(1),),),
        ((PeerId(1), PeerId(1)), (PeerId(2),)),
        ((), (PeerId(2),)),
        ((PeerId(1), PeerId(2), PeerId(3)), (PeerId(2),)),
    ]
    for placement in bad:
        _, result = run(state, CreateCollection("d", config(2, 2), placement))
        assert rejected(result, RejectReason.BAD_PLACEMENT), placement
    _, result = run(state, CreateCollection("d", config(0, 1), ()))
    assert rejected(result, RejectReason.BAD_CONFIG)
    _, result = run(state, CreateCollection("a/b", config(1, 1), ((PeerId(1),),)))
    assert rejected(result, RejectReason.BAD_CONFIG)


def test_update_params_and_delete_collection() -> None:
    """Collection parameters change through consensus; invalid values are refused."""
    state = cluster()
    state = must(state, UpdateCollectionParams("c", write_consistency_factor=2))
    assert state.collections["c"].config.write_consistency_factor == 2
    _, result = run(state, UpdateCollectionParams("c", replication_factor=0))
    assert rejected(result, RejectReason.BAD_CONFIG)
    state = must(state, DeleteCollection("c"))
    assert state.collections == {}


def test_peers_join_change_uri_and_leave() -> None:
    """Add and remove peers with their URIs; a re-announced id updates its URI."""
    state = must(ClusterState(), AddPeer(PeerId(7), "http://a:6335"))
    state = must(state, AddPeer(PeerId(7), "http://b:6335"))
    assert state.peers[PeerId(7)].uri == "http://b:6335"
    assert rejected(run(state, AddPeer(PeerId(8), ""))[1], RejectReason.BAD_CONFIG)
    assert rejected(run(state, RemovePeer(PeerId(9)))[1], RejectReason.UNKNOWN_PEER)
    state = must(state, RemovePeer(PeerId(7)))
    assert state.peers == {}


def test_removing_a_peer_with_replicas_needs_force() -> None:
    """Cluster scaling: a peer holding replicas is not removed unless forced; force drops them."""
    state = cluster(peers=3, shards=3, rf=2)
    new, result = run(state, RemovePeer(PeerId(1)))
    assert rejected(result, RejectReason.PEER_HAS_REPLICAS)
    assert "force" in result.message  # type: ignore[union-attr]
    assert new is state
    state = must(state, RemovePeer(PeerId(1), force=True))
    assert PeerId(1) not in state.peers
    assert state.holdings(PeerId(1)) == []
    assert state_problems(state) == []


def test_replica_state_changes_follow_the_table_and_guards() -> None:
    """Set-replica-state applies the transition table, the from_state guard and the last-Active rule."""
    state = cluster(peers=2, shards=1, rf=2)
    fail1 = SetReplicaState("c", S0, PeerId(1), ReplicaEvent.UPDATE_FAILED, from_state=A)
    state = must(state, fail1)
    assert replicas(state)[PeerId(1)] is D
    assert rejected(run(state, fail1)[1], RejectReason.STATE_MISMATCH)
    fail2 = SetReplicaState("c", S0, PeerId(2), ReplicaEvent.UPDATE_FAILED)
    assert rejected(run(state, fail2)[1], RejectReason.LAST_ACTIVE_REPLICA)
    wrong = SetReplicaState("c", S0, PeerId(1), ReplicaEvent.RECOVERED)
    assert rejected(run(state, wrong)[1], RejectReason.ILLEGAL_TRANSITION)
    sneaky = SetReplicaState("c", S0, PeerId(1), ReplicaEvent.TRANSFER_FINISHED)
    assert rejected(run(state, sneaky)[1], RejectReason.ILLEGAL_TRANSITION)
    ghost = SetReplicaState("c", S0, PeerId(9), ReplicaEvent.ACTIVATED)
    assert rejected(run(state, ghost)[1], RejectReason.UNKNOWN_REPLICA)


def test_move_shard_keeps_both_copies_then_switches() -> None:
    """Cluster scaling: during a move the target is Partial and the source Active; finishing
    makes the target Active and drops the source."""
    state = cluster(peers=3, shards=1, rf=1)
    (source,) = replicas(state)
    target = PeerId(3) if source != PeerId(3) else PeerId(2)
    move = ShardTransfer(S0, source, target, sync=False)
    state = must(state, StartTransfer("c", move))
    assert replicas(state) == {source: A, target: P}
    assert state_problems(state) == []
    state = must(state, FinishTransfer("c", S0, source, target))
    assert replicas(state) == {target: A}
    assert state.collections["c"].transfers == ()


def test_replicating_to_a_dead_replica_recovers_it() -> None:
    """Node Failure Recovery: a Dead replica is refilled by a transfer and becomes Active."""
    state = cluster(peers=2, shards=1, rf=2)
    state = must(state, SetReplicaState("c", S0, PeerId(2), ReplicaEvent.UPDATE_FAILED))
    state = must(state, StartTransfer("c", ShardTransfer(S0, PeerId(1), PeerId(2), sync=True)))
    assert replicas(state) == {PeerId(1): A, PeerId(2): P}
    state = must(state, FinishTransfer("c", S0, PeerId(1), PeerId(2)))
    assert replicas(state) == {PeerId(1): A, PeerId(2): A}


def test_snapshot_transfer_finishes_only_after_the_snapshot_is_applied() -> None:
    """A snapshot transfer's target is in Recovery until the snapshot is in, then Partial."""
    state = cluster(peers=2, shards=1, rf=1)
    (source,) = replicas(state)
    target = PeerId(3 - source)
    t = ShardTransfer(S0, source, target, sync=True, method=TransferMethod.SNAPSHOT)
    state = must(state, StartTransfer("c", t))
    assert replicas(state)[target] is ReplicaState.Recovery
    early = FinishTransfer("c", S0, source, target)
    assert rejected(run(state, early)[1], RejectReason.ILLEGAL_TRANSITION)
    state = must(state, SetReplicaState("c", S0, target, ReplicaEvent.SNAPSHOT_APPLIED))
    state = must(state, early)
    assert replicas(state) == {source: A, target: A}


def test_aborting_a_transfer_kills_a_replicating_target_and_drops_a_moving_one() -> None:
    """An aborted transfer never leaves a half-filled target Active."""
    state = cluster(peers=3, shards=1, rf=1)
    (source,) = replicas(state)
    others = [p for p in (PeerId(1), PeerId(2), PeerId(3)) if p != source]
    state = must(state, StartTransfer("c", ShardTransfer(S0, source, others[0], sync=True)))
    state = must(state, AbortTransfer("c", S0, source, others[0], reason="test"))
    assert replicas(state) == {source: A, others[0]: D}
    state = must(state, StartTransfer("c", ShardTransfer(S0, source, others[1], sync=False)))
    state = must(state, AbortTransfer("c", S0, source, others[1]))
    assert replicas(state) == {source: A, others[0]: D}
    missing = AbortTransfer("c", S0, source, others[1])
    assert rejected(run(state, missing)[1], RejectReason.UNKNOWN_TRANSFER)


def test_transfer_validation() -> None:
    """A transfer needs an Active source, a different known target, and no conflicting transfer."""
    state = cluster(peers=3, shards=1, rf=2)
    hosts = sorted(replicas(state))
    spare = next(p for p in (PeerId(1), PeerId(2), PeerId(3)) if p not in hosts)
    cases = [
        (ShardTransfer(S0, hosts[0], hosts[0], sync=True), RejectReason.BAD_TRANSFER),
        (ShardTransfer(S0, hosts[0], PeerId(9), sync=True), RejectReason.UNKNOWN_PEER),
        (ShardTransfer(S0, spare, hosts[0], sync=True), RejectReason.BAD_TRANSFER),
        (ShardTransfer(S0, hosts[0], hosts[1], sync=True), RejectReason.BAD_TRANSFER),
        (ShardTransfer(ShardId(5), hosts[0], spare, sync=True), RejectReason.UNKNOWN_REPLICA),
    ]
    for transfer, reason in cases:
        assert rejected(run(state, StartTransfer("c", transfer))[1], reason), transfer
    state = must(state, StartTransfer("c", ShardTransfer(S0, hosts[0], spare, sync=True)))
    again = StartTransfer("c", ShardTransfer(S0, hosts[1], spare, sync=True))
    assert rejected(run(state, again)[1], RejectReason.BAD_TRANSFER)


def test_a_shard_has_at_most_one_transfer_per_peer() -> None:
    """No two transfers of the same shard may involve the same peer."""
    state = cluster(peers=4, shards=1, rf=2)
    h0, h1 = sorted(replicas(state))
    s1, s2 = sorted({PeerId(1), PeerId(2), PeerId(3), PeerId(4)} - {h0, h1})
    state = must(state, StartTransfer("c", ShardTransfer(S0, h0, s1, sync=True)))
    same_source = StartTransfer("c", ShardTransfer(S0, h0, s2, sync=True))
    assert rejected(run(state, same_source)[1], RejectReason.TRANSFER_CONFLICT)
    state = must(state, StartTransfer("c", ShardTransfer(S0, h1, s2, sync=True)))
    assert len(state.collections["c"].transfers) == 2
    assert state_problems(state) == []


def test_a_replica_that_dies_aborts_its_transfers() -> None:
    """When a transfer's target becomes Dead the transfer is aborted (as in Qdrant)."""
    state = cluster(peers=3, shards=1, rf=1)
    (source,) = replicas(state)
    target = next(p for p in (PeerId(1), PeerId(2), PeerId(3)) if p != source)
    state = must(state, StartTransfer("c", ShardTransfer(S0, source, target, sync=True)))
    state = must(state, SetReplicaState("c", S0, target, ReplicaEvent.UPDATE_FAILED))
    assert state.collections["c"].transfers == ()
    assert replicas(state) == {source: A, target: D}
    assert state_problems(state) == []


def test_dropping_replicas_keeps_at_least_one_active() -> None:
    """Replication: a collection must contain at least one active replica of a shard."""
    state = cluster(peers=2, shards=1, rf=2)
    state = must(state, RemoveReplica("c", S0, PeerId(1)))
    last = RemoveReplica("c", S0, PeerId(2))
    assert rejected(run(state, last)[1], RejectReason.LAST_ACTIVE_REPLICA)
    assert rejected(run(state, last)[1], RejectReason.LAST_ACTIVE_REPLICA)
    assert rejected(run(state, RemoveReplica("c", S0, PeerId(1)))[1], RejectReason.UNKNOWN_REPLICA)


def test_a_shard_that_lost_every_copy_is_recovered_from_a_snapshot() -> None:
    """Recover from snapshot: a new replica in Recovery becomes Active once restored."""
    state = cluster(peers=2, shards=1, rf=1)
    (host,) = replicas(state)
    state = must(state, RemovePeer(host, force=True))
    assert replicas(state) == {}
    other = PeerId(3 - host)
    state = must(state, CreateRecoveryReplica("c", S0, other))
    assert rejected(
        run(state, CreateRecoveryReplica("c", S0, other))[1], RejectReason.REPLICA_EXISTS
    )
    state = must(state, SetReplicaState("c", S0, other, ReplicaEvent.RECOVERED))
    assert replicas(state) == {other: A}


def test_apply_does_not_change_its_input() -> None:
    """apply is pure: the state it was given is unchanged afterwards."""
    state = cluster(peers=3, shards=2, rf=2)
    before = repr(state)
    apply(state, RemovePeer(PeerId(1), force=True))
    apply(state, SetReplicaState("c", S0, PeerId(1), ReplicaEvent.UPDATE_FAILED))
    assert repr(state) == before


def test_a_snapshot_recovery_with_priority_snapshot_demotes_the_others_in_the_same_operation() -> (
    None
):
    """Priority ``snapshot`` (facts §7.7): the step to Active carries ``resync_others``, so in
    one operation the recovered replica is Active, every other Active replica is Dead (to pull
    its content) and the shard's transfers end -- no state in which Active replicas differ.
    Without the flag the others stay Active; with another event the flag is refused."""
    state = cluster(peers=3, shards=1, rf=3)
    one, two, three = PeerId(1), PeerId(2), PeerId(3)
    state = must(state, SetReplicaState("c", S0, two, ReplicaEvent.SNAPSHOT_RECOVERY_STARTED))
    assert replicas(state)[two] is ReplicaState.Recovery
    state = must(state, SetReplicaState("c", S0, three, ReplicaEvent.UPDATE_FAILED))
    state = must(state, StartTransfer("c", ShardTransfer(S0, one, three, sync=True)))
    assert replicas(state) == {one: A, two: ReplicaState.Recovery, three: P}
    plain = SetReplicaState("c", S0, two, ReplicaEvent.RECOVERED)
    assert replicas(must(state, plain)) == {one: A, two: A, three: P}
    done = SetReplicaState("c", S0, two, ReplicaEvent.RECOVERED, resync_others=True)
    after = must(state, done)
    assert replicas(after) == {one: D, two: A, three: D}  # the stale transfer's target too
    assert after.collections["c"].transfers == ()
    assert state_problems(after) == []
    misused = SetReplicaState("c", S0, one, ReplicaEvent.UPDATE_FAILED, resync_others=True)
    assert rejected(run(state, misused)[1], RejectReason.ILLEGAL_TRANSITION)

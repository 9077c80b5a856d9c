"""Property tests for the replicated cluster state (spec "Raft": operations agreed by consensus
are eventually executed by all nodes, so every peer must reach the same state)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.consensus import (
    AbortTransfer,
    AddPeer,
    Applied,
    ClusterState,
    CollectionConfig,
    CreateCollection,
    CreateRecoveryReplica,
    DeleteCollection,
    Distance,
    FinishTransfer,
    HnswConfig,
    Operation,
    Rejected,
    RemovePeer,
    RemoveReplica,
    SetReplicaState,
    ShardTransfer,
    StartTransfer,
    TransferMethod,
    UpdateCollectionParams,
    VectorParams,
    apply,
    decode_operation,
    decode_state,
    encode_operation,
    encode_state,
    plan_placement,
    state_problems,
)
from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaEvent, ReplicaState, legal_events

peers = st.integers(min_value=0, max_value=4).map(PeerId)
shards = st.integers(min_value=0, max_value=3).map(ShardId)
names = st.sampled_from(["a", "b", "", "x/y"])
configs = st.builds(
    CollectionConfig,
    vectors=st.builds(
        VectorParams, size=st.integers(0, 8), distance=st.sampled_from(list(Distance))
    ),
    shard_number=st.integers(0, 3),
    replication_factor=st.integers(0, 3),
    write_consistency_factor=st.integers(0, 3),
    hnsw_config=st.builds(HnswConfig, m=st.integers(1, 32), ef_construct=st.integers(1, 200)),
    read_fan_out_factor=st.none() | st.integers(-1, 2),
    read_fan_out_delay_ms=st.none() | st.integers(-1, 100),
)
placements = st.lists(st.lists(peers, max_size=3).map(tuple), max_size=3).map(tuple)


@st.composite
def planned_creates(draw: st.DrawFn, names: st.SearchStrategy[str] = names) -> CreateCollection:
    """A create whose placement comes from plan_placement (the usual, valid path)."""
    shard_number = draw(st.integers(1, 3))
    rf = draw(st.integers(1, 3))
    config = CollectionConfig(VectorParams(4, Distance.Dot), shard_number, rf)
    hosts = draw(st.lists(peers, min_size=1, max_size=4, unique=True))
    return CreateCollection(draw(names), config, plan_placement(hosts, shard_number, rf))


transfers = st.builds(
    ShardTransfer,
    shard_id=shards,
    from_peer=peers,
    to_peer=peers,
    sync=st.booleans(),
    method=st.sampled_from(list(TransferMethod)),
)
operations: st.SearchStrategy[Operation] = st.one_of(
    st.builds(AddPeer, peer_id=peers, uri=st.sampled_from(["http://a:6335", "", "http://b:1"])),
    st.builds(RemovePeer, peer_id=peers, force=st.booleans()),
    st.builds(CreateCollection, name=names, config=configs, placement=placements),
    planned_creates(),
    st.builds(
        UpdateCollectionParams,
        name=names,
        write_consistency_factor=st.none() | st.integers(0, 3),
        replication_factor=st.none() | st.integers(0, 3),
    ),
    st.builds(DeleteCollection, name=names),
    st.builds(
        SetReplicaState,
        collection=names,
        shard_id=shards,
        peer_id=peers,
        event=st.sampled_from(list(ReplicaEvent)),
        from_state=st.none() | st.sampled_from(list(ReplicaState)),
    ),
    st.builds(StartTransfer, collection=names, transfer=transfers),
    st.builds(FinishTransfer, collection=names, shard_id=shards, from_peer=peers, to_peer=peers),
    st.builds(AbortTransfer, collection=names, shard_id=shards, from_peer=peers, to_peer=peers),
    st.builds(RemoveReplica, collection=names, shard_id=shards, peer_id=peers),
    st.builds(CreateRecoveryReplica, collection=names, shard_id=shards, peer_id=peers),
)


def _seeded() -> ClusterState:
    state = ClusterState()
    for p in (1, 2, 3):
        state, _ = apply(state, AddPeer(PeerId(p), f"http://peer{p}:6335"))
    return state


def _guided_op(draw: st.DrawFn, state: ClusterState) -> Operation:
    """An operation aimed at what exists in ``state``, so long logs reach deep states."""
    if not state.collections or draw(st.integers(0, 19)) == 0:
        if draw(st.integers(0, 4)) == 0:
            return draw(st.builds(RemovePeer, peer_id=peers, force=st.booleans()))
        return draw(planned_creates(st.sampled_from(["a", "b"])))
    name = draw(st.sampled_from(sorted(state.collections)))
    coll = state.collections[name]
    shard = draw(st.sampled_from(sorted(coll.replicas)))
    hosts = sorted(coll.replicas[shard]) or [PeerId(1)]
    host = draw(st.sampled_from(hosts))
    anyone = draw(st.sampled_from([*sorted(state.peers), PeerId(4)]))
    kind = draw(st.integers(0, 9))
    if kind in (0, 1) and coll.transfers:
        t = draw(st.sampled_from(coll.transfers))
        maker = draw(st.sampled_from([FinishTransfer, FinishTransfer, AbortTransfer]))
        finish_or_abort: Operation = maker(name, t.shard_id, t.from_peer, t.to_peer)
        return finish_or_abort
    if kind in (0, 1, 2, 3):
        sync, method = draw(st.booleans()), draw(st.sampled_from(list(TransferMethod)))
        return StartTransfer(name, ShardTransfer(shard, host, anyone, sync, method))
    if kind == 4:
        if draw(st.booleans()):
            return RemoveReplica(name, shard, anyone)
        return CreateRecoveryReplica(name, shard, anyone)
    if kind == 5:
        rare: list[Operation] = [AddPeer(PeerId(4), "http://peer4:6335")] * 3
        rare.append(DeleteCollection(name))
        return draw(st.sampled_from(rare))
    current = coll.replicas[shard].get(host)
    legal = sorted(legal_events(current), key=lambda e: e.value) if current else []
    if legal and draw(st.integers(0, 1)) == 1:
        event = draw(st.sampled_from(legal))
    else:
        event = draw(st.sampled_from(list(ReplicaEvent)))
    return SetReplicaState(name, shard, host, event)


@st.composite
def logs(draw: st.DrawFn, max_ops: int = 40) -> list[Operation]:
    """A log of mostly guided operations with some random (mostly failing) ones mixed in."""
    state = _seeded()
    log: list[Operation] = []
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(operations) if draw(st.integers(0, 4)) == 0 else _guided_op(draw, state)
        state, _ = apply(state, op)
        log.append(op)
    return log


@settings(max_examples=100, deadline=None)
@given(logs())
def test_same_log_gives_the_same_state_on_every_peer(log: list[Operation]) -> None:
    """Two peers applying the same committed log (shipped as bytes) reach identical states,
    with identical results, including for operations that are rejected."""
    first = _seeded()
    second = decode_state(encode_state(first))
    for op in log:
        before = encode_state(first)
        first, result_1 = apply(first, op)
        second, result_2 = apply(second, decode_operation(encode_operation(op)))
        assert result_1 == result_2
        assert first == second
        assert encode_state(first) == encode_state(second)
        assert state_problems(first) == []
        if isinstance(result_1, Rejected):
            assert encode_state(first) == before


@settings(max_examples=50, deadline=None)
@given(logs(max_ops=30))
def test_states_and_operations_round_trip_through_bytes(log: list[Operation]) -> None:
    """Encoding then decoding an operation or a snapshot gives back an equal value."""
    state = _seeded()
    for op in log:
        assert decode_operation(encode_operation(op)) == op
        state, _ = apply(state, op)
        assert decode_state(encode_state(state)) == state


@settings(max_examples=60, deadline=None)
@given(
    st.lists(planned_creates(), min_size=1, max_size=6),
    st.lists(st.sampled_from(list(ReplicaEvent)), max_size=20),
)
def test_planned_collections_always_apply(
    creates: list[CreateCollection], events: list[ReplicaEvent]
) -> None:
    """A create planned over known peers applies unless its name is taken or invalid."""
    state = _seeded()
    for p in (4,):
        state, _ = apply(state, AddPeer(PeerId(p), "http://peer4:6335"))
    for op in creates:
        fresh = op.name not in state.collections and op.name in {"a", "b"}
        valid_hosts = all(p in state.peers for hosts in op.placement for p in hosts)
        state, result = apply(state, op)
        assert isinstance(result, Applied) == (fresh and valid_hosts), result

"""Tests for shard placement (spec "Sharding": shards are evenly distributed across all existing
nodes) and for the byte encoding of operations and snapshots."""

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl.consensus import (
    AddPeer,
    CodecError,
    PlacementError,
    SetReplicaState,
    decode_operation,
    decode_state,
    encode_operation,
    encode_state,
    plan_placement,
)
from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaEvent
from tests.consensus._build import cluster


@given(
    peers=st.lists(st.integers(1, 2**53 - 1).map(PeerId), min_size=1, max_size=9, unique=True),
    shard_number=st.integers(1, 24),
    rf=st.integers(1, 5),
)
def test_placement_is_even_and_never_doubles_a_shard_on_a_peer(
    peers: list[PeerId], shard_number: int, rf: int
) -> None:
    """Every shard gets min(rf, peers) replicas on distinct peers; per-peer counts differ by <= 1."""
    placement = plan_placement(peers, shard_number, rf)
    assert len(placement) == shard_number
    per_shard = min(rf, len(peers))
    for hosts in placement:
        assert len(hosts) == per_shard
        assert len(set(hosts)) == per_shard
        assert set(hosts) <= set(peers)
    counts = Counter(p for hosts in placement for p in hosts)
    loads = [counts.get(p, 0) for p in peers]
    assert max(loads) - min(loads) <= 1
    assert plan_placement(list(reversed(peers)), shard_number, rf) == placement


def test_placement_prefers_less_loaded_peers() -> None:
    """Existing load decides who gets the first replicas, so collections spread over peers."""
    placement = plan_placement([PeerId(1), PeerId(2), PeerId(3)], 1, 1, load={PeerId(1): 5})
    assert placement == ((PeerId(2),),)
    with pytest.raises(PlacementError, match="no peers"):
        plan_placement([], 1, 1)
    with pytest.raises(PlacementError):
        plan_placement([PeerId(1)], 0, 1)


def test_encoding_is_stable_json() -> None:
    """The same operation always encodes to the same bytes (sorted keys, no spaces)."""
    op = SetReplicaState("c", ShardId(1), PeerId(2), ReplicaEvent.UPDATE_FAILED)
    assert encode_operation(op) == (
        b'{"op":{"collection":"c","event":"update_failed","from_state":null,"peer_id":2,'
        b'"resync_others":false,"shard_id":1},"type":"SetReplicaState","v":1}'
    )
    # An entry written before a field with a default existed still decodes (to the default).
    older = b'{"op":{"collection":"c","event":"update_failed","from_state":null,"peer_id":2,'
    assert decode_operation(older + b'"shard_id":1},"type":"SetReplicaState","v":1}') == op
    state = cluster()
    assert encode_state(decode_state(encode_state(state))) == encode_state(state)


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        b'{"v":2,"type":"AddPeer","op":{"peer_id":1,"uri":"u"}}',
        b'{"v":1,"type":"Launch","op":{}}',
        b'{"v":1,"type":"AddPeer","op":{"peer_id":"1","uri":"u"}}',
        b'{"v":1,"type":"AddPeer","op":{"peer_id":true,"uri":"u"}}',
        b'{"v":1,"type":"AddPeer","op":{"peer_id":1}}',
        b'{"v":1,"type":"AddPeer","op":{"peer_id":1,"uri":"u","extra":0}}',
        b'{"v":1,"type":"SetReplicaState","op":{"collection":"c","shard_id":0,"peer_id":1,'
        b'"event":"exploded"}}',
        b"\xff\xfe",
    ],
)
def test_malformed_entries_are_refused_with_codec_error(data: bytes) -> None:
    """A malformed Raft entry is reported as a CodecError, never half-decoded."""
    with pytest.raises(CodecError):
        decode_operation(data)


def test_malformed_snapshots_are_refused() -> None:
    """A snapshot with a non-integer peer key is refused."""
    good = encode_state(cluster())
    with pytest.raises(CodecError, match="not an integer"):
        decode_state(good.replace(b'"1":{"uri"', b'"x":{"uri"'))
    assert decode_operation(encode_operation(AddPeer(PeerId(3), "u"))) == AddPeer(PeerId(3), "u")

"""The peer's view of the replicated cluster state (refimpl.consensus behind the driver)."""

import pytest

from refimpl.consensus import (
    CollectionConfig,
    CreateCollection,
    DeleteCollection,
    Distance,
    VectorParams,
    encode_operation,
)
from refimpl.ids import PeerId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.state import PeerTable, StateMachine, metadata_command

A, B = PeerId(11), PeerId(22)


def create(name: str, placement: tuple[tuple[PeerId, ...], ...]) -> bytes:
    config = CollectionConfig(vectors=VectorParams(4, Distance.Cosine), replication_factor=2)
    return encode_operation(CreateCollection(name, config, placement))


def test_operations_apply_and_rejections_become_error_results() -> None:
    """Spec "Raft": collection operations go through the log; a refused one is a typed result."""
    sm = ClusterStateMachine()
    assert sm.apply_command(sm.record_peer_command(A, "http://a:6335/")) is True
    sm.add_peer(B, "http://b:6335/")
    assert sm.peers() == {A: "http://a:6335/", B: "http://b:6335/"}
    assert sm.apply_command(create("c", ((A, B),))) is True
    assert sm.peer_has_shards(A) and sm.peer_has_shards(B)
    again = sm.apply_command(create("c", ((A,),)))
    assert again["reason"] == "collection_exists" and again["status"] == 400
    missing = sm.apply_command(encode_operation(DeleteCollection("nope")))
    assert missing["status"] == 404
    assert sm.apply_command(b"\xff")["status"] == 400


def test_removal_by_conf_change_drops_the_peers_replicas() -> None:
    """Spec: removal with force forgets the replicas on the removed peer."""
    sm = ClusterStateMachine()
    sm.add_peer(A, "http://a:6335/")
    sm.add_peer(B, "http://b:6335/")
    assert sm.apply_command(create("c", ((A, B),))) is True
    sm.remove_peer(B)
    assert sm.peers() == {A: "http://a:6335/"}
    assert not sm.peer_has_shards(B) and sm.peer_has_shards(A)


@pytest.mark.parametrize("factory", [ClusterStateMachine, PeerTable])
def test_snapshot_round_trip(factory: type[StateMachine]) -> None:
    """A Raft snapshot of the state restores the same peers and metadata; b"" is genesis."""
    sm = factory()
    sm.add_peer(A, "http://a:6335/")
    assert sm.apply_command(metadata_command("k", [1, 2])) is True
    copy = factory()
    copy.load_bytes(sm.to_bytes())
    assert copy.peers() == sm.peers() and copy.metadata() == {"k": [1, 2]}
    copy.load_bytes(b"")
    assert copy.peers() == {} and copy.metadata() == {}

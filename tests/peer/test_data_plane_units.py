"""Pure parts of the data plane: shard request bodies, splitting by the ring, collection bodies."""

import uuid

import numpy as np
import pytest

from refimpl.consensus import Distance, HnswConfig
from refimpl.ids import ShardId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.collections import parse_create_collection, parse_update_collection
from refimpl.peer.router import split_by_shard
from refimpl.peer.shard_wire import decode_update, encode_update
from refimpl.points import BadRequest, DeletePoints, UpsertPoints
from refimpl.sharding import HashRing


def test_shard_update_round_trips_vectors_exactly() -> None:
    """Vectors cross the p2p link as float32 bytes: what arrives equals what was sent."""
    vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    op = UpsertPoints((1, uuid.UUID(int=9), 2**64 - 1), vectors, ({"a": 1}, None, {"b": [2]}))
    back, flt = decode_update(encode_update(op), dim=5)
    assert flt is None and isinstance(back, UpsertPoints)
    assert back.ids == op.ids and back.payloads == op.payloads
    assert np.array_equal(back.vectors, vectors)
    delete, _ = decode_update(encode_update(DeletePoints((3, uuid.UUID(int=4)))), dim=5)
    assert delete == DeletePoints((3, uuid.UUID(int=4)))
    assert decode_update(encode_update(None, {"must": []}), dim=5) == (None, {"must": []})


def test_a_malformed_shard_update_is_refused() -> None:
    """A peer checks another peer's bytes as it checks a client's."""
    wire = encode_update(UpsertPoints((1,), np.zeros((1, 4), np.float32), (None,)))
    with pytest.raises(BadRequest, match="1 x 5 floats"):
        decode_update(wire, dim=5)
    with pytest.raises(BadRequest):
        decode_update({"upsert": {**wire["upsert"], "vectors": "***"}}, dim=4)


def test_split_by_shard_sends_each_point_to_its_ring_shard_in_order() -> None:
    """Spec "Sharding": each point goes to the shard the ring names; nothing lost or doubled."""
    ring = HashRing([ShardId(s) for s in range(6)])
    ids = tuple(range(200))
    vectors = np.arange(200 * 2, dtype=np.float32).reshape(200, 2)
    parts = split_by_shard(UpsertPoints(ids, vectors, tuple({"i": i} for i in ids)), ring)
    seen = []
    for shard, part in parts.items():
        assert all(ring.shard_for(p) == shard for p in part.ids)
        assert list(part.ids) == sorted(part.ids)
        assert [row[0] / 2 for row in part.vectors] == list(part.ids)
        seen.extend(part.ids)
    assert sorted(seen) == list(ids)


def test_create_body_accepts_the_spec_alias_and_defaults_the_shard_count() -> None:
    """``write_concern_factor`` (spec) is ``write_consistency_factor`` (Qdrant)."""
    config = parse_create_collection(
        {"vectors": {"size": 8, "distance": "Euclid"}, "write_concern_factor": 2,
         "hnsw_config": {"m": 8}, "optimizers_config": {"indexing_threshold": 0}},
        peers=3,
    )  # fmt: skip
    assert config.shard_number == 3 and config.write_consistency_factor == 2
    assert config.vectors.distance is Distance.Euclid
    assert config.hnsw_config == HnswConfig(m=8) and config.indexing_threshold_kb == 0
    update = parse_update_collection("c", {"params": {"replication_factor": 3}}, config)
    assert update.replication_factor == 3 and update.write_consistency_factor is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "missing field `vectors`"),
        ({"vectors": {"size": 4, "distance": "cosine"}}, "Cosine, Euclid"),
        ({"vectors": {"a": {"size": 4, "distance": "Dot"}}}, "named vectors"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 0}, "shard_number"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "colour": 1}, "colour"),
        ({"vectors": {"size": 4, "distance": "Dot"}, "quantization_config": {}}, "quantization"),
    ],
)
def test_bad_create_bodies_say_what_to_fix(body: object, message: str) -> None:
    """A create request is checked completely before anything is proposed."""
    with pytest.raises(BadRequest, match=message):
        parse_create_collection(body, peers=3)


def test_incarnations_survive_a_snapshot() -> None:
    """The incarnation numbers are part of the state's snapshot bytes."""
    from refimpl.consensus import (
        AddPeer,
        CollectionConfig,
        CreateCollection,
        DeleteCollection,
        VectorParams,
        encode_operation,
    )
    from refimpl.ids import PeerId

    machine = ClusterStateMachine()
    machine.apply_command(encode_operation(AddPeer(PeerId(1), "http://a:1/")))
    config = CollectionConfig(VectorParams(4, Distance.Dot))
    create = CreateCollection("c", config, ((PeerId(1),),))
    for op in (create, DeleteCollection("c"), create):
        assert machine.apply_command(encode_operation(op)) is True
    assert machine.incarnation("c") == 2
    twin = ClusterStateMachine()
    twin.load_bytes(machine.to_bytes())
    assert twin.incarnation("c") == 2 and twin.cluster == machine.cluster

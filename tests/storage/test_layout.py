"""A peer keeps each shard under Qdrant's layout and deleting a collection removes its files
(issue 6 "Shard storage": "Deleting a collection removes its files")."""

from pathlib import Path

import numpy as np
import pytest

from refimpl.ids import ShardId
from refimpl.index import Distance
from refimpl.points import BadRequest, UpsertPoints
from refimpl.storage import (
    MemoryPeerStorage,
    PeerStorage,
    ShardConfig,
    check_collection_name,
    shard_config_from_qdrant,
)

CONFIG = ShardConfig(2, Distance.DOT)
POINT = UpsertPoints((1,), np.ones((1, 2), dtype=np.float32), ({"a": 1},))


def test_shards_live_under_collections_and_drop_with_their_collection(tmp_path: Path) -> None:
    """Shards are found again after a restart; dropping a collection deletes its directory."""
    peer = PeerStorage(tmp_path / "storage")
    for collection, shard in (("a", 0), ("a", 3), ("b", 1)):
        store = peer.open_shard(collection, ShardId(shard), CONFIG)
        store.apply(POINT)
        store.close()
    assert (tmp_path / "storage/collections/a/3/wal.log").exists()
    assert peer.local_shards() == {"a": [0, 3], "b": [1]}
    reopened = peer.open_shard("a", ShardId(3), CONFIG)
    assert len(reopened) == 1
    reopened.close()
    peer.snapshots_dir("a")
    peer.drop_collection("a")
    assert peer.local_shards() == {"b": [1]}
    assert not (tmp_path / "storage/collections/a").exists()
    assert not (tmp_path / "snapshots/a").exists()


def test_memory_twin_keeps_shards_across_a_restart() -> None:
    """The in-memory peer storage hands back the same shard data when reopened."""
    peer = MemoryPeerStorage()
    peer.open_shard("c", ShardId(2), CONFIG).apply(POINT)
    assert len(peer.open_shard("c", ShardId(2), CONFIG)) == 1
    peer.drop_collection("c")
    assert peer.local_shards() == {}


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "x\0", "n" * 256])
def test_unsafe_collection_names_are_refused(name: str) -> None:
    """A collection name that cannot be a directory name is a 400 that says why."""
    with pytest.raises(BadRequest, match="is not allowed"):
        check_collection_name(name)


def test_config_from_qdrant_shapes() -> None:
    """Qdrant's collection config maps onto the shard config, with Qdrant's defaults."""
    config = shard_config_from_qdrant(
        {"size": 8, "distance": "Euclid"}, {"m": 8, "ef_construct": 64},
        {"indexing_threshold": 20}, {"wal_capacity_mb": 1},
    )  # fmt: skip
    assert (config.dim, config.distance, config.hnsw.m, config.hnsw.ef_construct) == (
        8, Distance.EUCLID, 8, 64)  # fmt: skip
    assert (config.indexing_threshold_kb, config.checkpoint_wal_bytes) == (20, 1 << 20)
    assert shard_config_from_qdrant({"size": 3, "distance": "Cosine"}).hnsw.m == 16
    with pytest.raises(BadRequest, match="`vectors` must be"):
        shard_config_from_qdrant({"size": 3, "distance": "cosine"})

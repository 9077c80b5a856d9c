"""Shard storage: the WAL, points and vector index of one shard replica, checkpoints,
recovery after a crash, and collection snapshot archives.

The only package that touches shard files. Everything goes through a :class:`ShardMedium`
(a directory on disk, or :class:`MemoryMedium` for tests and the simulator), so the same
:class:`ShardStore` runs in both.
"""

from refimpl.storage.errors import (
    CheckpointCorruptedError,
    SnapshotError,
    StorageError,
    WalCorruptedError,
)
from refimpl.storage.layout import MemoryPeerStorage, PeerStorage, check_collection_name
from refimpl.storage.media import DiskMedium, MemoryMedium, ShardMedium
from refimpl.storage.shard import ShardConfig, ShardStore, UpdateResult, shard_config_from_qdrant
from refimpl.storage.snapshot import (
    Snapshot,
    SnapshotInfo,
    create_snapshot,
    parse_snapshot,
    read_snapshot,
    restore_snapshot,
    snapshot_name,
)
from refimpl.storage.wal import Wal, WalRecord, encode_record, scan

__all__ = [
    "CheckpointCorruptedError",
    "DiskMedium",
    "MemoryMedium",
    "MemoryPeerStorage",
    "PeerStorage",
    "ShardConfig",
    "ShardMedium",
    "ShardStore",
    "Snapshot",
    "SnapshotError",
    "SnapshotInfo",
    "StorageError",
    "UpdateResult",
    "Wal",
    "WalCorruptedError",
    "WalRecord",
    "check_collection_name",
    "create_snapshot",
    "encode_record",
    "parse_snapshot",
    "read_snapshot",
    "restore_snapshot",
    "scan",
    "shard_config_from_qdrant",
    "snapshot_name",
]

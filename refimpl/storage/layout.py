"""Where a peer keeps its shards: Qdrant's directory layout, and an in-memory twin.

Rules (Qdrant's layout, facts §8.4, reduced to what we store)::

    <storage_path>/collections/<collection>/<shard_id>/wal.log
    <storage_path>/collections/<collection>/<shard_id>/checkpoint/...
    <snapshots_path>/<collection>/<collection>-<peer_id>-<timestamp>.snapshot

* A collection name becomes a directory name, so it must be 1–255 characters without ``/``,
  ``\\``, NUL, or the names ``.`` and ``..`` (Qdrant refuses the same characters).
* Dropping a shard or a collection removes its files; listing finds the shards present on
  disk, so a restarted peer knows what it held before reading the cluster state.

The :class:`MemoryPeerStorage` twin keeps :class:`MemoryMedium` objects in a dict, and they
survive a simulated restart (call ``crash()`` on them first to lose unsynced writes).
"""

import shutil
from pathlib import Path

from refimpl.ids import ShardId
from refimpl.points import BadRequest
from refimpl.storage.media import MemoryMedium
from refimpl.storage.shard import ShardConfig, ShardStore

_FORBIDDEN = set("/\\\0")
NAME_LENGTH_MAX = 255


def check_collection_name(name: str) -> str:
    """Return ``name`` if it is usable as a collection (and directory) name."""
    if (not isinstance(name, str) or not 0 < len(name) <= NAME_LENGTH_MAX
            or name in (".", "..") or _FORBIDDEN & set(name)):  # fmt: skip
        raise BadRequest(
            f"Validation error in path: [collection name {name!r} is not allowed: use 1 to "
            f"{NAME_LENGTH_MAX} characters, none of '/', '\\\\' or NUL, and not '.' or '..']"
        )
    return name


class PeerStorage:
    """The shards of every collection on one peer, on disk."""

    def __init__(self, storage_path: Path, snapshots_path: Path | None = None) -> None:
        self.root = storage_path
        self.snapshots_root = snapshots_path or storage_path.parent / "snapshots"

    def collection_dir(self, collection: str) -> Path:
        """``<storage>/collections/<collection>``."""
        return self.root / "collections" / check_collection_name(collection)

    def shard_dir(self, collection: str, shard_id: ShardId) -> Path:
        """``<storage>/collections/<collection>/<shard_id>``."""
        return self.collection_dir(collection) / str(int(shard_id))

    def snapshots_dir(self, collection: str) -> Path:
        """``<snapshots>/<collection>`` (created on demand)."""
        path = self.snapshots_root / check_collection_name(collection)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def open_shard(self, collection: str, shard_id: ShardId, config: ShardConfig) -> ShardStore:
        """Open or create a shard, recovering it from its files."""
        return ShardStore.open(self.shard_dir(collection, shard_id), config)

    def drop_shard(self, collection: str, shard_id: ShardId) -> None:
        """Remove one shard's files (a closed or destroyed store)."""
        shutil.rmtree(self.shard_dir(collection, shard_id), ignore_errors=True)

    def drop_collection(self, collection: str) -> None:
        """Remove every shard of a collection, and its snapshots."""
        shutil.rmtree(self.collection_dir(collection), ignore_errors=True)
        shutil.rmtree(self.snapshots_root / check_collection_name(collection), ignore_errors=True)

    def local_shards(self) -> dict[str, list[ShardId]]:
        """The shards present on disk, by collection."""
        found: dict[str, list[ShardId]] = {}
        base = self.root / "collections"
        if not base.exists():
            return found
        for collection in sorted(p for p in base.iterdir() if p.is_dir()):
            ids = [ShardId(int(p.name)) for p in collection.iterdir() if p.name.isdigit()]
            found[collection.name] = sorted(ids)
        return found


class MemoryPeerStorage:
    """The in-memory twin of :class:`PeerStorage` (for the peer simulation)."""

    def __init__(self) -> None:
        self.media: dict[tuple[str, ShardId], MemoryMedium] = {}

    def open_shard(self, collection: str, shard_id: ShardId, config: ShardConfig) -> ShardStore:
        """Open or create a shard on its memory medium."""
        key = (check_collection_name(collection), shard_id)
        medium = self.media.setdefault(key, MemoryMedium())
        return ShardStore.in_memory(config, medium)

    def drop_shard(self, collection: str, shard_id: ShardId) -> None:
        """Forget one shard."""
        self.media.pop((collection, shard_id), None)

    def drop_collection(self, collection: str) -> None:
        """Forget every shard of a collection."""
        for key in [k for k in self.media if k[0] == collection]:
            del self.media[key]

    def local_shards(self) -> dict[str, list[ShardId]]:
        """The shards held, by collection."""
        found: dict[str, list[ShardId]] = {}
        for collection, shard_id in sorted(self.media):
            found.setdefault(collection, []).append(shard_id)
        return found

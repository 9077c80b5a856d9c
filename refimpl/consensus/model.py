"""The replicated cluster state: what every peer agrees on through Raft.

Rules (spec "Raft": cluster topology and collection structure go through consensus; facts §2):

* the state holds the peers (id -> URI) and the collections: each collection's config, the
  state of every replica of every shard, and the shard transfers in progress;
* values are frozen dataclasses whose containers are typed as read-only ``Mapping`` and
  ``tuple``; :func:`refimpl.consensus.apply` builds a new state and never changes the one it
  was given, so applying the same log on every peer gives equal states;
* limits are checked by :func:`config_problems` (shard_number, replication_factor, vector size,
  HNSW parameters) so a bad proposal is refused instead of exhausting a peer.

Theory of operation: point data is *not* here (point writes bypass consensus); this is only the
metadata that decides where points live and which replicas may serve them.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from refimpl.ids import PeerId, ShardId
from refimpl.replication import ReplicaState

SHARD_NUMBER_MAX = 1024
REPLICATION_FACTOR_MAX = 64
VECTOR_SIZE_MAX = 65_536
HNSW_M_MAX = 512
HNSW_EF_CONSTRUCT_MAX = 100_000
COLLECTION_NAME_MAX_CHARS = 255
URI_MAX_CHARS = 2048
INDEXING_THRESHOLD_KB_MAX = 1 << 30


class Distance(enum.Enum):
    """Vector distance, spelled as in Qdrant's JSON."""

    Cosine = "Cosine"
    Euclid = "Euclid"
    Dot = "Dot"
    Manhattan = "Manhattan"


class TransferMethod(enum.Enum):
    """How a shard transfer moves data (facts §6.1)."""

    STREAM_RECORDS = "stream_records"
    SNAPSHOT = "snapshot"
    WAL_DELTA = "wal_delta"


@dataclass(frozen=True, slots=True)
class VectorParams:
    size: int
    distance: Distance


@dataclass(frozen=True, slots=True)
class HnswConfig:
    m: int = 16
    ef_construct: int = 100
    full_scan_threshold: int = 10_000


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    """A collection's parameters; ``write_consistency_factor`` is the spec's write concern."""

    vectors: VectorParams
    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1
    hnsw_config: HnswConfig = field(default_factory=HnswConfig)
    read_fan_out_factor: int | None = None
    read_fan_out_delay_ms: int | None = None
    """Qdrant's hedged read: a read still short of answers after this many milliseconds asks
    one more replica (``None`` or 0: never)."""
    indexing_threshold_kb: int = 10_000
    """Qdrant's ``optimizers_config.indexing_threshold``: a shard builds its HNSW graph once its
    vectors pass this many kilobytes; 0 keeps every shard on exact search."""


@dataclass(frozen=True, slots=True)
class ShardTransfer:
    """A transfer of one shard from one peer to another; ``sync`` keeps the source (replicate),
    otherwise the source replica is dropped at the end (move)."""

    shard_id: ShardId
    from_peer: PeerId
    to_peer: PeerId
    sync: bool
    method: TransferMethod = TransferMethod.STREAM_RECORDS

    @property
    def key(self) -> tuple[ShardId, PeerId, PeerId]:
        return (self.shard_id, self.from_peer, self.to_peer)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    uri: str


@dataclass(frozen=True, slots=True)
class CollectionState:
    config: CollectionConfig
    replicas: Mapping[ShardId, Mapping[PeerId, ReplicaState]]
    """Per shard, the state of the replica on each peer that holds one."""
    transfers: tuple[ShardTransfer, ...] = ()


@dataclass(frozen=True, slots=True)
class ClusterState:
    peers: Mapping[PeerId, PeerInfo] = field(default_factory=dict)
    collections: Mapping[str, CollectionState] = field(default_factory=dict)

    def holdings(self, peer_id: PeerId) -> list[tuple[str, ShardId]]:
        """Every (collection, shard) with a replica on ``peer_id``, sorted."""
        return sorted(
            (name, shard)
            for name, coll in self.collections.items()
            for shard, replicas in coll.replicas.items()
            if peer_id in replicas
        )

    def replica_count(self, peer_id: PeerId) -> int:
        return len(self.holdings(peer_id))


def config_problems(config: CollectionConfig) -> tuple[str, ...]:
    """What is wrong with a collection config (empty when it is valid)."""
    problems = []
    if not 1 <= config.vectors.size <= VECTOR_SIZE_MAX:
        problems.append(f"vectors.size must be in [1, {VECTOR_SIZE_MAX}]")
    if not 1 <= config.shard_number <= SHARD_NUMBER_MAX:
        problems.append(f"shard_number must be in [1, {SHARD_NUMBER_MAX}]")
    if not 1 <= config.replication_factor <= REPLICATION_FACTOR_MAX:
        problems.append(f"replication_factor must be in [1, {REPLICATION_FACTOR_MAX}]")
    if config.write_consistency_factor < 1:
        problems.append("write_consistency_factor must be at least 1")
    if not 2 <= config.hnsw_config.m <= HNSW_M_MAX:
        problems.append(f"hnsw_config.m must be in [2, {HNSW_M_MAX}]")
    if not 1 <= config.hnsw_config.ef_construct <= HNSW_EF_CONSTRUCT_MAX:
        problems.append(f"hnsw_config.ef_construct must be in [1, {HNSW_EF_CONSTRUCT_MAX}]")
    if config.hnsw_config.full_scan_threshold < 0:
        problems.append("hnsw_config.full_scan_threshold cannot be negative")
    if not 0 <= config.indexing_threshold_kb <= INDEXING_THRESHOLD_KB_MAX:
        problems.append(f"indexing_threshold must be in [0, {INDEXING_THRESHOLD_KB_MAX}] kB")
    if config.read_fan_out_factor is not None and config.read_fan_out_factor < 0:
        problems.append("read_fan_out_factor cannot be negative")
    if config.read_fan_out_delay_ms is not None and config.read_fan_out_delay_ms < 0:
        problems.append("read_fan_out_delay_ms cannot be negative")
    return tuple(problems)


def collection_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a collection, or ``None``."""
    if not name or len(name) > COLLECTION_NAME_MAX_CHARS:
        return f"collection name must have 1 to {COLLECTION_NAME_MAX_CHARS} characters"
    if any(c in name for c in "/\\\0") or name in {".", ".."}:
        return f"collection name {name!r} contains a forbidden character"
    return None


__all__ = [
    "COLLECTION_NAME_MAX_CHARS",
    "HNSW_EF_CONSTRUCT_MAX",
    "HNSW_M_MAX",
    "INDEXING_THRESHOLD_KB_MAX",
    "REPLICATION_FACTOR_MAX",
    "SHARD_NUMBER_MAX",
    "URI_MAX_CHARS",
    "VECTOR_SIZE_MAX",
    "ClusterState",
    "CollectionConfig",
    "CollectionState",
    "Distance",
    "HnswConfig",
    "PeerInfo",
    "ShardTransfer",
    "TransferMethod",
    "VectorParams",
    "collection_name_problem",
    "config_problems",
]

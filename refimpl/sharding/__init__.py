"""Sharding: which shard owns a point (spec "Sharding").

The hash ring (:class:`HashRing`) maps a point id to a shard id by consistent hashing with
many positions per shard, as Qdrant's "fair" ring. Pure and synchronous: no I/O, no clock.
"""

from refimpl.sharding.ring import (
    HASH_RING_SHARD_SCALE,
    EmptyRingError,
    HashRing,
    HashRingError,
    lookup,
    point_hash,
    point_id_bytes,
    position_bytes,
    shard_positions,
    stable_hash64,
)

__all__ = [
    "HASH_RING_SHARD_SCALE",
    "EmptyRingError",
    "HashRing",
    "HashRingError",
    "lookup",
    "point_hash",
    "point_id_bytes",
    "position_bytes",
    "shard_positions",
    "stable_hash64",
]

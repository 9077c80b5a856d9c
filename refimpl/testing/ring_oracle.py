"""The hash ring's dumb twin: scan every position, no sorting, no binary search.

Rules: the oracle uses the same hash and the same position bytes as
:class:`refimpl.sharding.HashRing`, so for any set of shards the two must name the same owner
for every point. It is O(shards x positions) per lookup on purpose: simple enough to trust by
reading.

Theory of operation: a point belongs to the smallest ``(position, shard)`` pair whose position
is at or after the point's hash; if there is none, it wraps round to the smallest pair overall.
"""

from collections.abc import Iterable

from refimpl.ids import PointId, ShardId
from refimpl.sharding.ring import (
    HASH_RING_SHARD_SCALE,
    EmptyRingError,
    HashRingError,
    point_hash,
    shard_positions,
)


class OracleRing:
    """Same interface as :class:`refimpl.sharding.HashRing`, implemented by a full scan."""

    def __init__(
        self, shard_ids: Iterable[ShardId], vnodes_per_shard: int = HASH_RING_SHARD_SCALE
    ) -> None:
        self.vnodes_per_shard = vnodes_per_shard
        # Positions are computed once per shard; each lookup still scans all of them.
        self._positions: dict[ShardId, list[int]] = {}
        for shard_id in shard_ids:
            self.add_shard(shard_id)

    @property
    def shard_ids(self) -> frozenset[ShardId]:
        return frozenset(self._positions)

    def add_shard(self, shard_id: ShardId) -> None:
        if shard_id in self._positions:
            raise HashRingError(f"shard {shard_id} is already on the ring")
        self._positions[shard_id] = shard_positions(shard_id, self.vnodes_per_shard)

    def remove_shard(self, shard_id: ShardId) -> None:
        if shard_id not in self._positions:
            raise HashRingError(f"shard {shard_id} is not on the ring")
        del self._positions[shard_id]

    def shard_for(self, point_id: PointId) -> ShardId:
        if not self._positions:
            raise EmptyRingError("the hash ring has no shards")
        key = point_hash(point_id)
        best_after: tuple[int, ShardId] | None = None
        smallest: tuple[int, ShardId] | None = None
        for shard, positions in self._positions.items():
            for position in positions:
                pair = (position, shard)
                if smallest is None or pair < smallest:
                    smallest = pair
                if position >= key and (best_after is None or pair < best_after):
                    best_after = pair
        chosen = best_after if best_after is not None else smallest
        assert chosen is not None
        return chosen[1]


__all__ = ["OracleRing"]

"""The hash ring: which shard owns a point.

Rules (spec "Sharding": points are distributed among shards by consistent hashing, so that
shards manage non-intersecting subsets of points):

* every point id (an unsigned 64-bit integer or a UUID) maps to exactly one shard;
* the answer depends only on the point id and the set of shards, never on the process, the
  order shards were added in, or Python's randomised ``hash()``;
* adding a shard moves only the points that the new shard takes over (about ``1/(n+1)`` of
  them); removing a shard moves only that shard's points.

Theory of operation. Each shard owns ``vnodes_per_shard`` positions on a circle of 64-bit
numbers (Qdrant calls this the "fair" ring and uses 100 positions per shard). A point hashes to a
number on the same circle and belongs to the shard owning the first position at or after it,
wrapping round to the smallest position when it falls past the last one. Many positions per
shard even out the arc lengths, which is what balances the load. Lookup is a binary search over
the sorted positions.

Where we differ from Qdrant. We feed the hash exactly the bytes Qdrant does (its "stable hash"
encoding: a shard position is ``le32(shard) ‖ le32(index)``; an integer id is ``le64(0) ‖
le64(id)``; a UUID is ``le64(1) ‖ le64(16) ‖`` the 16 RFC-order bytes), but we hash them with
64-bit BLAKE2b from :mod:`hashlib` rather than SipHash-2-4 with zero keys, because the standard
library exposes no keyed SipHash and Qdrant publishes no test vectors to check a hand-written
one against. So our ring has the same shape and the same properties as Qdrant's but places a
given point on a (generally) different shard: do not expect our shard numbers to match a real
Qdrant collection's.
"""

import bisect
import hashlib
import uuid
from collections.abc import Iterable, Sequence

from refimpl.ids import PointId, ShardId

HASH_RING_SHARD_SCALE = 100
"""Positions per shard, as Qdrant's ``HASH_RING_SHARD_SCALE``."""

POINT_ID_MAX = 2**64 - 1
SHARD_ID_MAX = 2**32 - 1
VNODES_PER_SHARD_MAX = 10_000
"""A limit on ring size: 10 000 positions per shard is far beyond any useful balance."""


class HashRingError(ValueError):
    """Bad input to the hash ring (an id out of range, an unknown or duplicate shard)."""


class EmptyRingError(HashRingError):
    """A lookup on a ring that has no shard."""


def stable_hash64(data: bytes) -> int:
    """Hash bytes to an unsigned 64-bit integer, identically in every process."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _is_plain_int(value: object) -> bool:
    # bool is an int subclass, but True is not an id.
    return isinstance(value, int) and not isinstance(value, bool)


def point_id_bytes(point_id: PointId) -> bytes:
    """Qdrant's stable-hash encoding of a point id (see the module docstring)."""
    if isinstance(point_id, uuid.UUID):
        return (1).to_bytes(8, "little") + (16).to_bytes(8, "little") + point_id.bytes
    if not _is_plain_int(point_id):
        raise HashRingError(f"point id must be an unsigned integer or a UUID, got {point_id!r}")
    if not 0 <= point_id <= POINT_ID_MAX:
        raise HashRingError(f"integer point id must be in [0, 2**64), got {point_id}")
    return (0).to_bytes(8, "little") + point_id.to_bytes(8, "little")


def position_bytes(shard_id: ShardId, index: int) -> bytes:
    """The bytes hashed for the ``index``-th ring position of a shard."""
    return shard_id.to_bytes(4, "little") + index.to_bytes(4, "little")


def point_hash(point_id: PointId) -> int:
    """Where a point sits on the ring."""
    return stable_hash64(point_id_bytes(point_id))


def shard_positions(shard_id: ShardId, vnodes_per_shard: int) -> list[int]:
    """The ring positions a shard owns."""
    return [stable_hash64(position_bytes(shard_id, i)) for i in range(vnodes_per_shard)]


def lookup(positions: Sequence[int], owners: Sequence[ShardId], key_hash: int) -> ShardId:
    """Return the owner of the first position at or after ``key_hash``, wrapping around.

    ``positions`` is sorted ascending and non-empty; ``owners[i]`` owns ``positions[i]``.
    If ``key_hash`` is greater than every position, the point wraps round to the owner of the
    smallest position, ``owners[0]``. Runs in O(log n) by binary search.
    """
    # [exercise: hash-ring-lookup] begin
    index = bisect.bisect_left(positions, key_hash)
    if index == len(positions):
        index = 0
    return owners[index]
    # [exercise: hash-ring-lookup] end


class HashRing:
    """A consistent-hash ring over shard ids with ``vnodes_per_shard`` positions each.

    >>> ring = HashRing([ShardId(0), ShardId(1), ShardId(2)])
    >>> ring.shard_for(42) in ring.shard_ids
    True
    """

    __slots__ = ("_owners", "_positions", "_shards", "vnodes_per_shard")

    def __init__(
        self, shard_ids: Iterable[ShardId], vnodes_per_shard: int = HASH_RING_SHARD_SCALE
    ) -> None:
        if not 1 <= vnodes_per_shard <= VNODES_PER_SHARD_MAX:
            raise HashRingError(
                f"vnodes_per_shard must be in [1, {VNODES_PER_SHARD_MAX}], got {vnodes_per_shard}"
            )
        self.vnodes_per_shard = vnodes_per_shard
        self._shards: set[ShardId] = set()
        self._positions: list[int] = []
        self._owners: list[ShardId] = []
        for shard_id in shard_ids:
            self._insert(shard_id)
        self._rebuild()

    @property
    def shard_ids(self) -> frozenset[ShardId]:
        """The shards on the ring."""
        return frozenset(self._shards)

    @property
    def positions(self) -> tuple[tuple[int, ShardId], ...]:
        """Every ``(position, shard)`` pair in ring order (for plots and oracles)."""
        return tuple(zip(self._positions, self._owners, strict=True))

    def __len__(self) -> int:
        return len(self._shards)

    def shard_for(self, point_id: PointId) -> ShardId:
        """The shard that owns ``point_id``."""
        if not self._positions:
            raise EmptyRingError("the hash ring has no shards")
        return lookup(self._positions, self._owners, point_hash(point_id))

    def add_shard(self, shard_id: ShardId) -> None:
        """Put a new shard on the ring; only points it takes over change owner."""
        self._insert(shard_id)
        self._rebuild()

    def remove_shard(self, shard_id: ShardId) -> None:
        """Take a shard off the ring; only its points change owner."""
        if shard_id not in self._shards:
            raise HashRingError(f"shard {shard_id} is not on the ring")
        self._shards.remove(shard_id)
        self._rebuild()

    def _insert(self, shard_id: ShardId) -> None:
        if not _is_plain_int(shard_id) or not 0 <= shard_id <= SHARD_ID_MAX:
            raise HashRingError(f"shard id must be in [0, 2**32), got {shard_id!r}")
        if shard_id in self._shards:
            raise HashRingError(f"shard {shard_id} is already on the ring")
        self._shards.add(shard_id)

    def _rebuild(self) -> None:
        # Sorting by (position, shard) makes ties (a 64-bit collision) resolve the same way in
        # every process, whatever order the shards were added in.
        pairs = sorted(
            (pos, shard)
            for shard in self._shards
            for pos in shard_positions(shard, self.vnodes_per_shard)
        )
        self._positions = [pos for pos, _ in pairs]
        self._owners = [shard for _, shard in pairs]
        assert len(self._positions) == len(self._shards) * self.vnodes_per_shard

"""Tests for the hash ring (spec "Sharding": points are distributed among shards by consistent
hashing, so that shards manage non-intersecting subsets of points)."""

import random
import uuid
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ids import PointId, ShardId
from refimpl.sharding import (
    EmptyRingError,
    HashRing,
    HashRingError,
    lookup,
    point_hash,
    point_id_bytes,
    position_bytes,
)
from refimpl.testing.ring_conformance import check_hash_ring, sample_point_ids
from refimpl.testing.ring_oracle import OracleRing

point_ids = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.uuids(),
)
shard_sets = st.sets(st.integers(min_value=0, max_value=40), min_size=1, max_size=8).map(
    lambda s: [ShardId(x) for x in sorted(s)]
)


@given(shards=shard_sets, point_id=point_ids)
def test_every_point_maps_to_a_shard_on_the_ring(shards: list[ShardId], point_id: PointId) -> None:
    """Sharding: every point belongs to exactly one of the collection's shards."""
    ring = HashRing(shards, vnodes_per_shard=8)
    assert ring.shard_for(point_id) in shards


@settings(max_examples=60)
@given(
    shards=shard_sets,
    vnodes=st.integers(min_value=1, max_value=6),
    ids=st.lists(point_ids, min_size=1, max_size=20),
)
def test_ring_agrees_with_the_scan_everything_oracle(
    shards: list[ShardId], vnodes: int, ids: list[PointId]
) -> None:
    """Binary search with wrap-around picks the same owner as scanning every position."""
    ring = HashRing(shards, vnodes_per_shard=vnodes)
    oracle = OracleRing(shards, vnodes_per_shard=vnodes)
    assert [ring.shard_for(i) for i in ids] == [oracle.shard_for(i) for i in ids]


@given(shards=shard_sets, point_id=point_ids)
def test_answer_does_not_depend_on_the_order_shards_are_given(
    shards: list[ShardId], point_id: PointId
) -> None:
    """Every peer must route a point to the same shard, whatever order it learned shards in."""
    forward = HashRing(shards, vnodes_per_shard=8)
    backward = HashRing(list(reversed(shards)), vnodes_per_shard=8)
    assert forward.shard_for(point_id) == backward.shard_for(point_id)


@settings(max_examples=25)
@given(
    shards=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_adding_a_shard_moves_ids_only_to_the_new_shard(shards: int, seed: int) -> None:
    """Consistent hashing: a new shard takes about 1/(n+1) of the ids and nothing else moves."""
    ids = sample_point_ids(random.Random(seed), 3000)
    ring = HashRing([ShardId(i) for i in range(shards)])
    before = [ring.shard_for(i) for i in ids]
    ring.add_shard(ShardId(shards))
    after = [ring.shard_for(i) for i in ids]
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert all(a == ShardId(shards) for _, a in moved)
    expected = 1 / (shards + 1)
    assert abs(len(moved) / len(ids) - expected) <= 0.5 * expected


@settings(max_examples=25)
@given(shards=shard_sets, seed=st.integers(min_value=0, max_value=2**32), data=st.data())
def test_removing_a_shard_moves_only_its_own_ids(
    shards: list[ShardId], seed: int, data: st.DataObject
) -> None:
    """Removing a shard hands its ids to the others and leaves every other id in place."""
    if len(shards) < 2:
        shards = [*shards, ShardId(41)]
    gone = data.draw(st.sampled_from(shards))
    ids = sample_point_ids(random.Random(seed), 500)
    ring = HashRing(shards, vnodes_per_shard=20)
    before = [ring.shard_for(i) for i in ids]
    ring.remove_shard(gone)
    after = [ring.shard_for(i) for i in ids]
    for b, a in zip(before, after, strict=True):
        assert a != gone
        assert b in (a, gone)


def test_balance_over_many_ids_with_qdrant_scale() -> None:
    """With 100 positions per shard (Qdrant's scale), 6 shards share 60 000 ids within 1.35x."""
    ring = HashRing([ShardId(i) for i in range(6)])
    loads = Counter(ring.shard_for(i) for i in sample_point_ids(random.Random(7), 60_000))
    ratio = max(loads.values()) / min(loads.values())
    print(f"max/min load ratio over 60000 ids, 6 shards x 100 positions: {ratio:.3f}")
    assert set(loads) == set(range(6))
    assert ratio <= 1.35


def test_more_positions_per_shard_balance_better() -> None:
    """Virtual positions are what balance the ring: 1 position per shard is far worse than 100."""
    ids = sample_point_ids(random.Random(3), 20_000)

    def ratio(vnodes: int) -> float:
        ring = HashRing([ShardId(i) for i in range(6)], vnodes_per_shard=vnodes)
        loads = Counter(ring.shard_for(i) for i in ids)
        return max(loads.values()) / max(1, min(loads.values()))

    assert ratio(100) < ratio(1)
    assert ratio(100) < 1.35


def test_lookup_wraps_around_past_the_last_position() -> None:
    """A hash after the last position belongs to the owner of the first position."""
    positions = [10, 20, 30]
    owners = [ShardId(7), ShardId(8), ShardId(9)]
    assert lookup(positions, owners, 0) == 7
    assert lookup(positions, owners, 10) == 7
    assert lookup(positions, owners, 11) == 8
    assert lookup(positions, owners, 30) == 9
    assert lookup(positions, owners, 31) == 7
    assert lookup(positions, owners, 2**64 - 1) == 7


def test_point_ids_are_encoded_as_qdrant_encodes_them() -> None:
    """Qdrant hashes le64(0)||le64(n) for integer ids and le64(1)||le64(16)||uuid for UUIDs."""
    assert point_id_bytes(5) == bytes(8) + (5).to_bytes(8, "little")
    u = uuid.UUID("550e8400-e29b-41d4-a716-446655440000")
    assert point_id_bytes(u) == (1).to_bytes(8, "little") + (16).to_bytes(8, "little") + u.bytes
    assert position_bytes(ShardId(2), 3) == b"\x02\x00\x00\x00\x03\x00\x00\x00"


def test_hash_values_are_pinned_so_every_process_agrees() -> None:
    """The hash never uses Python's per-process randomised hash(); these values never change."""
    assert point_hash(0) == 1041621211125469266
    assert point_hash(2**64 - 1) == 15686606282002403806
    assert point_hash(uuid.UUID("550e8400-e29b-41d4-a716-446655440000")) == 8330781221828783224
    ring = HashRing([ShardId(i) for i in range(6)])
    assert [ring.shard_for(i) for i in range(12)] == [0, 4, 2, 2, 2, 4, 1, 2, 0, 3, 0, 1]


@pytest.mark.parametrize("bad", [-1, 2**64, True, "7", 1.5])
def test_ids_outside_the_point_id_domain_are_refused(bad: object) -> None:
    """Point ids are unsigned 64-bit integers or UUIDs; anything else is a clear error."""
    ring = HashRing([ShardId(0)])
    with pytest.raises(HashRingError, match="point id"):
        ring.shard_for(bad)  # type: ignore[arg-type]


def test_empty_ring_and_bad_membership_changes_are_refused() -> None:
    """A ring with no shard cannot route; shards are added once and removed only if present."""
    ring = HashRing([])
    with pytest.raises(EmptyRingError):
        ring.shard_for(1)
    ring.add_shard(ShardId(0))
    with pytest.raises(HashRingError, match="already"):
        ring.add_shard(ShardId(0))
    with pytest.raises(HashRingError, match="not on the ring"):
        ring.remove_shard(ShardId(1))
    with pytest.raises(HashRingError, match="vnodes_per_shard"):
        HashRing([ShardId(0)], vnodes_per_shard=0)
    assert ring.shard_for(1) == 0


def test_conformance_check_passes_for_the_hash_ring() -> None:
    """check_hash_ring accepts our ring and reports its balance and movement."""
    report = check_hash_ring(HashRing, oracle_vnodes_per_shard=100)
    assert report.load_ratio <= 1.35
    assert abs(report.moved_share_on_add - report.expected_share_on_add) < 0.03


class _ModuloRing:
    """Hash-mod-n routing: balanced, but adding a shard reshuffles almost everything."""

    def __init__(self, shards: list[ShardId]) -> None:
        self.shards = sorted(shards)

    def shard_for(self, point_id: PointId) -> ShardId:
        if not self.shards:
            raise ValueError("no shards")
        return self.shards[point_hash(point_id) % len(self.shards)]

    def add_shard(self, shard_id: ShardId) -> None:
        self.shards = sorted([*self.shards, shard_id])

    def remove_shard(self, shard_id: ShardId) -> None:
        self.shards.remove(shard_id)


class _NoWrapRing(HashRing):
    """A ring whose lookup forgets to wrap around (clamps to the last position instead)."""

    def shard_for(self, point_id: PointId) -> ShardId:
        pairs = self.positions
        if not pairs:
            raise EmptyRingError("no shards")
        key = point_hash(point_id)
        for position, shard in pairs:
            if position >= key:
                return shard
        return pairs[-1][1]


def test_conformance_check_catches_modulo_routing() -> None:
    """Modulo routing is not consistent hashing: the movement rule must reject it."""
    with pytest.raises(AssertionError, match="rule 5"):
        check_hash_ring(lambda shards: _ModuloRing(list(shards)), sample_size=3000)


def test_conformance_check_catches_a_missing_wrap_around() -> None:
    """A lookup that does not wrap round disagrees with the oracle."""
    with pytest.raises(AssertionError, match="rule 3"):
        check_hash_ring(_NoWrapRing, sample_size=3000, oracle_vnodes_per_shard=100)

"""Checks for exercise 01: the hash ring lookup (point hash -> owning shard).

The rule (spec "Sharding"; refimpl/sharding/ring.py): a key belongs to the owner of the first
position *at or after* its hash, wrapping round to the owner of the smallest position when the
hash is past the last one. Graded against a scan-everything oracle, on hand-picked edges, and by
refimpl's own ring conformance check with the learner's lookup inside ``HashRing``.
"""

from hypothesis import given, note
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings
from refimpl.ids import ShardId
from refimpl.sharding import ring
from refimpl.testing.ring_conformance import check_hash_ring

EXERCISE = Exercise(
    marker="hash-ring-lookup",
    title="Hash ring lookup: point hash -> shard",
    book="book/hashing.md (The ring)",
)

HASH_MAX = 2**64 - 1


def scan_oracle(positions: list[int], owners: list[ShardId], key_hash: int) -> ShardId:
    """The dumb twin: look at every position, keep the first one at or after the key."""
    for position, owner in zip(positions, owners, strict=True):
        if position >= key_hash:
            return owner
    return owners[0]


@st.composite
def rings_and_keys(draw: st.DrawFn) -> tuple[list[int], list[ShardId], int]:
    """A sorted ring of 1-12 positions, owners for them, and a key near or far from them."""
    positions = sorted(draw(st.lists(st.integers(0, HASH_MAX), min_size=1, max_size=12)))
    owners = [ShardId(draw(st.integers(0, 7))) for _ in positions]
    near = st.sampled_from(positions).flatmap(
        lambda p: st.sampled_from([max(p - 1, 0), p, min(p + 1, HASH_MAX)])
    )
    key = draw(st.one_of(near, st.integers(0, HASH_MAX)))
    return positions, owners, key


def _ask(positions: list[int], owners: list[ShardId], key_hash: int) -> ShardId:
    expected = scan_oracle(positions, owners, key_hash)
    got = ring.lookup(positions, owners, key_hash)
    if got != expected:
        raise CheckFailedError(
            f"lookup(positions, owners, key_hash={key_hash}) returned shard {got}, "
            f"the oracle says shard {expected}",
            transcript="\n".join(
                f"position {p:>20}  owner {o}{'   <- first at or after the key' if o == expected and p >= key_hash else ''}"
                for p, o in zip(positions, owners, strict=True)
            ),
        )
    return got


@EXERCISE.check(points=3)
@grading_settings(max_examples=150)
@given(rings_and_keys())
def matches_scan_oracle(case: tuple[list[int], list[ShardId], int]) -> None:
    """lookup agrees with a scan of every position on random rings and keys."""
    positions, owners, key = case
    note(f"ring: {list(zip(positions, owners, strict=True))}, key_hash: {key}")
    _ask(positions, owners, key)


@EXERCISE.check(points=2)
def key_on_a_position_belongs_to_that_position() -> None:
    """A key equal to a position belongs to that position's owner ("at or after")."""
    positions = [100, 200, 300, 400]
    owners = [ShardId(7), ShardId(8), ShardId(9), ShardId(6)]
    for position in positions:
        _ask(positions, owners, position)


@EXERCISE.check(points=2)
def keys_past_the_end_wrap_to_the_first_position() -> None:
    """A key beyond the last position wraps round to the owner of the smallest position."""
    positions = [100, 200, 300]
    owners = [ShardId(4), ShardId(5), ShardId(6)]
    for key in (301, 1000, HASH_MAX, 0, 50, 100):
        _ask(positions, owners, key)
    _ask([HASH_MAX], [ShardId(3)], 0)
    _ask([0], [ShardId(2)], HASH_MAX)


@EXERCISE.check(points=3)
def hash_ring_conformance() -> None:
    """HashRing with your lookup passes refimpl's ring conformance check (oracle, balance, moves)."""
    check_hash_ring(
        ring.HashRing,
        shard_count=5,
        sample_size=4000,
        seed=8,
        oracle_vnodes_per_shard=ring.HASH_RING_SHARD_SCALE,
    )

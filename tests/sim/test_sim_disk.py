"""The simulated disk: writes are visible at once, durable only after fsync; crashes tear."""

from __future__ import annotations

import random

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import Entry, EntryKind, HardState, Membership, MemoryStorage
from refimpl.sim import SimDisk


def _entries(lo: int, hi: int, term: int) -> list[Entry]:
    return [Entry(Term(term), LogIndex(i), EntryKind.NORMAL, b"%d" % i) for i in range(lo, hi)]


def _disk() -> SimDisk:
    return SimDisk(MemoryStorage.bootstrap(Membership(frozenset({PeerId(1)}))))


def test_unsynced_writes_are_visible_but_lost_on_crash() -> None:
    """A write-back cache: reads see a write at once; a crash before fsync loses it."""
    disk = _disk()
    disk.append(_entries(2, 5, 1))
    disk.set_hard_state(HardState(Term(1), PeerId(1), LogIndex(1)))
    assert disk.last_index() == 4
    assert disk.unsynced_writes == 2
    disk.crash(random.Random(0), torn=False)
    assert disk.last_index() == 1
    assert disk.initial_state()[0].term == 0


def test_synced_writes_survive_a_crash() -> None:
    """fsync is the durability point: everything written before it survives."""
    disk = _disk()
    disk.append(_entries(2, 5, 1))
    disk.set_hard_state(HardState(Term(1), PeerId(1), LogIndex(3)))
    disk.sync()
    disk.append(_entries(5, 7, 1))
    disk.crash(random.Random(0), torn=False)
    assert disk.last_index() == 4
    assert disk.initial_state()[0] == HardState(Term(1), PeerId(1), LogIndex(3))


def test_torn_crash_keeps_a_prefix_of_unsynced_writes() -> None:
    """A torn crash keeps some prefix of the unsynced writes, never a later write alone."""
    outcomes = set()
    for seed in range(40):
        disk = _disk()
        disk.append(_entries(2, 6, 1))  # write 1: entries 2..5
        disk.set_hard_state(HardState(Term(1), PeerId(1), LogIndex(5)))  # write 2
        disk.crash(random.Random(seed), torn=True)
        last, hs = disk.last_index(), disk.initial_state()[0]
        # The hard state may only survive if the whole append before it survived.
        assert hs.term == 0 or last == 5
        assert 1 <= last <= 5
        outcomes.add((last, hs.term))
    assert (1, 0) in outcomes and (5, 1) in outcomes
    assert any(1 < last < 5 for last, _ in outcomes), "some crash tore the append"


def test_reads_follow_the_visible_copy_after_truncation() -> None:
    """An append that conflicts truncates the visible log at once, the durable log at fsync."""
    disk = _disk()
    disk.append(_entries(2, 6, 1))
    disk.sync()
    disk.append(_entries(3, 4, 2))
    assert disk.last_index() == 3 and disk.term(LogIndex(3)) == 2
    assert disk.durable.last_index() == 5 and disk.durable.term(LogIndex(3)) == 1

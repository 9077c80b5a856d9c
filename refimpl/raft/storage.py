"""Where a Raft node's durable state lives: the :class:`Storage` protocol and
its in-memory twin :class:`MemoryStorage`.

Rules:

* the core only *reads* storage (at start-up, and to fetch old entries to send);
  the driver *writes* it while handling a ``Ready`` (append, hard state,
  snapshot, then ``sync``) -- see :mod:`refimpl.raft.core`;
* the log is contiguous: a storage holds a snapshot covering ``[1, s]`` (or
  none, ``s = 0``) and entries ``s+1 .. last``; ``term(s)`` is answered from the
  snapshot's metadata;
* ``append`` first drops any suffix starting at ``entries[0].index`` (the core
  only hands over a conflicting suffix after proving it must go);
* asking for an index outside ``[s, last]`` raises a typed error, never
  returns a guess.

Genesis: a cluster starts from ``bootstrap(membership)``, which stores a
*genesis snapshot* at index 1, term 0, with empty data and the initial
membership. A joiner starts empty; the leader finds it has nothing below
index 2 and sends it the leader's snapshot, whose metadata carries the
membership -- so a joiner learns who the voters are the same way a follower
that fell far behind does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

from refimpl.ids import LogIndex, Term
from refimpl.raft.messages import (
    EMPTY_MEMBERSHIP,
    Entry,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
)

GENESIS_INDEX = LogIndex(1)
GENESIS_TERM = Term(0)


class StorageError(Exception):
    """A storage request that cannot be served (bad range, gap, corrupt file)."""


class LogUnavailableError(StorageError):
    """The requested index is compacted into the snapshot or beyond the last entry."""


def genesis_snapshot(membership: Membership) -> Snapshot:
    """The snapshot every bootstrapped peer starts from (index 1, term 0, no data)."""
    if not membership.voters:
        raise StorageError("a bootstrap membership needs at least one voter")
    return Snapshot(SnapshotMeta(GENESIS_INDEX, GENESIS_TERM, membership), b"")


class Storage(Protocol):
    """What a node was persisted with. Reads are for the core, writes for the driver."""

    def initial_state(self) -> tuple[HardState, Membership]:
        """Hard state and the membership recorded in the snapshot (empty for a joiner)."""
        ...

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries with index in ``[lo, hi)``; raises :class:`LogUnavailableError` outside the log."""
        ...

    def term(self, index: LogIndex) -> Term:
        """Term of the entry at ``index``; ``index`` may be the snapshot's last index."""
        ...

    def first_index(self) -> LogIndex:
        """Index of the first entry kept (snapshot last index + 1)."""
        ...

    def last_index(self) -> LogIndex:
        """Index of the last entry (the snapshot's last index if the log is empty)."""
        ...

    def snapshot(self) -> Snapshot | None:
        """The latest snapshot, if any."""
        ...

    def append(self, entries: Sequence[Entry]) -> None:
        """Drop the suffix from ``entries[0].index`` on, then append ``entries``."""
        ...

    def set_hard_state(self, hs: HardState) -> None:
        """Record term, vote and commit."""
        ...

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Install a snapshot received from the leader.

        The log up to ``snap.meta.last_index`` goes; the suffix after it is kept
        only if the entry at the snapshot index has the snapshot's term.
        """
        ...

    def compact(self, index: LogIndex, snapshot: Snapshot) -> None:
        """The application took ``snapshot`` at ``index``: drop entries up to ``index``."""
        ...

    def sync(self) -> None:
        """Durability point: everything written before this call survives a crash."""
        ...


class MemoryStorage:
    """An in-memory :class:`Storage`; the simulator wraps it to model unsynced writes."""

    def __init__(self) -> None:
        self._hard_state = HardState(Term(0), None, LogIndex(0))
        self._snapshot: Snapshot | None = None
        # _entries[k] has index _offset + k; _offset - 1 is the snapshot's last index.
        self._entries: list[Entry] = []
        self._offset = LogIndex(1)
        # Cached ``_offset + len(_entries) - 1``: the core asks for it on every message.
        self._last = LogIndex(0)

    def __deepcopy__(self, memo: dict[int, object]) -> MemoryStorage:
        """A copy that shares the (frozen, immutable) records and owns its own entry list.

        The simulated disk copies its durable storage at every crash; deep-copying each frozen
        entry would cost most of a crash's time and change nothing observable.
        """
        twin = MemoryStorage()
        twin._hard_state = self._hard_state
        twin._snapshot = self._snapshot
        twin._entries = list(self._entries)
        twin._offset = self._offset
        twin._last = self._last
        return twin

    @classmethod
    def bootstrap(cls, membership: Membership) -> MemoryStorage:
        """A storage holding the genesis snapshot of a new cluster."""
        storage = cls()
        storage.apply_snapshot(genesis_snapshot(membership))
        storage.set_hard_state(HardState(GENESIS_TERM, None, GENESIS_INDEX))
        return storage

    def initial_state(self) -> tuple[HardState, Membership]:
        if self._snapshot is None:
            return self._hard_state, EMPTY_MEMBERSHIP
        return self._hard_state, self._snapshot.meta.membership

    def hard_state(self) -> HardState:
        """The last hard state written (for tests and checkers)."""
        return self._hard_state

    def first_index(self) -> LogIndex:
        return self._offset

    def last_index(self) -> LogIndex:
        return self._last

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def term(self, index: LogIndex) -> Term:
        offset = self._offset
        if offset <= index <= self._last:
            return self._entries[index - offset].term  # the common case: one lookup
        if index == offset - 1:
            return self._snapshot.meta.last_term if self._snapshot is not None else Term(0)
        raise LogUnavailableError(f"term({index}) outside [{offset - 1}, {self._last}]")

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        offset = self._offset
        if lo > hi or lo < offset or hi > self._last + 1:
            raise LogUnavailableError(f"entries[{lo}, {hi}) outside [{offset}, {self._last + 1})")
        return self._entries[lo - offset : hi - offset]

    def append(self, entries: Sequence[Entry]) -> None:
        fresh = [e for e in entries if e.index >= self._offset]
        if not fresh:
            return
        first = fresh[0].index
        if first > self.last_index() + 1:
            raise StorageError(f"append at {first} leaves a gap after {self.last_index()}")
        for before, after in itertools.pairwise(fresh):
            assert after.index == before.index + 1, "appended entries must be contiguous"
        del self._entries[first - self._offset :]
        self._entries.extend(fresh)
        self._last = fresh[-1].index

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        index = snap.meta.last_index
        if self._snapshot is not None and index <= self._offset - 1:
            return  # older than what we have: nothing to do
        keep: list[Entry] = []
        if (
            self._offset <= index <= self.last_index()
            and self._entries[index - self._offset].term == snap.meta.last_term
        ):
            keep = self._entries[index - self._offset + 1 :]
        self._entries = keep
        self._offset = LogIndex(index + 1)
        self._last = LogIndex(index + len(keep))
        self._snapshot = snap

    def compact(self, index: LogIndex, snapshot: Snapshot) -> None:
        if snapshot.meta.last_index != index:
            raise StorageError(f"snapshot ends at {snapshot.meta.last_index}, not {index}")
        if index <= self._offset - 1:
            return  # already compacted at least this far
        if index > self.last_index():
            raise StorageError(f"cannot compact to {index} past last index {self.last_index()}")
        del self._entries[: index - self._offset + 1]
        self._offset = LogIndex(index + 1)
        self._snapshot = snapshot

    def sync(self) -> None:
        """Nothing to flush in memory."""

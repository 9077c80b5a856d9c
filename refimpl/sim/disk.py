"""A simulated disk with a write-back cache, wrapping :class:`refimpl.raft.MemoryStorage`.

Rules:

* every write is visible to later reads at once (the page cache) but becomes *durable* only at
  the next :meth:`SimDisk.sync` (fsync);
* a crash throws away every unsynced write; with ``torn`` it instead keeps a random prefix of
  them, and if that prefix ends in an append of several entries, only some of those entries
  (a torn last record that a checksum would cut off);
* restart reads only the durable state.

Theory of operation: the disk holds two storages, ``visible`` (what the running node reads
and writes) and ``durable`` (what survives a crash), and a list of pending writes. ``sync``
replays the pending writes onto ``durable``; ``crash`` replaces ``visible`` with a deep copy of
``durable``. Writes go through the same ``Storage`` methods on both copies, so the model makes
no assumption about how MemoryStorage stores things.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, Term
from refimpl.raft import Entry, HardState, Membership, MemoryStorage, Snapshot

__all__ = ["SimDisk"]

Write = Callable[[MemoryStorage], None]


def _append(entries: tuple[Entry, ...]) -> Write:
    return lambda storage: storage.append(entries)


def _set_hard_state(hs: HardState) -> Write:
    return lambda storage: storage.set_hard_state(hs)


def _apply_snapshot(snap: Snapshot) -> Write:
    return lambda storage: storage.apply_snapshot(snap)


def _compact(index: LogIndex, snap: Snapshot) -> Write:
    return lambda storage: storage.compact(index, snap)


@dataclass
class SimDisk:
    """One node's disk; implements the ``Storage`` protocol of :mod:`refimpl.raft.storage`."""

    durable: MemoryStorage
    visible: MemoryStorage = field(init=False)
    _pending: list[tuple[str, Write, tuple[Entry, ...]]] = field(default_factory=list)
    syncs: int = 0

    def __post_init__(self) -> None:
        self.visible = copy.deepcopy(self.durable)
        self._bind_reads()

    def _bind_reads(self) -> None:
        # The core reads storage on every message; binding the visible copy's methods on the
        # instance skips one Python call per read (about a tenth of the simulator's time).
        for name in ("entries", "term", "first_index", "last_index", "snapshot"):
            setattr(self, name, getattr(self.visible, name))

    # -- reads: from the visible copy ------------------------------------------------------
    def initial_state(self) -> tuple[HardState, Membership]:
        return self.visible.initial_state()

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        return self.visible.entries(lo, hi)

    def term(self, index: LogIndex) -> Term:
        return self.visible.term(index)

    def first_index(self) -> LogIndex:
        return self.visible.first_index()

    def last_index(self) -> LogIndex:
        return self.visible.last_index()

    def snapshot(self) -> Snapshot | None:
        return self.visible.snapshot()

    # -- writes: visible now, durable at sync ----------------------------------------------
    def _write(self, name: str, write: Write, entries: tuple[Entry, ...] = ()) -> None:
        write(self.visible)
        self._pending.append((name, write, entries))

    def append(self, entries: Sequence[Entry]) -> None:
        if entries:
            batch = tuple(entries)
            self._write("append", _append(batch), batch)

    def set_hard_state(self, hs: HardState) -> None:
        self._write("hard_state", _set_hard_state(hs))

    def apply_snapshot(self, snap: Snapshot) -> None:
        self._write("snapshot", _apply_snapshot(snap))

    def compact(self, index: LogIndex, snapshot: Snapshot) -> None:
        self._write("compact", _compact(index, snapshot))

    def sync(self) -> None:
        """fsync: everything written so far becomes durable."""
        for _, write, _ in self._pending:
            write(self.durable)
        self._pending.clear()
        self.syncs += 1

    @property
    def unsynced_writes(self) -> int:
        """How many writes a crash right now would lose."""
        return len(self._pending)

    def crash(self, rng: random.Random, torn: bool) -> str:
        """Lose unsynced writes (or, if ``torn``, all but a prefix); returns what survived."""
        kept = 0
        note = f"lost {len(self._pending)} unsynced writes"
        if torn and self._pending:
            kept = rng.randint(0, len(self._pending))
            for name, write, entries in self._pending[:kept]:
                if name == "append" and len(entries) > 1 and write is self._pending[kept - 1][1]:
                    # The last surviving write is an append: the disk may have cut it short.
                    cut = rng.randint(1, len(entries))
                    self.durable.append(entries[:cut])
                    note = f"kept {kept}/{len(self._pending)} unsynced writes, torn append {cut}/{len(entries)}"
                else:
                    write(self.durable)
            if "torn" not in note:
                note = f"kept {kept}/{len(self._pending)} unsynced writes"
        self._pending.clear()
        self.visible = copy.deepcopy(self.durable)
        self._bind_reads()
        return note

"""The node's view of its log: what storage holds plus what it does not hold yet.

Rules:

* ``storage`` holds the *stable* part (written by the driver); ``unstable``
  holds entries the core accepted but the driver has not yet appended, starting
  at ``unstable_offset``; ``pending_snapshot`` is a snapshot received from the
  leader and not yet applied to storage. Reads consult the newest source first.
* Indices ``>= unstable_offset`` are answered from ``unstable`` only: when a
  conflict truncates the log below what storage holds, storage's copy is stale
  until the driver's ``append`` truncates it too.
* ``committed`` never decreases and never exceeds ``last_index()``;
  ``applied <= committed``.

Theory: this is etcd/raft's ``raftLog`` + ``unstable`` pair, minus everything
we do not need. The core hands ``unstable`` to the driver in a ``Ready`` and
calls :meth:`stable_to` once the driver reports it persisted them.
"""

from __future__ import annotations

from collections.abc import Sequence

from refimpl.ids import LogIndex, Term
from refimpl.raft.messages import Entry, Snapshot
from refimpl.raft.storage import LogUnavailableError, Storage


class RaftLog:
    """Stable entries in ``storage`` + unstable entries in memory (implements ``AppendLog``)."""

    def __init__(self, storage: Storage, committed: LogIndex) -> None:
        self.storage = storage
        self.unstable: list[Entry] = []
        self.unstable_offset = LogIndex(storage.last_index() + 1)
        self.pending_snapshot: Snapshot | None = None
        snapshot_index = LogIndex(storage.first_index() - 1)
        # A commit index above the durable log can only come from a torn write; clamp it.
        self.committed = LogIndex(min(max(committed, snapshot_index), storage.last_index()))
        self.applied = snapshot_index

    def first_index(self) -> LogIndex:
        """First index still held as an entry (snapshot last index + 1)."""
        if self.pending_snapshot is not None:
            return LogIndex(self.pending_snapshot.meta.last_index + 1)
        return self.storage.first_index()

    def snapshot_index(self) -> LogIndex:
        """Last index covered by the newest snapshot (0 if none)."""
        return LogIndex(self.first_index() - 1)

    def last_index(self) -> LogIndex:
        """Index of the newest entry (or the snapshot's last index when there is none)."""
        unstable = self.unstable
        if unstable:
            return unstable[-1].index
        if self.pending_snapshot is not None:
            return self.pending_snapshot.meta.last_index
        return self.storage.last_index()

    def last_term(self) -> Term:
        """Term of the newest entry."""
        term = self.term_at(self.last_index())
        assert term is not None, "the last index always has a term"
        return term

    def term_at(self, index: LogIndex) -> Term | None:
        """Term at ``index``; None if compacted away or beyond the end."""
        offset = self.unstable_offset
        if index >= offset:
            position = index - offset
            unstable = self.unstable
            return unstable[position].term if position < len(unstable) else None
        snap = self.pending_snapshot
        if snap is not None:
            if index == snap.meta.last_index:
                return snap.meta.last_term
            return None  # everything else below the unstable part is replaced by the snapshot
        try:
            # Storage answers exactly [snapshot index, last index] and raises outside it;
            # asking first and catching the rare miss saves two bounds calls per lookup.
            return self.storage.term(index)
        except LogUnavailableError:
            return None

    def match_term(self, index: LogIndex, term: Term) -> bool:
        """True if our log has an entry (or snapshot end) at ``index`` with ``term``."""
        return self.term_at(index) == term

    def entries(self, lo: LogIndex, hi: LogIndex, max_count: int) -> list[Entry]:
        """Up to ``max_count`` entries from ``[lo, hi)``; ``lo`` must not be compacted."""
        assert lo >= self.first_index(), f"entries from {lo} are compacted"
        hi = LogIndex(min(hi, self.last_index() + 1, lo + max_count))
        if lo >= hi:
            return []
        out: list[Entry] = []
        if lo < self.unstable_offset:
            out.extend(self.storage.entries(lo, LogIndex(min(hi, self.unstable_offset))))
        if hi > self.unstable_offset:
            start = max(lo, self.unstable_offset) - self.unstable_offset
            out.extend(self.unstable[start : hi - self.unstable_offset])
        assert len(out) == hi - lo and (not out or out[0].index == lo), "log has a hole"
        return out

    def truncate_and_append(self, entries: Sequence[Entry]) -> None:
        """Drop entries from ``entries[0].index`` on and append ``entries``."""
        if not entries:
            return
        after = entries[0].index
        assert after > self.committed, f"truncating committed entry {after}"
        assert after <= self.last_index() + 1, f"append at {after} leaves a gap"
        if after <= self.unstable_offset:
            # Storage's copy from `after` on is stale; the driver's append truncates it.
            self.unstable_offset = after
            self.unstable = list(entries)
        else:
            del self.unstable[after - self.unstable_offset :]
            self.unstable.extend(entries)

    def commit_to(self, index: LogIndex) -> None:
        """Raise the commit index (never lowers it)."""
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def stable_to(self, index: LogIndex, term: Term) -> None:
        """The driver persisted unstable entries up to ``(index, term)``."""
        if index < self.unstable_offset or self.term_at(index) != term:
            return  # superseded by a later truncation; the next Ready carries the new entries
        del self.unstable[: index + 1 - self.unstable_offset]
        self.unstable_offset = LogIndex(index + 1)

    def stable_snapshot_to(self, index: LogIndex) -> None:
        """The driver applied the pending snapshot ending at ``index``."""
        if self.pending_snapshot is not None and self.pending_snapshot.meta.last_index == index:
            self.pending_snapshot = None

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by ``snapshot`` (its entries will come later)."""
        index = snapshot.meta.last_index
        assert index > self.committed, "restoring a snapshot older than the commit index"
        self.pending_snapshot = snapshot
        self.unstable = []
        self.unstable_offset = LogIndex(index + 1)
        self.committed = index

    def applied_to(self, index: LogIndex) -> None:
        """The application applied everything up to ``index``."""
        assert index <= self.committed, f"applied {index} beyond commit {self.committed}"
        self.applied = LogIndex(max(self.applied, index))

    def is_up_to_date(self, last_index: LogIndex, last_term: Term) -> bool:
        """Is a log ending at ``(last_index, last_term)`` at least as up-to-date as ours?"""
        return (last_term, last_index) >= (self.last_term(), self.last_index())

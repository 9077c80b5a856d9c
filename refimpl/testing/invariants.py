"""Raft's safety invariants, checked after every event of a simulation.

Rules (the G-rules of ``raft-scenarios.md``; each violation names its rule):

* **G1 election safety** — at most one leader per term, checked at every become-leader event;
* **G2 log matching** — an ``(index, term)`` pair names one entry everywhere, forever, and the
  entry before it has one term everywhere (checked at every append);
* **G3 apply agreement** — each node applies indices consecutively (a snapshot may jump ahead),
  and no two nodes apply different entries at one index;
* **G4 leader completeness** — a new leader's log holds every entry anybody has applied;
* **G5 durability** — a vote grant, an AppendEntries ack or any message of term ``t`` leaves a
  node only once its fsynced state backs it; ``votedFor`` never changes within a term on disk;
  the term never decreases across a restart. A message of a term *older* than the sender's
  durable term is superseded and exempt from the content checks: a driver may step several
  messages before one Ready, so a term-``t`` grant or ack can leave after the node moved to
  ``t+1`` (and a ``t+1`` leader truncated the acked suffix). That is equivalent to the answer
  leaving first and the truncation following, which Raft allows: the node can never act in
  term ``t`` again, and a later-term leader's election already excludes whatever the old ack
  could have helped commit (every commit quorum of term ``t`` intersects its vote quorum).

Theory of operation: the checker sees the simulation through hooks (``on_append``,
``on_apply``, ``on_become_leader``, ``on_send``, ``on_sync``, ``on_restart``) and keeps small
global indexes: the first ``(term, kind, data, previous term)`` seen for every
``(index, term)``, the entry applied at every index, the leader of every term, the durable
vote of every node. Every hook is O(1) apart from copying the entries handed to it, which is
what lets the simulator check after every single event. G4 checks only the highest applied
index, because G2 (checked on every append) makes a log that matches there match everywhere
below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId, Term, Tick
from refimpl.raft import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    HardState,
    InstallSnapshotResponse,
    Message,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
)
from refimpl.raft.messages import direct_init

__all__ = ["DurableView", "InvariantViolationError", "RaftInvariants", "Violation"]
_TICK_0 = Tick(0)
_INDEX_0 = LogIndex(0)
_TERM_0 = Term(0)


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, with enough detail to read the transcript around it."""

    rule: str
    tick: Tick
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} at t={self.tick}: {self.detail}"


class InvariantViolationError(AssertionError):
    """Raised by a strict checker at the first violation."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(str(violation))
        self.violation = violation


@direct_init
@dataclass(frozen=True, slots=True)
class DurableView:
    """What a node's disk guarantees right now (read by the G5 send check)."""

    hard_state: HardState
    last_index: LogIndex
    snapshot_index: LogIndex
    term_at: Callable[[LogIndex], Term | None]
    """Durable term at an index, None if the durable log does not hold it."""
    visible_term_at: Callable[[LogIndex], Term | None]
    """The term the running node sees at an index (its log including unsynced writes)."""


@dataclass
class RaftInvariants:
    """Global invariant state of one simulated cluster."""

    strict: bool = True
    now: Tick = _TICK_0
    violations: list[Violation] = field(default_factory=list)
    leaders: dict[Term, PeerId] = field(default_factory=dict)
    _entries: dict[tuple[LogIndex, Term], tuple[bytes, Term]] = field(default_factory=dict)
    applied: dict[LogIndex, tuple[Term, bytes]] = field(default_factory=dict)
    max_applied: LogIndex = _INDEX_0
    _last_applied: dict[PeerId, LogIndex] = field(default_factory=dict)
    _durable_vote: dict[PeerId, tuple[Term, PeerId | None]] = field(default_factory=dict)
    _max_sent_term: dict[PeerId, Term] = field(default_factory=dict)

    def fail(self, rule: str, detail: str) -> None:
        """Record (and, if strict, raise) a violation."""
        violation = Violation(rule, self.now, detail)
        self.violations.append(violation)
        if self.strict:
            raise InvariantViolationError(violation)

    # -- G1, G4 --------------------------------------------------------------------------
    def on_become_leader(
        self,
        node: PeerId,
        term: Term,
        snapshot_index: LogIndex,
        term_at: Callable[[LogIndex], Term | None],
    ) -> None:
        """``term_at(i)`` is the new leader's term at index ``i`` (None if it has none)."""
        other = self.leaders.setdefault(term, node)
        if other != node:
            self.fail("G1", f"two leaders in term {term}: n{other} and n{node}")
        # An applied index inside the leader's snapshot is covered by it (snapshots hold only
        # applied state, and G3 checks the snapshot's last entry).
        if self.max_applied > snapshot_index:
            applied_term = self.applied[self.max_applied][0]
            have = term_at(self.max_applied)
            if have != applied_term:
                self.fail(
                    "G4",
                    f"leader n{node} (term {term}) has {have} at applied index "
                    f"{self.max_applied}, applied term is {applied_term}",
                )

    # -- G2 ------------------------------------------------------------------------------
    def on_append(self, node: PeerId, entries: Iterable[Entry], prev_term: Term | None) -> None:
        """``prev_term`` is the node's term at the index before the first entry (if known)."""
        for entry in entries:
            key = (entry.index, entry.term)
            record = self._entries.get(key)
            if record is None:
                if prev_term is not None:
                    self._entries[key] = (entry.data, prev_term)
            else:
                data, before = record
                if data != entry.data:
                    self.fail("G2", f"n{node}: two different entries at {entry.index}/{entry.term}")
                elif prev_term is not None and before != prev_term:
                    self.fail(
                        "G2",
                        f"n{node}: entry {entry.index}/{entry.term} follows term {prev_term}, "
                        f"elsewhere term {before}",
                    )
            prev_term = entry.term

    # -- G3 ------------------------------------------------------------------------------
    def on_apply(self, node: PeerId, entry: Entry) -> None:
        """A node applied a committed entry."""
        last = self._last_applied.get(node, _INDEX_0)
        if last and entry.index != last + 1:
            self.fail("G3", f"n{node} applied {entry.index} after {last}")
        self._last_applied[node] = entry.index
        seen = self.applied.setdefault(entry.index, (entry.term, entry.data))
        if seen != (entry.term, entry.data):
            self.fail(
                "G3",
                f"n{node} applied {entry.index}/{entry.term}, another node applied "
                f"{entry.index}/{seen[0]} (or other data)",
            )
        self.max_applied = max(self.max_applied, entry.index)

    def on_snapshot_restored(self, node: PeerId, snap: Snapshot) -> None:
        """A node's state machine jumped to a snapshot (G3's allowed jump)."""
        index = snap.meta.last_index
        seen = self.applied.get(index)
        if seen is not None and seen[0] != snap.meta.last_term:
            self.fail(
                "G3",
                f"n{node} restored snapshot {index}/{snap.meta.last_term}, applied term {seen[0]}",
            )
        last = self._last_applied.get(node, _INDEX_0)
        if index < last:
            self.fail("G3", f"n{node} rolled back from applied {last} to snapshot {index}")
        self._last_applied[node] = index

    # -- G5 ------------------------------------------------------------------------------
    def on_send(self, node: PeerId, m: Message, durable: DurableView) -> None:
        """Every message leaving ``node`` must be backed by its durable state."""
        if isinstance(m, (RequestVote, RequestVoteResponse)) and m.pre_vote:
            return  # pre-votes change nothing and need nothing on disk
        hs = durable.hard_state
        if m.term > hs.term:
            self.fail("G5", f"n{node} sent term {m.term} with durable term {hs.term}: {m}")
        if m.term < hs.term:
            # Superseded: the node produced this answer in an older term and moved on within the
            # same Ready. It can never act in that term again, and a later-term leader may have
            # legitimately truncated what the answer acknowledged (see the module docstring).
            self._note_sent(node, m.term)
            return
        if type(m) is AppendEntries:  # the common case (replication, heartbeats): nothing more
            self._note_sent(node, m.term)
            return
        if isinstance(m, RequestVoteResponse) and m.granted and hs.voted_for != m.dst:
            self.fail(
                "G5", f"n{node} granted n{m.dst} a vote not on disk (voted_for={hs.voted_for})"
            )
        if isinstance(m, AppendEntriesResponse) and m.success:
            match = m.match_index
            durable_term = durable.term_at(match)
            if match > durable.snapshot_index and (
                durable_term is None or durable_term != durable.visible_term_at(match)
            ):
                self.fail(
                    "G5",
                    f"n{node} acked match={match} but its disk has term {durable_term} there "
                    f"(durable last {durable.last_index})",
                )
        if isinstance(m, InstallSnapshotResponse) and m.last_index > max(
            durable.last_index, durable.snapshot_index
        ):
            self.fail("G5", f"n{node} acked snapshot {m.last_index} not on disk")
        self._note_sent(node, m.term)

    def on_send_all(self, node: PeerId, messages: Iterable[Message], durable: DurableView) -> None:
        """:meth:`on_send` for every message of one Ready, in order (the simulator's entry).

        The same checks: an AppendEntries in the durable term -- most messages, every heartbeat
        among them -- needs nothing but that term comparison, so it is tested here and the
        sender's highest term noted once for the batch; every other message goes through
        :meth:`on_send`.
        """
        durable_term = durable.hard_state.term
        highest = _TERM_0
        for m in messages:
            if type(m) is AppendEntries and m.term == durable_term:
                highest = durable_term
            else:
                self.on_send(node, m, durable)
        if highest:
            self._note_sent(node, highest)

    def _note_sent(self, node: PeerId, term: Term) -> None:
        if term > self._max_sent_term.get(node, _TERM_0):
            self._max_sent_term[node] = term

    def on_sync(self, node: PeerId, hs: HardState) -> None:
        """The durable hard state after an fsync: votedFor must not change within a term."""
        before = self._durable_vote.get(node)
        if before is not None:
            term, vote = before
            if hs.term < term:
                self.fail("G5", f"n{node} durable term went back from {term} to {hs.term}")
            elif hs.term == term and vote is not None and hs.voted_for != vote:
                self.fail(
                    "G5", f"n{node} changed its vote in term {term}: n{vote} → {hs.voted_for}"
                )
        self._durable_vote[node] = (hs.term, hs.voted_for)

    def on_restart(
        self, node: PeerId, term: Term, applied: LogIndex, snapshot_index: LogIndex
    ) -> None:
        """A node restarted from its disk."""
        sent = self._max_sent_term.get(node, _TERM_0)
        if term < sent:
            self.fail("G5", f"n{node} restarted at term {term} after sending term {sent}")
        if applied < snapshot_index:
            self.fail("G5", f"n{node} restarted with applied {applied} < snapshot {snapshot_index}")
        # The state machine restarts from the snapshot; re-applying the committed suffix is fine.
        self._last_applied[node] = applied

"""What the leader knows about each follower's log, and how fast it may send.

Rules (after etcd/raft's ``tracker``):

* ``match`` is the highest index known to be stored on the follower; it never
  decreases within a term. ``next`` is the next index to send, ``next > match``.
* PROBE: we do not know where the follower's log diverges; send at most one
  AppendEntries per heartbeat interval and wait for the answer.
* REPLICATE: the follower is known to match up to ``match``; stream entries
  optimistically, at most ``max_inflight`` unacknowledged messages at a time.
* SNAPSHOT: a snapshot is on its way; send nothing but heartbeats until the
  follower answers, or until the retry timeout sends us back to PROBE.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from refimpl.ids import LogIndex


class ProgressState(enum.Enum):
    """Replication mode for one follower."""

    PROBE = 1
    REPLICATE = 2
    SNAPSHOT = 3


# Enum members compared on hot paths, bound once to module names: in Python 3.11 each
# ``Enum.MEMBER`` is looked up through the enum's metaclass, several times slower than a global.
_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT
_INDEX_0 = LogIndex(0)


@dataclass(slots=True)
class Progress:
    """The leader's view of one follower (mutable: owned by exactly one leader)."""

    match: LogIndex
    next: LogIndex
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    """PROBE only: a probe is outstanding; cleared by a response or a heartbeat tick."""
    pending_snapshot: LogIndex = LogIndex(0)  # noqa: RUF009 -- NewType is free
    snapshot_elapsed_ticks: int = 0
    recent_active: bool = False
    """Heard from this peer since the last CheckQuorum round."""
    inflight: deque[LogIndex] = field(default_factory=deque)
    """REPLICATE only: last index of each unacknowledged AppendEntries, in send order."""

    def become_probe(self) -> None:
        """Back off to one message at a time, starting right after ``match``."""
        if self.state is _SNAPSHOT:
            self.next = LogIndex(max(self.match + 1, self.pending_snapshot + 1))
        else:
            self.next = LogIndex(self.match + 1)
        self.state = _PROBE
        self.probe_sent = False
        self.pending_snapshot = _INDEX_0
        self.inflight.clear()

    def become_replicate(self) -> None:
        """Stream entries after ``match``."""
        self.state = _REPLICATE
        self.next = LogIndex(self.match + 1)
        self.probe_sent = False
        self.inflight.clear()

    def become_snapshot(self, snapshot_index: LogIndex) -> None:
        """A snapshot ending at ``snapshot_index`` is being sent."""
        self.state = _SNAPSHOT
        self.pending_snapshot = snapshot_index
        self.snapshot_elapsed_ticks = 0
        self.probe_sent = False
        self.inflight.clear()

    def maybe_update(self, index: LogIndex) -> bool:
        """Record that the follower stores everything up to ``index``; True if news."""
        updated = index > self.match
        if updated:
            self.match = index
            self.probe_sent = False
        self.next = LogIndex(max(self.next, index + 1))
        while self.inflight and self.inflight[0] <= index:
            self.inflight.popleft()
        return updated

    def maybe_decrease_to(self, rejected: LogIndex, match_hint: LogIndex) -> bool:
        """Handle a rejection of the request whose ``prev_log_index`` was ``rejected``.

        ``match_hint`` is the highest index that may still match (from the
        follower's hint). Returns False for a stale rejection (ignored).
        """
        if self.state is _REPLICATE:
            if rejected <= self.match:
                return False  # answers a request older than what we know matched
            self.become_probe()
            return True
        if rejected != self.next - 1:
            return False  # answers an older probe
        self.next = LogIndex(max(min(rejected, match_hint + 1), self.match + 1))
        self.probe_sent = False
        return True

    def sent_entries(self, last_index: LogIndex, count: int) -> None:
        """Account for an AppendEntries carrying ``count`` entries ending at ``last_index``."""
        if self.state is _REPLICATE:
            if count > 0:
                self.next = LogIndex(last_index + 1)
                self.inflight.append(last_index)
        elif self.state is _PROBE:
            self.probe_sent = True

    def is_paused(self, max_inflight: int) -> bool:
        """True when flow control forbids sending more entries now."""
        state = self.state  # (plain ifs: cheaper than a match, and this runs per message)
        if state is _REPLICATE:
            return len(self.inflight) >= max_inflight
        if state is _PROBE:
            return self.probe_sent
        assert state is _SNAPSHOT
        return True

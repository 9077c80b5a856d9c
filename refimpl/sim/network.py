"""The simulated network: a priority queue of messages in flight, links that can be cut.

Rules:

* a message sent at tick ``t`` arrives at ``t + delay`` with ``delay`` drawn from the faults'
  range (at least one tick, so nothing arrives in the tick it was sent); equal arrival ticks
  keep send order, different delays reorder;
* a *link* is directed: ``(a, b)`` blocked means messages from ``a`` to ``b`` are lost, while
  ``b`` may still reach ``a`` (an asymmetric partition); a symmetric partition blocks both;
* a link is checked when the message is sent and again when it would arrive, so cutting a link
  also loses what was in flight on it;
* drops and duplicates are decided at send time from the network's own seeded generator.

Theory of operation: the queue is a heap of ``(arrival tick, sequence number, message)``; the
sequence number makes the order total and deterministic.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from refimpl.ids import PeerId, Tick
from refimpl.raft import Message
from refimpl.sim.faults import Faults

__all__ = ["SendOutcome", "SimNetwork"]


class SendOutcome(Enum):
    """What the network did with one sent message."""

    QUEUED = "queued"
    DUPLICATED = "duplicated"
    DROPPED = "dropped"
    BLOCKED = "blocked"


@dataclass
class SimNetwork:
    """Messages in flight and the state of every directed link."""

    faults: Faults
    rng: random.Random
    blocked: set[tuple[PeerId, PeerId]] = field(default_factory=set)
    _queue: list[tuple[int, int, Message]] = field(default_factory=list)
    _seq: int = 0
    sent_count: int = 0
    delivered_count: int = 0

    def _delay(self) -> int:
        lo, hi = self.faults.delay_min_ticks, self.faults.delay_max_ticks
        # random() is several times cheaper than randint() and just as uniform here.
        return lo if lo == hi else lo + int(self.rng.random() * (hi - lo + 1))

    def _push(self, now: Tick, message: Message) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (now + self._delay(), self._seq, message))

    def send(self, now: Tick, message: Message) -> SendOutcome:
        """Hand one message to the network; returns what happened to it."""
        self.sent_count += 1
        if self.blocked and (message.src, message.dst) in self.blocked:
            return SendOutcome.BLOCKED
        faults = self.faults
        if faults.drop_probability and self.rng.random() < faults.drop_probability:
            return SendOutcome.DROPPED
        lo, hi = faults.delay_min_ticks, faults.delay_max_ticks
        # _push inlined (it runs for every message); the same draws in the same order.
        self._seq += 1
        delay = lo if lo == hi else lo + int(self.rng.random() * (hi - lo + 1))
        heapq.heappush(self._queue, (now + delay, self._seq, message))
        dup = faults.duplicate_probability
        if dup and self.rng.random() < dup:
            self._push(now, message)
            return SendOutcome.DUPLICATED
        return SendOutcome.QUEUED

    def pop_due(self, now: Tick) -> Message | None:
        """The next message due at or before ``now`` whose link is still up, or None."""
        while self._queue and self._queue[0][0] <= now:
            _, _, message = heapq.heappop(self._queue)
            if (message.src, message.dst) in self.blocked:
                continue
            self.delivered_count += 1
            return message
        return None

    def pop_all_due(self, now: Tick) -> dict[PeerId, list[Message]]:
        """Every message due at or before ``now`` on a live link, grouped by destination."""
        # The same loop as pop_due, inlined: it runs for every message of the simulation.
        due: dict[PeerId, list[Message]] = {}
        queue, blocked, pop = self._queue, self.blocked, heapq.heappop
        while queue and queue[0][0] <= now:
            message = pop(queue)[2]
            if blocked and (message.src, message.dst) in blocked:
                continue
            self.delivered_count += 1
            bucket = due.get(message.dst)
            if bucket is None:
                due[message.dst] = [message]
            else:
                bucket.append(message)
        return due

    def in_flight(self) -> int:
        """Number of queued messages (including ones a cut link will lose)."""
        return len(self._queue)

    def cut(self, a: PeerId, b: PeerId, both_ways: bool = True) -> None:
        """Block ``a → b`` (and ``b → a`` unless ``both_ways`` is False)."""
        self.blocked.add((a, b))
        if both_ways:
            self.blocked.add((b, a))

    def partition(self, groups: Iterable[Iterable[PeerId]]) -> None:
        """Symmetric partition: only peers in the same group can talk (replaces all cuts)."""
        group_of: dict[PeerId, int] = {}
        for i, group in enumerate(groups):
            for peer in group:
                group_of[peer] = i
        self.blocked = {
            (a, b) for a in group_of for b in group_of if a != b and group_of[a] != group_of[b]
        }

    def heal(self) -> None:
        """Restore every link."""
        self.blocked.clear()

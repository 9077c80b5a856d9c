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

Theory of operation: messages in flight wait in one bucket per arrival tick, in send order, and
a heap holds the ticks that have a bucket. Delivery empties the due buckets in tick order, so
the order is by ``(arrival tick, send order)``: total and deterministic. (One heap operation per
distinct arrival tick rather than per message: most ticks receive many messages.)
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


# Enum members compared on hot paths, bound once to module names: in Python 3.11 each
# ``Enum.MEMBER`` is looked up through the enum's metaclass, several times slower than a global.
_BLOCKED = SendOutcome.BLOCKED
_DROPPED = SendOutcome.DROPPED
_DUPLICATED = SendOutcome.DUPLICATED
_QUEUED = SendOutcome.QUEUED


@dataclass
class SimNetwork:
    """Messages in flight and the state of every directed link."""

    faults: Faults
    rng: random.Random
    blocked: set[tuple[PeerId, PeerId]] = field(default_factory=set)
    _buckets: dict[int, list[Message]] = field(default_factory=dict)
    """Arrival tick -> the messages arriving then, in send order."""
    _ticks: list[int] = field(default_factory=list)
    """Heap of the arrival ticks that have a bucket."""
    _in_flight: int = 0
    sent_count: int = 0
    delivered_count: int = 0

    def _enqueue(self, now: Tick, message: Message) -> None:
        lo, hi = self.faults.delay_min_ticks, self.faults.delay_max_ticks
        # random() is several times cheaper than randint() and just as uniform here.
        at = now + (lo if lo == hi else lo + int(self.rng.random() * (hi - lo + 1)))
        bucket = self._buckets.get(at)
        if bucket is None:
            self._buckets[at] = [message]
            heapq.heappush(self._ticks, at)
        else:
            bucket.append(message)
        self._in_flight += 1

    def send(self, now: Tick, message: Message) -> SendOutcome:
        """Hand one message to the network; returns what happened to it."""
        self.sent_count += 1
        if self.blocked and (message.src, message.dst) in self.blocked:
            return _BLOCKED
        faults, random = self.faults, self.rng.random
        if faults.drop_probability and random() < faults.drop_probability:
            return _DROPPED
        # _enqueue inlined (it runs for every message); the same draw, the same order.
        lo, hi = faults.delay_min_ticks, faults.delay_max_ticks
        at = now + (lo if lo == hi else lo + int(random() * (hi - lo + 1)))
        bucket = self._buckets.get(at)
        if bucket is None:
            self._buckets[at] = [message]
            heapq.heappush(self._ticks, at)
        else:
            bucket.append(message)
        self._in_flight += 1
        dup = faults.duplicate_probability
        if dup and random() < dup:
            self._enqueue(now, message)
            return _DUPLICATED
        return _QUEUED

    def pop_due(self, now: Tick) -> Message | None:
        """The next message due at or before ``now`` whose link is still up, or None."""
        ticks = self._ticks
        while ticks and ticks[0] <= now:
            bucket = self._buckets[ticks[0]]
            message = bucket.pop(0)
            self._in_flight -= 1
            if not bucket:
                del self._buckets[heapq.heappop(ticks)]
            if (message.src, message.dst) in self.blocked:
                continue
            self.delivered_count += 1
            return message
        return None

    def pop_all_due(self, now: Tick) -> dict[PeerId, list[Message]]:
        """Every message due at or before ``now`` on a live link, grouped by destination."""
        due: dict[PeerId, list[Message]] = {}
        ticks, blocked = self._ticks, self.blocked
        while ticks and ticks[0] <= now:
            bucket = self._buckets.pop(heapq.heappop(ticks))
            self._in_flight -= len(bucket)
            for message in bucket:
                if blocked and (message.src, message.dst) in blocked:
                    continue
                self.delivered_count += 1
                group = due.get(message.dst)
                if group is None:
                    due[message.dst] = [message]
                else:
                    group.append(message)
        return due

    def in_flight(self) -> int:
        """Number of queued messages (including ones a cut link will lose)."""
        return self._in_flight

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

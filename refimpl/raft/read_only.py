"""ReadIndex bookkeeping: which reads wait for which heartbeat round (Raft thesis §6.4).

Rules:

* a read is answered with the commit index the leader had when the read was
  *requested*, and only after a quorum of voters answered a heartbeat sent *after*
  the request -- proof that nobody else was leader at that moment;
* heartbeat rounds are numbered (``seq``, carried as ``read_ctx``); an answer to
  round ``k`` confirms every read of rounds ``<= k``, never a later one;
* reads requested before a new leader committed an entry of its own term wait in
  ``awaiting_commit`` (its commit index could be behind the cluster's);
* losing leadership drops every pending read (:meth:`ReadOnly.clear`): a deposed
  leader never confirms a read.

Theory: reads leave in request order. Every read requested before the next
Ready shares one round, so a burst of reads costs one heartbeat per follower.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId
from refimpl.raft.quorum import has_quorum


@dataclass(slots=True)
class PendingRead:
    """A read waiting for a heartbeat quorum of round ``seq``."""

    request_ctx: bytes
    index: LogIndex
    seq: int
    acks: set[PeerId] = field(default_factory=set)


class ReadOnly:
    """The leader's queue of ReadIndex requests."""

    def __init__(self) -> None:
        self.pending: deque[PendingRead] = deque()
        self.awaiting_commit: list[bytes] = []
        self.seq = 0
        self.round_open = False
        """True when reads joined round ``seq`` whose heartbeats are not sent yet."""

    def clear(self) -> None:
        """Leadership lost (or never had): forget every read."""
        self.pending.clear()
        self.awaiting_commit.clear()
        self.round_open = False

    def __len__(self) -> int:
        return len(self.pending) + len(self.awaiting_commit)

    def start(self, contexts: Iterable[bytes], index: LogIndex, leader: PeerId) -> None:
        """Queue reads at ``index`` in the open round (opening one if needed)."""
        if not self.round_open:
            self.seq += 1
            self.round_open = True
        for ctx in contexts:
            self.pending.append(PendingRead(ctx, index, self.seq, {leader}))

    def take_round(self) -> int:
        """The round to broadcast now (0 if none is open); closes it."""
        if not self.round_open:
            return 0
        self.round_open = False
        return self.seq

    def heartbeat_ctx(self) -> int:
        """``read_ctx`` for a periodic heartbeat: re-ask the latest round while reads wait."""
        return self.seq if self.pending else 0

    def ack(self, peer: PeerId, read_ctx: int) -> None:
        """``peer`` answered round ``read_ctx``; that confirms every earlier round too."""
        if read_ctx == 0:
            return
        for read in self.pending:
            if read.seq <= read_ctx:
                read.acks.add(peer)

    def release(self, voters: frozenset[PeerId]) -> list[PendingRead]:
        """Pop, in order, every read confirmed by a quorum of ``voters``."""
        done: list[PendingRead] = []
        while self.pending and has_quorum(self.pending[0].acks, voters):
            done.append(self.pending.popleft())
        return done

"""An in-memory network for peer-level simulation: drop, delay and partition, seeded.

Rules:

* Every message goes through the real wire codec (encode, then decode) so the simulation also
  exercises :mod:`refimpl.peer.wire`.
* Faults are data on the :class:`MemoryNetwork`: ``drop_rate`` (probability a Raft message is
  lost), ``delay_s`` (a ``(min, max)`` range drawn per message, so messages can reorder) and
  ``blocked`` (ordered pairs of URIs that cannot reach each other; :meth:`partition` fills it
  symmetrically). Requests (joins, forwarded proposals) see partitions and delays but are never
  dropped at random: a lost request looks like a timeout, which partitions already model.
* All randomness of the network comes from the ``random.Random`` given to it. The one source
  of non-determinism left is trio itself: it deliberately shuffles the order in which runnable
  tasks run, so two runs with the same seed may interleave differently (tests therefore assert
  outcomes, not exact timings; the sans-IO simulator in :mod:`refimpl.sim` is the place for
  exact replays).

Theory of operation: each delivery is a task sleeping its delay in the network's nursery, so
under ``trio.testing.MockClock(autojump_threshold=0)`` hours of cluster time pass in moments.
"""

import random
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import trio

from refimpl.peer.transport import FailureCounter, InboundHandler, SendFailure, TransportError
from refimpl.peer.wire import decode_message, encode_message
from refimpl.raft import Message

__all__ = ["MemoryNetwork", "MemoryTransport"]


class MemoryNetwork:
    """The router all :class:`MemoryTransport` endpoints share."""

    def __init__(self, nursery: trio.Nursery, rng: random.Random) -> None:
        self._nursery = nursery
        self._rng = rng
        self._handlers: dict[str, InboundHandler] = {}
        self.drop_rate = 0.0
        self.delay_s: tuple[float, float] = (0.001, 0.005)
        self.blocked: set[tuple[str, str]] = set()
        self.delivered = 0
        self.dropped = 0

    def endpoint(self, uri: str) -> "MemoryTransport":
        """A transport sending from ``uri``."""
        return MemoryTransport(self, uri)

    def register(self, uri: str, handler: InboundHandler) -> None:
        """Deliver what is sent to ``uri`` to ``handler``."""
        self._handlers[uri] = handler

    def unregister(self, uri: str) -> None:
        """``uri`` is down: what is sent to it is lost."""
        self._handlers.pop(uri, None)

    def partition(self, side_a: Iterable[str], side_b: Iterable[str]) -> None:
        """Cut every link between the two sides, both ways."""
        b = list(side_b)
        for x in side_a:
            for y in b:
                self.blocked |= {(x, y), (y, x)}

    def heal(self) -> None:
        """Remove every partition."""
        self.blocked.clear()

    def _delay(self) -> float:
        lo, hi = self.delay_s
        return self._rng.uniform(lo, hi)

    def route(self, src: str, dst: str, message: Message, failures: FailureCounter) -> None:
        if (src, dst) in self.blocked or dst not in self._handlers:
            failures.record(dst, "unreachable")
            self.dropped += 1
            return
        if self._rng.random() < self.drop_rate:
            self.dropped += 1
            return
        body = encode_message(message)
        self._nursery.start_soon(self._deliver_later, src, dst, body, self._delay())

    async def _deliver_later(self, src: str, dst: str, body: bytes, delay_s: float) -> None:
        await trio.sleep(delay_s)
        handler = self._handlers.get(dst)
        if handler is None or (src, dst) in self.blocked:
            self.dropped += 1
            return  # went down or got cut off while the message was in flight
        self.delivered += 1
        handler.deliver(decode_message(body))

    async def call(
        self, src: str, dst: str, body: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        with trio.move_on_after(timeout_s):
            await trio.sleep(self._delay())
            handler = self._handlers.get(dst)
            if handler is None or (src, dst) in self.blocked:
                raise TransportError(f"{dst} is unreachable from {src}")
            answer = await handler.handle_request(body, urlsplit(src).hostname or "")
            await trio.sleep(self._delay())
            if (dst, src) in self.blocked:
                raise TransportError(f"the answer from {dst} was lost")
            return answer
        raise TransportError(f"no answer from {dst} within {timeout_s:g} s")


class MemoryTransport:
    """One peer's endpoint on a :class:`MemoryNetwork`."""

    def __init__(self, network: MemoryNetwork, uri: str) -> None:
        self._network = network
        self.uri = uri
        self._failures = FailureCounter()

    def send(self, uri: str, message: Message) -> None:
        """Route ``message`` (it may be dropped, delayed or blocked)."""
        self._network.route(self.uri, uri, message, self._failures)

    async def request(self, uri: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Call ``uri``'s request handler through the network."""
        return await self._network.call(self.uri, uri, body, timeout_s)

    def forget(self, uri: str) -> None:
        """Drop the counters of a removed peer."""
        self._failures.forget(uri)

    def send_failures(self) -> Mapping[str, SendFailure]:
        """Per-URI failure counters."""
        return self._failures.snapshot()

    def receive_errors(self) -> Mapping[str, int]:
        """Always empty: the simulated network never corrupts bytes."""
        return {}

    def request_pool_stats(self) -> Mapping[str, int]:
        """Always empty: the simulated network has no connections to pool."""
        return {}

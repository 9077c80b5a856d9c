"""What the peer driver needs from a network, shared by the TCP and the in-memory transports.

Rules:

* ``send`` never blocks and never raises: a message that cannot be queued (queue full, unknown
  address) is dropped and counted. Raft is built for lossy networks; a blocked consensus loop
  is worse than a lost heartbeat.
* ``request`` is a one-shot call (a join, a forwarded proposal) that waits for one answer and
  raises :class:`TransportError` when the other side cannot be reached in time.
* Failures are counted per destination URI, in the shape of Qdrant's ``message_send_failures``
  (``count``, ``latest_error``, ``latest_error_timestamp``).

Theory of operation: the driver (:mod:`refimpl.peer.node`) is written against
:class:`Transport` and :class:`InboundHandler`; :mod:`refimpl.peer.tcp` implements them on trio
TCP streams, :mod:`refimpl.peer.memnet` in memory with injected faults for the simulation.
"""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from refimpl.raft import Message

__all__ = ["FailureCounter", "InboundHandler", "SendFailure", "Transport", "TransportError"]


class TransportError(Exception):
    """A request could not be delivered or answered."""


@dataclass(frozen=True, slots=True)
class SendFailure:
    """Failures to one destination, as ``GET /cluster`` reports them."""

    count: int
    latest_error: str
    latest_error_timestamp: str


class FailureCounter:
    """Counts send failures per URI, keeping the latest error text and its (UTC) time."""

    def __init__(self) -> None:
        self._by_uri: dict[str, SendFailure] = {}

    def record(self, uri: str, error: str) -> None:
        """Count one failure to ``uri``."""
        old = self._by_uri.get(uri)
        stamp = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        self._by_uri[uri] = SendFailure((old.count if old else 0) + 1, error, stamp)

    def forget(self, uri: str) -> None:
        """Drop the counters of a destination that left the cluster."""
        self._by_uri.pop(uri, None)

    def snapshot(self) -> Mapping[str, SendFailure]:
        """A copy of the counters."""
        return dict(self._by_uri)


class InboundHandler(Protocol):
    """What a transport calls when something arrives (implemented by the peer)."""

    def deliver(self, message: Message) -> None:
        """A Raft message arrived."""
        ...

    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        """A request arrived from ``remote_host``; return the response body."""
        ...


class Transport(Protocol):
    """How the peer reaches other peers."""

    def send(self, uri: str, message: Message) -> None:
        """Queue ``message`` for ``uri``; drop and count it if that is not possible now."""
        ...

    async def request(self, uri: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait for its response; raises TransportError."""
        ...

    def forget(self, uri: str) -> None:
        """Stop sending to ``uri`` (its peer was removed): drop its queue and its counters."""
        ...

    def send_failures(self) -> Mapping[str, SendFailure]:
        """Per-URI failure counters."""
        ...

    def receive_errors(self) -> Mapping[str, int]:
        """Inbound connections closed for a bad frame or body, by reason."""
        ...

    def request_pool_stats(self) -> Mapping[str, int]:
        """Counters of the connections that carry requests (opened, reused, dropped and why);
        empty where requests need no connection."""
        ...

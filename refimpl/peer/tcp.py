"""The p2p transport on trio TCP streams (Raft messages, joins and forwarded proposals).

Rules:

* Connections are one-way for Raft traffic: each peer keeps one outbound connection per
  destination URI and only writes RAFT frames to it; the other side answers on *its* outbound
  connection.
* Requests (REQUEST frame out, one RESPONSE back) go over a small pool of persistent
  connections per destination, separate from the Raft one. A pooled connection carries **one
  request at a time**: it is taken from the pool, the request written, the response read, and
  only then given back. That is simpler to get right than multiplexing by request id — no
  demultiplexer task, no table of waiters, and the server stays a plain read-answer loop —
  and at most ``pool_limit`` requests per destination are in flight at once (further callers
  wait for a slot, inside their own timeout). Opening a pooled connection includes the
  handshake, so a secret is proved once per connection, not once per request.
* A connection whose request did not finish cleanly (timeout, cancellation, reset, a bad frame)
  is closed, never given back: a late RESPONSE on it would otherwise be read as the answer to
  the next request. The failed request raises :class:`TransportError`; the next one opens a
  fresh connection (callers retry with their own backoff; the Raft sender keeps its backoff).
* Before an idle connection is reused it is checked for readability: an idle connection has
  nothing to say, so readable means the other side closed it (a peer that restarted, a new
  incarnation on the same address) or sent garbage; it is dropped and counted as stale, and
  the request goes to another or a fresh connection. Idle connections older than
  ``idle_timeout_s`` are closed (by a reaper task and on every take); at most ``pool_limit``
  are kept per destination; ``forget`` closes a destination's pool.
  :meth:`TcpTransport.request_pool_stats` counts opened, reused, stale, idle-closed and broken
  connections.
* Each destination has a bounded queue (``queue_limit`` messages, 128 as in Qdrant). When it is
  full the message is dropped and counted ("send queue full"); Raft resends what matters.
* A connection that fails is retried with exponential backoff (``backoff_min_s`` doubling up to
  ``backoff_max_s``); every failure is counted per URI for ``GET /cluster``.
* An inbound connection that sends a malformed, oversized or corrupt frame (or a body that is
  not a valid message) is closed and counted by reason; the peer keeps running. On a pooled
  connection that closes that connection only. An inbound connection serves any number of
  RAFT and REQUEST frames, answering each REQUEST before reading the next frame; at most
  ``max_inbound`` are served at once (the rest are closed and counted).
* With a cluster ``secret`` every connection starts with :mod:`refimpl.peer.handshake`: we
  prove the secret on the connections we open, and close (and count) inbound ones that do not.

Theory of operation: :meth:`TcpTransport.run` serves the listener and owns a nursery in which
one sender task per destination drains that destination's queue. URIs look like Qdrant's
``http://host:port/``; only host and port are used (the scheme is decoration: this is not HTTP).
"""

import logging
import select
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

from refimpl.peer.frames import MAX_BODY_BYTES, FrameDecoder, FrameError, FrameType, encode_frame
from refimpl.peer.handshake import HANDSHAKE_TIMEOUT_S, HandshakeError, accept_peer, authenticate
from refimpl.peer.transport import FailureCounter, InboundHandler, SendFailure, TransportError
from refimpl.peer.wire import (
    WireError,
    decode_message,
    decode_object,
    encode_message,
    encode_object,
)
from refimpl.raft import Message

__all__ = ["TcpTransport", "parse_uri"]

log = logging.getLogger("refimpl.peer.tcp")

RECEIVE_CHUNK_BYTES = 64 * 1024
POOL_LIMIT = 8
"""Persistent request connections per destination (and requests in flight to it) at most."""
IDLE_TIMEOUT_S = 30.0
"""A pooled connection unused this long is closed."""
MAX_INBOUND_CONNECTIONS = 512
"""Inbound connections served at once; past it a new one is closed at once and counted
(``too_many_connections``). A cluster needs (pool_limit + 1) per other peer."""


@dataclass(slots=True)
class _Connection:
    """One pooled request connection: its stream, its decoder, and when it was last given back."""

    stream: trio.SocketStream
    decoder: FrameDecoder
    idle_since: float = 0.0


@dataclass(slots=True)
class _Pool:
    """The request connections to one destination: the idle ones (most recent last) and the
    slots bounding how many requests are in flight."""

    slots: trio.Semaphore
    idle: list[_Connection] = field(default_factory=list)


def _has_pending_input(stream: trio.SocketStream) -> bool:
    """True if the socket is readable now (EOF, a reset or unexpected bytes on an idle one)."""
    fd = stream.socket.fileno()
    if fd < 0:
        return True  # closed under us: as good as stale
    poller = select.poll()  # not select.select: it fails on descriptors past 1023
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _close_now(connection: _Connection) -> None:
    """Close an idle connection synchronously (nobody is waiting on it)."""
    connection.stream.socket.close()


def parse_uri(uri: str) -> tuple[str, int]:
    """Return ``(host, port)`` of a peer URI such as ``http://127.0.0.1:6335/``."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad port in peer URI {uri!r}") from exc
    if not parts.hostname or port is None:
        raise ValueError(f"peer URI {uri!r} needs a host and a port, like http://host:6335/")
    return parts.hostname, port


class TcpTransport:
    """:class:`refimpl.peer.transport.Transport` over TCP."""

    def __init__(
        self,
        queue_limit: int = 128,
        connect_timeout_s: float = 1.0,
        backoff_min_s: float = 0.05,
        backoff_max_s: float = 1.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        *,
        secret: bytes | None = None,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        pool_limit: int = POOL_LIMIT,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        max_inbound: int = MAX_INBOUND_CONNECTIONS,
    ) -> None:
        assert queue_limit > 0 and 0 < backoff_min_s <= backoff_max_s
        assert pool_limit > 0 and idle_timeout_s > 0
        self._pool_limit = pool_limit
        self._max_inbound = max_inbound
        self._inbound = 0
        self._idle_timeout_s = idle_timeout_s
        self._pools: dict[str, _Pool] = {}
        self._pool_stats = dict.fromkeys(("opened", "reused", "stale", "idle_closed", "broken"), 0)
        self._queue_limit = queue_limit
        self._connect_timeout_s = connect_timeout_s
        self._backoff = (backoff_min_s, backoff_max_s)
        self._max_body_bytes = max_body_bytes
        self._secret = secret or None  # an empty secret is no secret, as an empty api_key
        self._handshake_timeout_s = handshake_timeout_s
        self._queues: dict[str, trio.MemorySendChannel[bytes]] = {}
        self._failures = FailureCounter()
        self._receive_errors: dict[str, int] = {}
        self._nursery: trio.Nursery | None = None

    async def run(
        self,
        handler: InboundHandler,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` and run the senders; reports the bound port when started."""
        try:
            await self._serve(handler, host, port, task_status)
        finally:
            self._nursery = None
            for pool in self._pools.values():
                for connection in pool.idle:
                    _close_now(connection)
            self._pools.clear()

    async def _serve(
        self, handler: InboundHandler, host: str, port: int, task_status: trio.TaskStatus[int]
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            listeners = await trio.open_tcp_listeners(port, host=host)
            bound = listeners[0].socket.getsockname()[1]
            secured = " (peers must prove the cluster secret)" if self._secret else ""
            log.info("p2p listening on %s:%d%s", host, bound, secured)
            await nursery.start(trio.serve_listeners, self._connection_handler(handler), listeners)
            nursery.start_soon(self._reap_idle)
            task_status.started(bound)

    # -------------------------------------------------------------- sending

    def send(self, uri: str, message: Message) -> None:
        """Queue ``message`` for ``uri`` (drop and count it when the queue is full)."""
        queue = self._queues.get(uri)
        if queue is None:
            if self._nursery is None:
                self._failures.record(uri, "transport is not running")
                return
            queue, receive = trio.open_memory_channel[bytes](self._queue_limit)
            self._queues[uri] = queue
            self._nursery.start_soon(self._run_sender, uri, queue, receive)
        try:
            queue.send_nowait(encode_frame(FrameType.RAFT, encode_message(message)))
        except trio.WouldBlock:
            self._failures.record(uri, "send queue full, message dropped")

    def forget(self, uri: str) -> None:
        """Stop sending to ``uri``: its sender task ends and its counters go."""
        queue = self._queues.pop(uri, None)
        if queue is not None:
            queue.close()
        self._failures.forget(uri)
        pool = self._pools.pop(uri, None)
        for connection in pool.idle if pool is not None else ():
            _close_now(connection)

    async def _run_sender(
        self,
        uri: str,
        mine: trio.MemorySendChannel[bytes],
        queue: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        backoff_s = self._backoff[0]
        while self._queues.get(uri) is mine:  # until forget(uri)
            try:
                host, port = parse_uri(uri)
                with trio.fail_after(self._connect_timeout_s):
                    stream = await trio.open_tcp_stream(host, port)
                await authenticate(stream, self._secret, uri, self._handshake_timeout_s)
            except (OSError, ValueError, trio.TooSlowError, HandshakeError) as exc:
                if self._queues.get(uri) is not mine:
                    return  # forgotten while connecting: nothing to count any more
                self._failures.record(uri, f"connect failed: {exc or type(exc).__name__}")
                await trio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, self._backoff[1])
                continue
            backoff_s = self._backoff[0]
            async with stream:
                try:
                    async for frame in queue:
                        await stream.send_all(frame)
                    return  # the queue was closed by forget()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                    if self._queues.get(uri) is mine:
                        self._failures.record(uri, f"send failed: {exc or type(exc).__name__}")

    async def request(self, uri: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one REQUEST over a pooled connection to ``uri`` and return the RESPONSE body."""
        try:
            frame = encode_frame(FrameType.REQUEST, encode_object(body))
            with trio.fail_after(timeout_s):
                pool = self._pool_for(uri)
                async with pool.slots:
                    connection = self._take_idle(pool) or await self._open(uri)
                    try:
                        answer = await self._exchange(connection, frame, uri)
                    except BaseException:
                        self._pool_stats["broken"] += 1
                        await trio.aclose_forcefully(connection.stream)
                        raise
                    self._give_back(uri, pool, connection)
                    return answer
        except trio.TooSlowError:
            raise TransportError(f"no answer from {uri} within {timeout_s:g} s") from None
        except (OSError, ValueError, trio.BrokenResourceError, FrameError, WireError) as exc:
            raise TransportError(f"request to {uri} failed: {exc}") from None

    def _pool_for(self, uri: str) -> _Pool:
        pool = self._pools.get(uri)
        if pool is None:
            pool = self._pools[uri] = _Pool(trio.Semaphore(self._pool_limit))
        return pool

    def _take_idle(self, pool: _Pool) -> _Connection | None:
        """The most recently used live idle connection, closing the stale and expired ones."""
        now = trio.current_time()
        while pool.idle:
            connection = pool.idle.pop()
            if now - connection.idle_since > self._idle_timeout_s:
                self._pool_stats["idle_closed"] += 1
            elif _has_pending_input(connection.stream):
                self._pool_stats["stale"] += 1
            else:
                self._pool_stats["reused"] += 1
                return connection
            _close_now(connection)
        return None

    async def _open(self, uri: str) -> _Connection:
        """A fresh connection to ``uri``, past the handshake (the caller's deadline applies)."""
        host, port = parse_uri(uri)
        stream = await trio.open_tcp_stream(host, port)
        await authenticate(stream, self._secret, uri, self._handshake_timeout_s)
        self._pool_stats["opened"] += 1
        return _Connection(stream, FrameDecoder(self._max_body_bytes))

    async def _exchange(self, connection: _Connection, frame: bytes, uri: str) -> dict[str, Any]:
        """Write one request and read its one response (nothing else may arrive)."""
        await connection.stream.send_all(frame)
        while True:
            data = await connection.stream.receive_some(RECEIVE_CHUNK_BYTES)
            if not data:
                raise TransportError(f"{uri} closed the connection without answering")
            # A secured peer we reach without a secret challenges first, then answers our
            # REQUEST with a RESPONSE saying a secret is required: skip the challenge.
            frames = [f for f in connection.decoder.feed(data) if f.type != FrameType.HANDSHAKE]
            if not frames:
                continue
            if len(frames) > 1 or frames[0].type != FrameType.RESPONSE:
                raise WireError(f"{uri} sent something other than one RESPONSE")
            if connection.decoder.buffered_bytes:
                raise WireError(f"{uri} sent bytes after its RESPONSE")
            return decode_object(frames[0].body)

    def _give_back(self, uri: str, pool: _Pool, connection: _Connection) -> None:
        """Return a connection that finished its request cleanly to the pool (or close it)."""
        if (
            self._nursery is None  # not running: nothing would ever close an idle connection
            or self._pools.get(uri) is not pool  # forgotten or reaped meanwhile
            or len(pool.idle) >= self._pool_limit
        ):
            _close_now(connection)
            return
        connection.idle_since = trio.current_time()
        pool.idle.append(connection)

    async def _reap_idle(self) -> None:
        """Close connections idle past the timeout; drop pools with nothing in them."""
        while True:
            await trio.sleep(self._idle_timeout_s / 2)
            now = trio.current_time()
            for uri, pool in list(self._pools.items()):
                expired = [c for c in pool.idle if now - c.idle_since > self._idle_timeout_s]
                pool.idle[:] = [c for c in pool.idle if now - c.idle_since <= self._idle_timeout_s]
                for connection in expired:
                    self._pool_stats["idle_closed"] += 1
                    _close_now(connection)
                if not pool.idle and pool.slots.value == self._pool_limit:
                    del self._pools[uri]

    def request_pool_stats(self) -> Mapping[str, int]:
        """Request connections: ``opened``, ``reused``, dropped as ``stale`` (closed by the
        other side while idle), ``idle_closed`` (timeout) and ``broken`` (a request failed)."""
        return dict(self._pool_stats)

    def send_failures(self) -> Mapping[str, SendFailure]:
        """Per-URI failure counters."""
        return self._failures.snapshot()

    def _count_receive_error(self, reason: str) -> None:
        self._receive_errors[reason] = self._receive_errors.get(reason, 0) + 1

    def receive_errors(self) -> Mapping[str, int]:
        """Inbound connections closed for a bad frame, by reason."""
        return dict(self._receive_errors)

    # ------------------------------------------------------------ receiving

    def _connection_handler(self, handler: InboundHandler) -> Any:
        async def serve_connection(stream: trio.SocketStream) -> None:
            try:
                remote_host = str(stream.socket.getpeername()[0])
            except OSError:
                return
            if self._inbound >= self._max_inbound:
                self._count_receive_error("too_many_connections")
                await trio.aclose_forcefully(stream)
                return
            self._inbound += 1
            async with stream:
                try:
                    if self._secret is not None:
                        await accept_peer(stream, self._secret, self._handshake_timeout_s)
                    await self._read_frames(stream, handler, remote_host)
                except HandshakeError as exc:
                    self._count_receive_error(exc.reason)
                    log.warning("p2p: refused connection from %s: %s", remote_host, exc)
                except (FrameError, WireError) as exc:
                    reason = exc.reason if isinstance(exc, FrameError) else "bad_body"
                    self._receive_errors[reason] = self._receive_errors.get(reason, 0) + 1
                    log.warning("p2p: closing connection from %s: %s", remote_host, exc)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass  # the other side went away; it reconnects if it wants to
                finally:
                    self._inbound -= 1

        return serve_connection

    async def _read_frames(
        self, stream: trio.SocketStream, handler: InboundHandler, remote_host: str
    ) -> None:
        decoder = FrameDecoder(self._max_body_bytes)
        while data := await stream.receive_some(RECEIVE_CHUNK_BYTES):
            for frame in decoder.feed(data):
                match frame.type:
                    case FrameType.RAFT:
                        handler.deliver(decode_message(frame.body))
                    case FrameType.REQUEST:
                        response = await handler.handle_request(
                            decode_object(frame.body), remote_host
                        )
                        await stream.send_all(
                            encode_frame(FrameType.RESPONSE, encode_object(response))
                        )
                    case FrameType.RESPONSE:
                        raise WireError("unexpected RESPONSE frame on an inbound connection")
                    case FrameType.HANDSHAKE:
                        raise WireError("unexpected HANDSHAKE frame after the connection started")

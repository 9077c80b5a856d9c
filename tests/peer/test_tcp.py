"""The TCP transport: frames over loopback, bad frames close only their connection, failures count."""

from typing import Any

import pytest
import trio

from refimpl.ids import PeerId, Term
from refimpl.launcher import free_port
from refimpl.peer.frames import FrameDecoder, FrameType, encode_frame
from refimpl.peer.tcp import TcpTransport, parse_uri
from refimpl.peer.transport import TransportError
from refimpl.raft import Message, TimeoutNow


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.messages.append(message)

    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        return {"echo": body, "from": remote_host}


async def start(nursery: trio.Nursery, transport: TcpTransport, handler: Recorder) -> str:
    port: int = await nursery.start(transport.run, handler, "127.0.0.1", 0)
    return f"http://127.0.0.1:{port}/"


async def wait_for(predicate: Any) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.01)


async def test_messages_and_requests_cross_loopback() -> None:
    """A Raft message sent is delivered; a request gets its response with the caller's address."""
    async with trio.open_nursery() as nursery:
        receiver, sender = Recorder(), Recorder()
        uri = await start(nursery, TcpTransport(), receiver)
        client = TcpTransport()
        await start(nursery, client, sender)
        message = TimeoutNow(Term(3), PeerId(1), PeerId(2))
        client.send(uri, message)
        await wait_for(lambda: receiver.messages == [message])
        answer = await client.request(uri, {"kind": "ping"}, timeout_s=5)
        assert answer == {"echo": {"kind": "ping"}, "from": "127.0.0.1"}
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad_magic"),
        (b"RQ\x01\x01\xff\xff\xff\xff\x00\x00\x00\x00", "oversized"),
        (encode_frame(FrameType.RAFT, b'{"type": "Nope", "fields": {}}'), "bad_body"),
    ],
)
async def test_a_bad_frame_closes_that_connection_and_is_counted(
    garbage: bytes, reason: str
) -> None:
    """Malformed or oversized input closes the connection, is counted, and the peer keeps serving."""
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(max_body_bytes=1024)
        uri = await start(nursery, server, receiver)
        async with await trio.open_tcp_stream(*parse_uri(uri)) as stream:
            await stream.send_all(garbage)
            with trio.fail_after(5):
                assert await stream.receive_some(100) == b""  # closed by the server
        assert server.receive_errors() == {reason: 1}
        client = TcpTransport()
        await start(nursery, client, Recorder())
        assert (await client.request(uri, {"kind": "x"}, timeout_s=5))["echo"] == {"kind": "x"}
        nursery.cancel_scope.cancel()


async def test_sends_to_a_dead_peer_are_counted_and_requests_fail_cleanly() -> None:
    """An unreachable peer shows up in message_send_failures; a request raises TransportError."""
    dead = f"http://127.0.0.1:{free_port()}/"
    async with trio.open_nursery() as nursery:
        client = TcpTransport(backoff_min_s=0.01, backoff_max_s=0.05)
        await start(nursery, client, Recorder())
        client.send(dead, TimeoutNow(Term(1), PeerId(1), PeerId(2)))
        await wait_for(lambda: client.send_failures().get(dead) is not None)
        failure = client.send_failures()[dead]
        assert failure.count >= 1 and failure.latest_error.startswith("connect failed")
        with pytest.raises(TransportError):
            await client.request(dead, {"kind": "x"}, timeout_s=2)
        nursery.cancel_scope.cancel()


async def test_a_full_queue_drops_and_counts() -> None:
    """The per-peer queue is bounded: past its limit messages are dropped and counted."""
    async with trio.open_nursery() as nursery:
        client = TcpTransport(queue_limit=2)
        await start(nursery, client, Recorder())
        dead = f"http://127.0.0.1:{free_port()}/"
        for _ in range(5):  # no checkpoint in between: the sender task cannot drain the queue
            client.send(dead, TimeoutNow(Term(1), PeerId(1), PeerId(2)))
        failure = client.send_failures()[dead]
        assert failure.count == 3 and failure.latest_error == "send queue full, message dropped"
        nursery.cancel_scope.cancel()


def test_uris_need_host_and_port() -> None:
    """Peer URIs are Qdrant-style http://host:port/; anything else is refused with a message."""
    assert parse_uri("http://10.0.0.1:6335/") == ("10.0.0.1", 6335)
    for bad in ("10.0.0.1", "http://host/", "http://host:notaport/"):
        with pytest.raises(ValueError, match=r"peer URI|port"):
            parse_uri(bad)


async def test_forgetting_a_peer_stops_its_sender_and_clears_its_counters() -> None:
    """A removed peer's queue and failure counters go away (as Qdrant drops its channel)."""
    async with trio.open_nursery() as nursery:
        client = TcpTransport(backoff_min_s=0.01, backoff_max_s=0.02)
        await start(nursery, client, Recorder())
        dead = f"http://127.0.0.1:{free_port()}/"
        client.send(dead, TimeoutNow(Term(1), PeerId(1), PeerId(2)))
        await wait_for(lambda: dead in client.send_failures())
        client.forget(dead)
        await trio.sleep(0.1)  # a sender still running would record new failures
        assert dead not in client.send_failures()
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------- pooled request connections


async def test_requests_reuse_one_persistent_connection() -> None:
    """Sequential requests to one peer share one connection; the server serves them all on it."""
    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), Recorder())
        client = TcpTransport()
        await start(nursery, client, Recorder())
        for n in range(20):
            assert (await client.request(uri, {"n": n}, timeout_s=5))["echo"] == {"n": n}
        stats = client.request_pool_stats()
        assert stats["opened"] == 1 and stats["reused"] == 19 and stats["broken"] == 0
        nursery.cancel_scope.cancel()


class SlowRecorder(Recorder):
    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        await trio.sleep(0.05)
        return {"echo": body, "from": remote_host}


async def test_concurrent_requests_are_bounded_by_the_pool_and_get_their_own_answers() -> None:
    """More concurrent callers than the pool limit wait for a slot; each gets its own answer."""
    answers: dict[int, Any] = {}

    async def ask(client: TcpTransport, uri: str, n: int) -> None:
        answers[n] = (await client.request(uri, {"n": n}, timeout_s=10))["echo"]

    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), SlowRecorder())
        client = TcpTransport(pool_limit=3)
        await start(nursery, client, Recorder())
        async with trio.open_nursery() as callers:
            for n in range(12):
                callers.start_soon(ask, client, uri, n)
        assert answers == {n: {"n": n} for n in range(12)}
        stats = client.request_pool_stats()
        assert stats["opened"] == 3 and stats["reused"] == 9
        nursery.cancel_scope.cancel()


async def test_a_connection_dropped_mid_request_fails_it_and_the_next_one_reconnects() -> None:
    """The server closes the connection before answering: TransportError, then a fresh one."""
    accepted: list[int] = []

    async def serve(stream: trio.SocketStream) -> None:
        accepted.append(1)
        decoder = FrameDecoder()
        async with stream:
            while data := await stream.receive_some(4096):
                for frame in decoder.feed(data):
                    if len(accepted) == 1:
                        return  # the first connection dies with the request unanswered
                    await stream.send_all(encode_frame(FrameType.RESPONSE, frame.body))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, serve, 0)
        uri = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
        client = TcpTransport()
        await start(nursery, client, Recorder())
        with pytest.raises(TransportError, match="without answering"):
            await client.request(uri, {"n": 1}, timeout_s=5)
        assert await client.request(uri, {"n": 2}, timeout_s=5) == {"n": 2}
        assert await client.request(uri, {"n": 3}, timeout_s=5) == {"n": 3}
        stats = client.request_pool_stats()
        assert (stats["opened"], stats["broken"], stats["reused"]) == (2, 1, 1)
        assert len(accepted) == 2
        nursery.cancel_scope.cancel()


async def test_a_timed_out_request_never_leaves_its_late_answer_for_the_next() -> None:
    """A request that timed out closes its connection: the late RESPONSE is never misread."""

    class Sleepy(Recorder):
        async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
            await trio.sleep(1.0 if body["n"] == 1 else 0)
            return {"echo": body, "from": remote_host}

    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), Sleepy())
        client = TcpTransport()
        await start(nursery, client, Recorder())
        assert (await client.request(uri, {"n": 0}, timeout_s=5))["echo"] == {"n": 0}
        with pytest.raises(TransportError, match="no answer"):
            await client.request(uri, {"n": 1}, timeout_s=0.3)  # on the pooled connection
        assert (await client.request(uri, {"n": 2}, timeout_s=5))["echo"] == {"n": 2}
        await trio.sleep(1.0)  # the late answer to n=1 has been written by now
        assert (await client.request(uri, {"n": 3}, timeout_s=5))["echo"] == {"n": 3}
        stats = client.request_pool_stats()
        assert (stats["broken"], stats["opened"], stats["reused"]) == (1, 2, 2)
        nursery.cancel_scope.cancel()


async def test_a_restarted_peer_gets_a_fresh_connection_not_a_stale_one() -> None:
    """Idle connections to a peer that went away are dropped as stale before any reuse."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}/"
    async with trio.open_nursery() as nursery:
        client = TcpTransport()
        await start(nursery, client, Recorder())
        for _incarnation in range(3):
            async with trio.open_nursery() as server_nursery:
                await server_nursery.start(TcpTransport().run, Recorder(), "127.0.0.1", port)
                for n in range(2):
                    answer = await client.request(uri, {"n": n}, timeout_s=5)
                    assert answer["echo"] == {"n": n}
                server_nursery.cancel_scope.cancel()  # the peer stops: its sockets close
            await trio.sleep(0.05)
        stats = client.request_pool_stats()
        assert (stats["opened"], stats["reused"], stats["stale"], stats["broken"]) == (3, 3, 2, 0)
        nursery.cancel_scope.cancel()


async def test_idle_connections_are_closed_after_the_timeout() -> None:
    """A pooled connection unused past idle_timeout_s is closed; the next request reconnects."""
    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), Recorder())
        client = TcpTransport(idle_timeout_s=0.1)
        await start(nursery, client, Recorder())
        await client.request(uri, {"n": 1}, timeout_s=5)
        await wait_for(lambda: client.request_pool_stats()["idle_closed"] == 1)
        await client.request(uri, {"n": 2}, timeout_s=5)
        assert client.request_pool_stats()["opened"] == 2
        nursery.cancel_scope.cancel()


async def test_forget_closes_the_pool() -> None:
    """Forgetting a peer closes its idle request connections: the server sees them end."""
    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), Recorder())
        client = TcpTransport()
        await start(nursery, client, Recorder())
        await client.request(uri, {"n": 1}, timeout_s=5)
        client.forget(uri)
        await client.request(uri, {"n": 2}, timeout_s=5)
        stats = client.request_pool_stats()
        assert stats["opened"] == 2 and stats["reused"] == 0
        nursery.cancel_scope.cancel()


async def test_inbound_connections_are_bounded() -> None:
    """Past max_inbound a new connection is closed and counted; a freed slot serves again."""
    async with trio.open_nursery() as nursery:
        server = TcpTransport(max_inbound=1)
        uri = await start(nursery, server, Recorder())
        client = TcpTransport()
        await start(nursery, client, Recorder())
        holder = await trio.open_tcp_stream(*parse_uri(uri))
        await trio.sleep(0.05)  # the server has accepted it
        with pytest.raises(TransportError):
            await client.request(uri, {"n": 1}, timeout_s=5)
        assert server.receive_errors() == {"too_many_connections": 1}
        await holder.aclose()
        await wait_for(lambda: server._inbound == 0)
        assert (await client.request(uri, {"n": 2}, timeout_s=5))["echo"] == {"n": 2}
        nursery.cancel_scope.cancel()

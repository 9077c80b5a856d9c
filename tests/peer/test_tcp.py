"""The TCP transport: frames over loopback, bad frames close only their connection, failures count."""

from typing import Any

import pytest
import trio

from refimpl.ids import PeerId, Term
from refimpl.launcher import free_port
from refimpl.peer.frames import FrameType, encode_frame
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

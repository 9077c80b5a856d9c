"""The p2p handshake: only peers that prove the cluster secret may talk on the p2p port.

Issue 10 "Authentication": the spec warns the p2p port can perform writes; Qdrant relies on
network isolation, we require a shared secret proven by HMAC over a fresh challenge.
"""

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.config import Settings, p2p_secret
from refimpl.ids import PeerId, Term
from refimpl.peer.frames import FrameDecoder, FrameType, encode_frame
from refimpl.peer.handshake import (
    HandshakeError,
    accept_peer,
    make_proof,
    proof_is_valid,
    prove_to_peer,
)
from refimpl.peer.tcp import TcpTransport, parse_uri
from refimpl.peer.wire import encode_message
from refimpl.raft import Message, TimeoutNow

SECRET = b"s3cret-of-the-cluster"
MESSAGE = TimeoutNow(Term(3), PeerId(1), PeerId(2))


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.requests: list[dict[str, Any]] = []

    def deliver(self, message: Message) -> None:
        self.messages.append(message)

    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        self.requests.append(body)
        return {"ok": True, "echo": body}


async def start(nursery: trio.Nursery, transport: TcpTransport, handler: Recorder) -> str:
    port: int = await nursery.start(transport.run, handler, "127.0.0.1", 0)
    return f"http://127.0.0.1:{port}/"


async def wait_for(predicate: Any) -> None:
    with trio.fail_after(5):
        while not predicate():
            await trio.sleep(0.01)


async def read_frames(stream: trio.SocketStream) -> list[Any]:
    """Every frame the server sends until it closes the connection."""
    decoder, frames = FrameDecoder(), []
    with trio.fail_after(5):
        while data := await stream.receive_some(4096):
            frames += decoder.feed(data)
    return frames


def test_proofs_depend_on_secret_and_nonce() -> None:
    """A proof verifies only for its own secret and challenge (so a recorded one cannot be replayed)."""
    proof = make_proof(SECRET, b"n1")
    assert proof_is_valid(SECRET, b"n1", proof)
    assert not proof_is_valid(SECRET, b"n2", proof)
    assert not proof_is_valid(b"other", b"n1", proof)
    assert SECRET not in proof and len(proof) == 32


def test_the_p2p_secret_comes_from_cluster_p2p_secret_or_the_api_key() -> None:
    """cluster.p2p.secret wins; service.api_key is used only with enforce_internal_auth."""

    def settings(**sections: Any) -> Settings:
        return Settings.model_validate(sections)

    assert p2p_secret(settings()) is None
    assert p2p_secret(settings(cluster={"p2p": {"secret": "p2p-Zq81"}})) == b"p2p-Zq81"
    assert p2p_secret(settings(cluster={"p2p": {"secret": ""}})) is None
    assert p2p_secret(settings(service={"api_key": "rest-Kx42"})) is None
    keyed = {"api_key": "rest-Kx42", "enforce_internal_auth": True}
    assert p2p_secret(settings(service=keyed)) == b"rest-Kx42"
    both = settings(service=keyed, cluster={"p2p": {"secret": "p2p-Zq81"}})
    assert p2p_secret(both) == b"p2p-Zq81"
    assert "p2p-Zq81" not in repr(both) and "rest-Kx42" not in str(both.service)


async def test_peers_with_the_same_secret_exchange_messages_and_requests() -> None:
    """With the right secret, Raft messages and requests flow as without one."""
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(secret=SECRET)
        uri = await start(nursery, server, receiver)
        client = TcpTransport(secret=SECRET)
        await start(nursery, client, Recorder())
        client.send(uri, MESSAGE)
        await wait_for(lambda: receiver.messages == [MESSAGE])
        assert (await client.request(uri, {"kind": "ping"}, timeout_s=5))["echo"] == {
            "kind": "ping"
        }
        assert server.receive_errors() == {} and client.send_failures() == {}
        nursery.cancel_scope.cancel()


async def test_a_wrong_secret_is_refused_and_counted_and_not_retried_as_a_join() -> None:
    """A peer with another secret gets a clear refusal; nothing it sent reaches the handler."""
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(secret=SECRET)
        uri = await start(nursery, server, receiver)
        client = TcpTransport(secret=b"wrong", backoff_min_s=0.01, backoff_max_s=0.05)
        await start(nursery, client, Recorder())
        with pytest.raises(HandshakeError) as caught:
            await client.request(uri, {"kind": "join"}, timeout_s=5)
        assert not caught.value.retryable
        assert "refused our p2p handshake: wrong cluster secret" in str(caught.value)
        client.send(uri, MESSAGE)
        await wait_for(lambda: server.receive_errors().get("handshake_bad_secret", 0) >= 2)
        failure = client.send_failures()[uri]
        assert "wrong cluster secret" in failure.latest_error
        assert receiver.messages == [] and receiver.requests == []
        nursery.cancel_scope.cancel()


async def test_a_peer_without_the_secret_is_refused_with_a_clear_answer() -> None:
    """A joiner with no secret gets a RESPONSE saying a secret is required, not a silent close."""
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(secret=SECRET)
        uri = await start(nursery, server, receiver)
        client = TcpTransport()
        await start(nursery, client, Recorder())
        answer = await client.request(uri, {"kind": "join"}, timeout_s=5)
        assert answer["ok"] is False and answer["retryable"] is False
        assert "requires the cluster's p2p secret" in answer["error"]
        client.send(uri, MESSAGE)
        await wait_for(lambda: server.receive_errors().get("handshake_missing", 0) >= 2)
        assert receiver.messages == [] and receiver.requests == []
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (encode_frame(FrameType.RAFT, encode_message(MESSAGE)), "handshake_missing"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "handshake_bad_frame"),
        (
            encode_frame(FrameType.HANDSHAKE, b'{"step": "hello", "proof": "zz"}'),
            "handshake_bad_frame",
        ),
        (
            encode_frame(FrameType.HANDSHAKE, b'{"step": "hello", "proof": "00"}'),
            "handshake_bad_secret",
        ),
        (b"", "handshake_missing"),
    ],
)
async def test_a_raw_client_without_the_secret_is_closed_and_counted(
    sent: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a client without the secret sends first, it is disconnected and counted."""
    caplog.set_level(logging.DEBUG)
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(secret=SECRET)
        uri = await start(nursery, server, receiver)
        async with await trio.open_tcp_stream(*parse_uri(uri)) as stream:
            if sent:
                await stream.send_all(sent)
            else:
                await stream.send_eof()
            frames = await read_frames(stream)  # returns once the server closed
        assert frames[0].type == FrameType.HANDSHAKE
        assert json.loads(frames[0].body)["step"] == "challenge"
        await wait_for(lambda: server.receive_errors() == {reason: 1})
        assert receiver.messages == []
        assert SECRET.decode() not in caplog.text
        nursery.cancel_scope.cancel()


async def test_a_silent_client_is_closed_after_the_handshake_timeout() -> None:
    """A connection that never answers the challenge does not stay open."""
    async with trio.open_nursery() as nursery:
        server = TcpTransport(secret=SECRET, handshake_timeout_s=0.2)
        uri = await start(nursery, server, Recorder())
        async with await trio.open_tcp_stream(*parse_uri(uri)) as stream:
            frames = await read_frames(stream)
        assert [f.type for f in frames] == [FrameType.HANDSHAKE]
        await wait_for(lambda: server.receive_errors() == {"handshake_timeout": 1})
        nursery.cancel_scope.cancel()


async def test_frames_pipelined_before_the_result_are_refused() -> None:
    """A client that sends Raft frames before being accepted is refused even with a good proof."""
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        server = TcpTransport(secret=SECRET)
        uri = await start(nursery, server, receiver)
        async with await trio.open_tcp_stream(*parse_uri(uri)) as stream:
            decoder = FrameDecoder()
            with trio.fail_after(5):
                (challenge,) = decoder.feed(await stream.receive_some(4096))
            nonce = bytes.fromhex(json.loads(challenge.body)["nonce"])
            hello = {"step": "hello", "proof": make_proof(SECRET, nonce).hex()}
            raft = encode_frame(FrameType.RAFT, encode_message(MESSAGE))
            await stream.send_all(
                encode_frame(FrameType.HANDSHAKE, json.dumps(hello).encode()) + raft
            )
            await read_frames(stream)
        await wait_for(lambda: server.receive_errors() == {"handshake_pipelined": 1})
        assert receiver.messages == []
        nursery.cancel_scope.cancel()


async def test_a_peer_with_a_secret_times_out_clearly_against_one_without() -> None:
    """Against a peer with no secret (it sends no challenge) the error says what to check."""
    async with trio.open_nursery() as nursery:
        uri = await start(nursery, TcpTransport(), Recorder())
        client = TcpTransport(secret=SECRET, handshake_timeout_s=0.2)
        await start(nursery, client, Recorder())
        with pytest.raises(HandshakeError) as caught:
            await client.request(uri, {"kind": "join"}, timeout_s=5)
        assert caught.value.retryable
        assert "sent no p2p handshake challenge" in str(caught.value)
        nursery.cancel_scope.cancel()


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_handshake_bodies = st.fixed_dictionaries(
    {"step": st.sampled_from(["hello", "challenge", "result", "x"])},
    optional={"proof": _json_values | st.text("0123456789abcdef", max_size=80),
              "nonce": _json_values | st.text("0123456789abcdef", max_size=80),
              "ok": _json_values},
)  # fmt: skip
_first_bytes = st.one_of(
    st.binary(max_size=100),
    _json_values.map(lambda v: encode_frame(FrameType.HANDSHAKE, json.dumps(v).encode())),
    _handshake_bodies.map(lambda b: encode_frame(FrameType.HANDSHAKE, json.dumps(b).encode())),
    st.binary(max_size=60).map(lambda b: encode_frame(FrameType.HANDSHAKE, b)),
)


async def _exchange(side: Callable[[Any], Awaitable[None]], sent: bytes) -> BaseException | None:
    """Run one side of the handshake against a peer that answers every read with ``sent``."""
    ours, theirs = trio.testing.memory_stream_pair()
    outcome: list[BaseException] = []

    async def run_side() -> None:
        try:
            await side(ours)
        except Exception as exc:  # what the side raised is the result under test
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_side)
        await theirs.send_all(sent)
        await theirs.send_eof()
    return outcome[0] if outcome else None


@settings(max_examples=150)
@given(_first_bytes)
def test_any_first_bytes_fail_the_acceptor_only_with_a_handshake_error(sent: bytes) -> None:
    """Whatever a stranger sends, accepting raises HandshakeError (counted), never anything else."""

    async def accept(stream: Any) -> None:
        await accept_peer(stream, SECRET, timeout_s=1)

    raised = trio.run(_exchange, accept, sent)
    assert isinstance(raised, HandshakeError), raised


@settings(max_examples=150)
@given(_first_bytes)
def test_any_answer_fails_the_connector_only_with_a_handshake_error(sent: bytes) -> None:
    """Whatever a fake peer answers, connecting raises HandshakeError, never anything else."""

    async def prove(stream: Any) -> None:
        await prove_to_peer(stream, SECRET, "fake peer", timeout_s=1)

    raised = trio.run(_exchange, prove, sent)
    assert isinstance(raised, HandshakeError), raised


async def test_the_handshake_happens_once_per_pooled_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many requests over a secured pooled connection: one challenge accepted, not one each."""
    from refimpl.peer import tcp

    accepted: list[int] = []
    real_accept = accept_peer

    async def counting_accept(stream: trio.abc.Stream, secret: bytes, timeout_s: float) -> None:
        await real_accept(stream, secret, timeout_s)
        accepted.append(1)

    monkeypatch.setattr(tcp, "accept_peer", counting_accept)
    async with trio.open_nursery() as nursery:
        receiver = Recorder()
        uri = await start(nursery, TcpTransport(secret=SECRET), receiver)
        client = TcpTransport(secret=SECRET)
        await start(nursery, client, Recorder())
        for n in range(10):
            assert (await client.request(uri, {"n": n}, timeout_s=5))["echo"] == {"n": n}
        assert len(accepted) == 1 and len(receiver.requests) == 10
        assert client.request_pool_stats()["opened"] == 1
        nursery.cancel_scope.cancel()

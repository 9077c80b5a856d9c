"""Hypothesis fuzzing of the p2p port of a live peer: a malformed frame never crashes a peer.

Spec "Distributed deployment" puts peer-to-peer traffic on its own port (6335); whatever arrives
there, the peer must close the bad connection, count it by reason (``p2p_receive_errors`` in
``GET /cluster``) and keep serving — its REST API answers and the consensus keeps its leader.
The pure decoder is fuzzed in ``tests/peer/test_frames.py``; here the bytes go over a socket to
a real process, through the transport, the wire decoder and the request handlers.

What is sent: random bytes; valid frames with one header field broken (magic, version, type,
length, CRC); RAFT frames whose body is JSON that is not a Raft message; REQUEST frames with
malformed bodies of every request kind. Requests that are well formed are *not* sent (a valid
``join`` or ``propose`` is a real write: the port trusts its network, see spec "Security").
"""

import base64
import binascii
import json
import socket
import struct
import zlib
from typing import Any

import httpx
import pytest
from hypothesis import Phase, example, given, note, settings
from hypothesis import strategies as st

from refimpl.launcher import LocalCluster
from refimpl.peer.frames import (
    FRAME_MAGIC,
    FRAME_VERSION,
    MAX_BODY_BYTES,
    FrameDecoder,
    FrameError,
    FrameType,
)
from refimpl.peer.wire import WireError, decode_message, decode_object

_HEADER = struct.Struct(">2sBBII")
RECEIVE_TIMEOUT_S = 10.0

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


def frame(
    body: bytes,
    frame_type: int = FrameType.RAFT,
    *,
    magic: bytes = FRAME_MAGIC,
    version: int = FRAME_VERSION,
    length: int | None = None,
    crc: int | None = None,
) -> bytes:
    """A frame with any header field overridable (the defaults make a valid frame)."""
    length = len(body) if length is None else length
    crc = zlib.crc32(body) if crc is None else crc
    return _HEADER.pack(magic, version, frame_type, length, crc) + body


@st.composite
def broken_headers(draw: st.DrawFn) -> bytes:
    """A valid frame with exactly one header field made wrong."""
    body = draw(st.binary(max_size=64))
    field = draw(st.sampled_from(["magic", "version", "type", "length", "crc"]))
    if field == "magic":
        magic = draw(st.binary(min_size=2, max_size=2).filter(lambda m: m != FRAME_MAGIC))
        return frame(body, magic=magic)
    if field == "version":
        return frame(body, version=draw(st.integers(0, 255).filter(lambda v: v != FRAME_VERSION)))
    if field == "type":
        known = {int(t) for t in FrameType}
        return frame(body, frame_type=draw(st.integers(0, 255).filter(lambda t: t not in known)))
    if field == "length":
        return frame(body, length=draw(st.integers(MAX_BODY_BYTES + 1, 2**32 - 1)))
    return frame(body, crc=draw(st.integers(0, 2**32 - 1).filter(lambda c: c != zlib.crc32(body))))


def _bad_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return True
    return False


@st.composite
def malformed_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A REQUEST body of some request kind with wrong or missing fields (never a real write)."""
    kind = draw(
        st.sampled_from(["join", "propose", "conf_change", "removed", "shard_update", "shard_read"])
        | json_values
    )
    body: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=4))
    body["kind"] = kind
    if kind == "join" and draw(st.booleans()):
        # A valid peer id with a URI that is not text (once a crash: it must be refused).
        body["peer_id"] = draw(st.integers(1, 2**53 - 1))
        body["uri"] = draw(json_values.filter(lambda v: bool(v) and not isinstance(v, str)))
    elif kind == "join":
        # A peer id that is not an integer in [1, 2**53).
        body["peer_id"] = draw(
            json_values.filter(lambda v: not isinstance(v, int) or not 1 <= v < 2**53)
        )
    elif kind in ("propose", "conf_change"):
        body["data"] = draw(json_values.filter(lambda v: _bad_base64(str(v))))
    elif kind == "removed":
        body["peer_id"] = draw(json_values.filter(lambda v: not isinstance(v, int)))
    return body


payloads = st.one_of(
    st.binary(min_size=1, max_size=64),
    broken_headers(),
    json_values.map(lambda v: frame(json.dumps(v).encode())),
    st.binary(max_size=64).map(lambda b: frame(b, FrameType.RESPONSE)),
    malformed_requests().map(lambda b: frame(json.dumps(b).encode(), FrameType.REQUEST)),
)


def expected_reason(raw: bytes) -> str | None:
    """The reason the peer must count for ``raw`` (None: nothing wrong it can see)."""
    try:
        frames = FrameDecoder().feed(raw)
    except FrameError as exc:
        return exc.reason
    for f in frames:
        try:
            match f.type:
                case FrameType.RAFT:
                    decode_message(f.body)
                case FrameType.REQUEST:
                    decode_object(f.body)
                case FrameType.RESPONSE:
                    return "bad_body"
        except WireError:
            return "bad_body"
    return None


def response_body(raw: bytes) -> bytes:
    """The body of the single frame in ``raw``."""
    return FrameDecoder().feed(raw)[0].body


def send_and_drain(port: int, raw: bytes) -> bytes:
    """Send ``raw``, half-close, and read whatever the peer answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=RECEIVE_TIMEOUT_S) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def receive_errors(http: httpx.Client) -> dict[str, int]:
    """The peer's ``p2p_receive_errors`` (one shared client: a new one per call is slow)."""
    response = http.get("/cluster")
    assert response.status_code == 200, "the peer stopped answering GET /cluster"
    errors: dict[str, int] = response.json()["result"]["p2p_receive_errors"]
    return errors


pytestmark = pytest.mark.cluster


def test_malformed_frames_never_crash_a_live_peer(live_cluster: LocalCluster) -> None:
    """Spec "Distributed deployment" (p2p port): garbage is counted and refused, the leader stays."""
    cluster = live_cluster
    target = cluster.wait_for_leader(timeout_s=30)
    before = cluster.cluster_info(target)
    assert before is not None
    port = cluster.peers[target].p2p_port
    sent: dict[str, int] = {}
    http = httpx.Client(base_url=cluster.peers[target].rest_url, timeout=10)

    # No shrinking: every example costs real round trips, and the payload is printed anyway.
    @settings(max_examples=100, deadline=None, phases=[Phase.explicit, Phase.generate])
    @given(payloads)
    @example(b"GET / HTTP/1.1\r\n")  # one of each header fault, whatever the generator draws
    @example(frame(b"{}", version=FRAME_VERSION + 1))
    @example(frame(b"{}", frame_type=0))
    @example(frame(b"", length=MAX_BODY_BYTES + 1))
    @example(frame(b"{}", crc=0))
    @example(frame(b"[1, 2]"))
    @example(frame(b'{"kind": "join", "peer_id": 5, "uri": {}}', FrameType.REQUEST))
    @example(frame(b'{"kind": "join", "peer_id": 5, "uri": 17}', FrameType.REQUEST))
    def fuzz(raw: bytes) -> None:
        note(f"payload: {raw!r}")
        reason = expected_reason(raw)
        counted = receive_errors(http)
        answer = send_and_drain(port, raw)
        after = receive_errors(http)
        if reason is None:
            assert after == counted
        else:
            assert after == {**counted, reason: counted.get(reason, 0) + 1}
            sent[reason] = sent.get(reason, 0) + 1
        if answer:  # only a well-framed REQUEST is answered, with a JSON object
            response = FrameDecoder().feed(answer)
            assert [f.type for f in response] == [FrameType.RESPONSE]
            verdict = decode_object(response[0].body).get("ok")
            # Only a removal notice naming another peer is "ok" (it is simply ignored).
            assert verdict is False or json.loads(response_body(raw))["kind"] == "removed"

    with http:
        fuzz()
    assert set(sent) >= {"bad_magic", "bad_version", "bad_type", "oversized", "bad_crc", "bad_body"}
    after = cluster.cluster_info(target)
    assert after is not None and cluster.peers[target].running
    assert after["raft_info"]["role"] == "Leader"
    assert after["raft_info"]["term"] == before["raft_info"]["term"]
    assert cluster.leader() == target
    with httpx.Client(base_url=cluster.peers[target].rest_url, timeout=10) as http:
        put = http.put("/cluster/metadata/keys/after-fuzz", json={"ok": True})
        assert put.status_code == 200, put.text

"""The p2p handshake: a peer proves it knows the cluster's shared secret before anything else.

Why: the p2p port carries Raft messages, joins and shard operations, so whoever can talk to it
can write (the spec warns of this). Qdrant relies on network isolation for this port; we close
it with a shared secret, ``cluster.p2p.secret`` (or ``service.api_key`` when
``service.enforce_internal_auth`` is true, Qdrant's switch; see :func:`refimpl.config.p2p_secret`).
With no secret configured there is no handshake at all and the port is open, as in Qdrant.

Rules (challenge-response, every step one HANDSHAKE frame with a JSON body):

1. The accepting peer sends ``{"step": "challenge", "nonce": <32 random bytes, hex>}`` as soon
   as the connection opens.
2. The connecting peer answers ``{"step": "hello", "proof": HMAC-SHA256(secret, label+nonce)}``
   and sends nothing else until step 3. The secret itself never crosses the network, and a
   recorded proof is useless later: the next connection gets a fresh nonce.
3. The accepting peer compares the proof with its own in constant time
   (:func:`hmac.compare_digest`) and answers ``{"step": "result", "ok": true}`` — or
   ``{"ok": false, "error": …}`` and closes. Only then do RAFT / REQUEST frames flow.

* An accepting peer closes, and counts by reason in ``GET /cluster``'s ``p2p_receive_errors``,
  every connection that does not complete the handshake: a wrong proof
  (``handshake_bad_secret``), another frame first (``handshake_missing``; a REQUEST first is
  answered with a RESPONSE saying a secret is required, so a joiner without one fails with a
  clear message), bytes that are not frames (``handshake_bad_frame``), frames sent before the
  result (``handshake_pipelined``), or nothing within ``timeout_s`` (``handshake_timeout``).
* A connecting peer raises :class:`HandshakeError` (a :class:`TransportError`) when the other
  side refuses it (not retryable: the secrets differ) or sends no challenge in time
  (retryable: it may be busy, or have no secret configured).
* Neither the secret nor a proof is ever logged.

Theory of operation: both sides are plain functions over a trio stream and a
:class:`~refimpl.peer.frames.FrameDecoder`; :mod:`refimpl.peer.tcp` calls :func:`authenticate`
where it connects and :func:`accept_peer` where it accepts. Mutual authentication (the
connector checking the acceptor) is not done: an impostor would first have to take over a
member's address.
"""

import contextlib
import hashlib
import hmac
import secrets
from typing import Any

import trio

from refimpl.peer.frames import Frame, FrameDecoder, FrameError, FrameType, encode_frame
from refimpl.peer.transport import TransportError
from refimpl.peer.wire import WireError, decode_object, encode_object

__all__ = [
    "HANDSHAKE_TIMEOUT_S",
    "HandshakeError",
    "accept_peer",
    "authenticate",
    "make_proof",
    "proof_is_valid",
    "prove_to_peer",
]

HANDSHAKE_TIMEOUT_S = 5.0
NONCE_BYTES = 32
_LABEL = b"refimpl p2p handshake v1\x00"
"""Domain separation: a proof made for this handshake means nothing anywhere else."""
_RECEIVE_CHUNK_BYTES = 4096
_HANDSHAKE_BODY_BYTES_MAX = 4096

SECRET_REQUIRED = (
    "this peer requires the cluster's p2p secret: set cluster.p2p.secret "
    "(QDRANT__CLUSTER__P2P__SECRET) to the value the other peers use"
)
WRONG_SECRET = "wrong cluster secret (cluster.p2p.secret must be the same on every peer)"


class HandshakeError(TransportError):
    """The handshake failed; ``reason`` is the counter name, ``retryable`` if trying again helps."""

    def __init__(self, reason: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


def make_proof(secret: bytes, nonce: bytes) -> bytes:
    """The proof of knowing ``secret`` for the challenge ``nonce``: HMAC-SHA256."""
    return hmac.new(secret, _LABEL + nonce, hashlib.sha256).digest()


def proof_is_valid(secret: bytes, nonce: bytes, proof: bytes) -> bool:
    """True if ``proof`` answers ``nonce`` under ``secret`` (constant-time comparison)."""
    return hmac.compare_digest(make_proof(secret, nonce), proof)


def _frame(body: dict[str, Any]) -> bytes:
    return encode_frame(FrameType.HANDSHAKE, encode_object(body))


async def _receive_frames(stream: trio.abc.Stream, decoder: FrameDecoder) -> list[Frame]:
    """Read until at least one whole frame arrived; FrameError on garbage, EOFError on close."""
    while True:
        data = await stream.receive_some(_RECEIVE_CHUNK_BYTES)
        if not data:
            raise EOFError
        frames = decoder.feed(bytes(data))
        if frames:
            return frames


def _handshake_body(frame: Frame, step: str) -> dict[str, Any]:
    """The body of a HANDSHAKE frame of the given ``step``; WireError otherwise."""
    if frame.type != FrameType.HANDSHAKE:
        raise WireError(f"expected a HANDSHAKE frame, got {frame.type.name}")
    body = decode_object(frame.body)
    if body.get("step") != step:
        raise WireError(f"expected handshake step {step!r}, got {body.get('step')!r}")
    return body


def _hex_field(body: dict[str, Any], name: str) -> bytes:
    value = body.get(name)
    if not isinstance(value, str) or len(value) > 256:
        raise WireError(f"handshake field {name!r} must be a short hex string")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise WireError(f"handshake field {name!r} is not hex") from None


# ------------------------------------------------------------ accepting side


async def _send_quietly(stream: trio.abc.Stream, data: bytes) -> None:
    """Best effort: the connection is being refused, the other side may already be gone."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        await stream.send_all(data)


async def _refuse_unauthenticated(stream: trio.abc.Stream, first: Frame) -> HandshakeError:
    """The error for a connection whose first frame is not a hello (answering a REQUEST)."""
    if first.type == FrameType.REQUEST:
        answer = {"ok": False, "error": SECRET_REQUIRED, "retryable": False}
        await _send_quietly(stream, encode_frame(FrameType.RESPONSE, encode_object(answer)))
    return HandshakeError(
        "handshake_missing", f"sent a {first.type.name} frame without the handshake"
    )


async def accept_peer(
    stream: trio.abc.Stream, secret: bytes, timeout_s: float = HANDSHAKE_TIMEOUT_S
) -> None:
    """Challenge the peer that opened ``stream``; return once it proved ``secret``.

    Raises :class:`HandshakeError` (its ``reason`` is what to count) when it did not; the
    caller closes the connection.
    """
    # The nonce must be unpredictable, so it comes from the OS, not from a seeded generator.
    nonce = secrets.token_bytes(NONCE_BYTES)
    decoder = FrameDecoder(_HANDSHAKE_BODY_BYTES_MAX)
    with trio.move_on_after(timeout_s):
        await stream.send_all(_frame({"step": "challenge", "nonce": nonce.hex()}))
        try:
            frames = await _receive_frames(stream, decoder)
            if frames[0].type != FrameType.HANDSHAKE:
                raise await _refuse_unauthenticated(stream, frames[0])
            proof = _hex_field(_handshake_body(frames[0], "hello"), "proof")
        except EOFError:
            raise HandshakeError("handshake_missing", "closed before the handshake") from None
        except (FrameError, WireError) as exc:
            raise HandshakeError("handshake_bad_frame", f"bad handshake: {exc}") from None
        if not proof_is_valid(secret, nonce, proof):
            await _send_quietly(
                stream, _frame({"step": "result", "ok": False, "error": WRONG_SECRET})
            )
            raise HandshakeError("handshake_bad_secret", "presented a wrong cluster secret")
        if len(frames) > 1 or decoder.buffered_bytes:
            raise HandshakeError("handshake_pipelined", "sent frames before the handshake result")
        await stream.send_all(_frame({"step": "result", "ok": True}))
        return
    raise HandshakeError("handshake_timeout", f"no handshake within {timeout_s:g} s")


# ---------------------------------------------------------- connecting side


async def prove_to_peer(
    stream: trio.abc.Stream, secret: bytes, where: str, timeout_s: float = HANDSHAKE_TIMEOUT_S
) -> None:
    """Answer the challenge of the peer at ``where``; return once it accepted us.

    Raises :class:`HandshakeError`: not retryable if the peer refused our proof or does not
    speak the handshake, retryable if it said nothing within ``timeout_s``.
    """
    decoder = FrameDecoder(_HANDSHAKE_BODY_BYTES_MAX)
    with trio.move_on_after(timeout_s):
        try:
            challenge = _handshake_body((await _receive_frames(stream, decoder))[0], "challenge")
            nonce = _hex_field(challenge, "nonce")
            proof = make_proof(secret, nonce)
            await stream.send_all(_frame({"step": "hello", "proof": proof.hex()}))
            result = _handshake_body((await _receive_frames(stream, decoder))[0], "result")
        except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            raise HandshakeError(
                "handshake_refused",
                f"{where} closed the connection during the p2p handshake",
                retryable=True,  # it may be restarting; a refusal proper comes as a result
            ) from None
        except (FrameError, WireError) as exc:
            raise HandshakeError("handshake_bad_frame", f"{where}: bad handshake: {exc}") from None
        if result.get("ok") is not True:
            raise HandshakeError(
                "handshake_refused", f"{where} refused our p2p handshake: {result.get('error')}"
            )
        return
    raise HandshakeError(
        "handshake_timeout",
        f"{where} sent no p2p handshake challenge within {timeout_s:g} s "
        "(does it have the same cluster.p2p.secret set?)",
        retryable=True,
    )


async def authenticate(
    stream: trio.SocketStream,
    secret: bytes | None,
    where: str,
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> trio.SocketStream:
    """Pass the handshake of the peer on a fresh outbound ``stream`` (when ``secret`` is set).

    Returns the stream, ready for frames; on failure closes it and raises
    :class:`HandshakeError`.
    """
    if secret is None:
        return stream
    try:
        await prove_to_peer(stream, secret, where, timeout_s)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return stream

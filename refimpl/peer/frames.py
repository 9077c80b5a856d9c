"""The p2p frame format: how peers cut a TCP byte stream into messages (pure, no I/O).

Rules:

* A frame is a 12-byte header followed by a body::

      offset  size  field
      0       2     magic    b"RQ" (refimpl Qdrant), catches a client talking the wrong protocol
      2       1     version  FRAME_VERSION (1); a peer rejects versions it does not speak
      3       1     type     FrameType (RAFT, REQUEST, RESPONSE, HANDSHAKE)
      4       4     length   body length in bytes, big-endian, at most max_body_bytes
      8       4     crc      CRC-32 of the body, big-endian

* Bodies are UTF-8 JSON (see :mod:`refimpl.peer.wire` for what goes inside). JSON costs a few
  bytes more than a binary encoding, but a learner can read a captured frame, and Raft traffic
  between a handful of peers is small.
* Anything wrong — bad magic, unknown version or type, a length above the limit, a CRC
  mismatch — raises :class:`FrameError` and poisons the decoder: the stream is out of sync and
  the only safe thing is to close the connection. The decoder never raises anything else,
  whatever bytes it is fed (a hypothesis test checks this).

Theory of operation: :func:`encode_frame` builds the bytes; :class:`FrameDecoder` is fed
whatever chunks ``receive_some`` returns and hands back every complete frame, keeping the rest
buffered — the same feed-bytes / pull-events shape as h11.
"""

import enum
import struct
import zlib
from dataclasses import dataclass

__all__ = [
    "FRAME_HEADER_BYTES",
    "FRAME_MAGIC",
    "FRAME_VERSION",
    "MAX_BODY_BYTES",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameType",
    "encode_frame",
]

FRAME_MAGIC = b"RQ"
FRAME_VERSION = 1
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Default limit on one body; a Raft snapshot of the cluster state is far smaller."""

_HEADER = struct.Struct(">2sBBII")
FRAME_HEADER_BYTES = _HEADER.size
assert FRAME_HEADER_BYTES == 12


class FrameType(enum.IntEnum):
    """What the body holds."""

    RAFT = 1
    """One Raft message, one way (the reply, if any, comes back on another connection)."""
    REQUEST = 2
    """A request (join, forwarded proposal) answered by one RESPONSE on the same connection."""
    RESPONSE = 3
    HANDSHAKE = 4
    """Proof of the cluster secret, first thing on a connection (:mod:`refimpl.peer.handshake`)."""


class FrameError(Exception):
    """The byte stream is not a valid frame sequence; ``reason`` is a short machine name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame."""

    type: FrameType
    body: bytes


def encode_frame(frame_type: FrameType, body: bytes, max_body_bytes: int = MAX_BODY_BYTES) -> bytes:
    """Return the header plus ``body``; raises FrameError if the body is over the limit."""
    if len(body) > max_body_bytes:
        raise FrameError("oversized", f"body of {len(body)} bytes > limit {max_body_bytes}")
    header = _HEADER.pack(FRAME_MAGIC, FRAME_VERSION, int(frame_type), len(body), zlib.crc32(body))
    return header + body


class FrameDecoder:
    """Incremental decoder: ``feed`` chunks, get complete frames back."""

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        assert max_body_bytes > 0
        self._max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._error: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every frame now complete (possibly none)."""
        if self._error is not None:
            raise self._error
        self._buffer += data
        frames: list[Frame] = []
        try:
            while (frame := self._next_frame()) is not None:
                frames.append(frame)
        except FrameError as exc:
            self._error = exc
            raise
        return frames

    def _next_frame(self) -> Frame | None:
        """Take one complete frame off the front of ``self._buffer``, or return None.

        Check, in this order, raising ``FrameError(reason, detail)``: the magic (as soon as its
        bytes arrive, even before a whole header: ``"bad_magic"``), then with a full header the
        version (``"bad_version"``), the type (``"bad_type"``) and the length against
        ``self._max_body_bytes`` (``"oversized"``). Return None while the body is incomplete;
        once it is complete, verify its CRC-32 (``"bad_crc"``), remove header and body from the
        buffer and return the Frame.
        """
        # [exercise: frame_decode] begin
        if len(self._buffer) < FRAME_HEADER_BYTES:
            # A bad magic is reported as soon as its bytes arrive, not after a full header.
            if not FRAME_MAGIC.startswith(bytes(self._buffer[:2])):
                raise FrameError("bad_magic", f"stream starts with {bytes(self._buffer[:2])!r}")
            return None
        magic, version, type_code, length, crc = _HEADER.unpack_from(self._buffer)
        if magic != FRAME_MAGIC:
            raise FrameError("bad_magic", f"expected {FRAME_MAGIC!r}, got {magic!r}")
        if version != FRAME_VERSION:
            raise FrameError("bad_version", f"version {version}, this peer speaks {FRAME_VERSION}")
        if type_code not in FrameType._value2member_map_:
            raise FrameError("bad_type", f"unknown frame type {type_code}")
        if length > self._max_body_bytes:
            raise FrameError("oversized", f"body of {length} bytes > limit {self._max_body_bytes}")
        end = FRAME_HEADER_BYTES + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[FRAME_HEADER_BYTES:end])
        if zlib.crc32(body) != crc:
            raise FrameError("bad_crc", f"CRC mismatch on a {length}-byte body")
        del self._buffer[:end]
        return Frame(FrameType(type_code), body)
        # [exercise: frame_decode] end

"""Checks for exercise 12 (extra): cutting the peer-to-peer byte stream into frames.

The rule (refimpl/peer/frames.py ``FrameDecoder._next_frame``): a frame is a 12-byte header
(magic ``b"RQ"``, version, type, body length, CRC-32 of the body) and a body. Take one complete
frame off the front of the buffer or return None while it is incomplete; reject, in order, a
bad magic (as soon as its bytes arrive), a bad version, an unknown type, a body over the limit,
and a CRC mismatch, each with ``FrameError(reason, …)``. The method belongs to a class, so this
exercise also shows that a method is plugged in like a function. Graded by round trips through
random chunkings, by each error, and by random garbage.
"""

import itertools
import struct
import zlib

from hypothesis import given, note
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings
from refimpl.peer import frames
from refimpl.peer.frames import Frame, FrameError, FrameType, encode_frame

EXERCISE = Exercise(
    marker="frame_decode",
    title="Frame decoding for the peer-to-peer stream (extra)",
    book="book/bringing_up.md (peers talk over TCP)",
)

messages = st.lists(st.tuples(st.sampled_from(list(FrameType)), st.binary(max_size=40)), max_size=5)


def _feed_in_chunks(
    data: bytes, cuts: list[int], limit: int = frames.MAX_BODY_BYTES
) -> list[Frame]:
    decoder = frames.FrameDecoder(limit)
    out: list[Frame] = []
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(data[start:end]))
    if decoder.buffered_bytes != 0:
        raise CheckFailedError(
            f"{decoder.buffered_bytes} bytes left in the buffer after whole frames"
        )
    return out


@EXERCISE.check(points=4)
@grading_settings(max_examples=150)
@given(messages, st.lists(st.integers(0, 400), max_size=8))
def frames_survive_any_chunking(sent: list[tuple[FrameType, bytes]], cuts: list[int]) -> None:
    """Encoded frames, fed in random chunks, come back whole and in order."""
    data = b"".join(encode_frame(t, body) for t, body in sent)
    note(f"stream of {len(data)} bytes cut at {sorted(c % (len(data) + 1) for c in cuts)}")
    got = _feed_in_chunks(data, cuts)
    want = [Frame(t, body) for t, body in sent]
    if got != want:
        raise CheckFailedError(f"decoded {got}, sent {want}")


def _header(
    magic: bytes = b"RQ",
    version: int = 1,
    kind: int = 1,
    body: bytes = b"{}",
    crc: int | None = None,
) -> bytes:
    crc = zlib.crc32(body) if crc is None else crc
    return struct.pack(">2sBBII", magic, version, kind, len(body), crc) + body


def _expect(reason: str, data: bytes, limit: int = frames.MAX_BODY_BYTES) -> None:
    decoder = frames.FrameDecoder(limit)
    try:
        decoder.feed(data)
    except FrameError as exc:
        if exc.reason != reason:
            raise CheckFailedError(
                f"feeding {data!r} raised FrameError({exc.reason!r}), expected {reason!r}"
            ) from exc
    else:
        raise CheckFailedError(f"feeding {data!r} raised nothing, expected FrameError({reason!r})")
    try:
        decoder.feed(encode_frame(FrameType.RAFT, b"{}"))
    except FrameError:
        return
    raise CheckFailedError(
        f"after FrameError({reason!r}) the decoder accepted more bytes (it must stay poisoned)"
    )


@EXERCISE.check(points=3)
def each_error_in_its_order() -> None:
    """Bad magic (even before a full header), version, type, oversized body, CRC: each named."""
    _expect("bad_magic", b"X")
    _expect("bad_magic", b"RX")
    _expect("bad_magic", _header(magic=b"QR"))
    _expect("bad_version", _header(version=2))
    _expect("bad_type", _header(kind=9))
    _expect("oversized", _header(body=b"x" * 65)[:12], limit=64)
    _expect("bad_crc", _header(crc=1))
    _expect("bad_version", _header(version=2, kind=9))  # version is checked before type


@EXERCISE.check(points=1)
def incomplete_frames_wait() -> None:
    """A header alone, or a body short by one byte, gives no frame yet; the last byte completes it."""
    data = encode_frame(FrameType.REQUEST, b"hello")
    decoder = frames.FrameDecoder()
    for i in range(len(data) - 1):
        got = decoder.feed(data[i : i + 1])
        if got:
            raise CheckFailedError(f"a frame came out after {i + 1} of {len(data)} bytes: {got}")
    last = decoder.feed(data[-1:])
    if last != [Frame(FrameType.REQUEST, b"hello")]:
        raise CheckFailedError(f"the last byte gave {last}")


@EXERCISE.check(points=2)
@grading_settings(max_examples=150)
@given(st.binary(max_size=60), st.lists(st.integers(0, 60), max_size=4))
def garbage_raises_only_frame_error(data: bytes, cuts: list[int]) -> None:
    """Random bytes give frames, None, or FrameError, never another exception."""
    decoder = frames.FrameDecoder(64)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    try:
        for start, end in itertools.pairwise(points):
            decoder.feed(data[start:end])
    except FrameError:
        return

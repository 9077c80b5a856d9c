"""The p2p frame codec: round trips, split streams, and garbage that only ever raises FrameError."""

import itertools
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.peer.frames import (
    FRAME_HEADER_BYTES,
    FRAME_MAGIC,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    encode_frame,
)

frames = st.lists(
    st.builds(Frame, st.sampled_from(list(FrameType)), st.binary(max_size=300)), max_size=8
)


@given(frames, st.lists(st.integers(min_value=0, max_value=4000), max_size=10))
def test_frames_round_trip_whatever_the_chunking(sent: list[Frame], cuts: list[int]) -> None:
    """Frames decode to what was encoded, however TCP splits the byte stream."""
    stream = b"".join(encode_frame(f.type, f.body) for f in sent)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    got: list[Frame] = []
    for lo, hi in itertools.pairwise(points):
        got.extend(decoder.feed(stream[lo:hi]))
    assert got == sent
    assert decoder.buffered_bytes == 0


@settings(max_examples=300)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_random_bytes_raise_only_frame_error(prefix: bytes, garbage: bytes) -> None:
    """A peer fed arbitrary bytes sees complete frames or FrameError, never another exception."""
    decoder = FrameDecoder(max_body_bytes=64)
    for chunk in (prefix, garbage):
        try:
            decoder.feed(chunk)
        except FrameError:
            return


@given(st.binary(min_size=1, max_size=100), st.data())
def test_a_flipped_body_bit_is_caught_by_the_crc(body: bytes, data: st.DataObject) -> None:
    """Any single-bit corruption of the body fails the CRC check."""
    raw = bytearray(encode_frame(FrameType.RAFT, body))
    bit = data.draw(st.integers(min_value=0, max_value=len(body) * 8 - 1))
    raw[FRAME_HEADER_BYTES + bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(bytes(raw))
    assert info.value.reason == "bad_crc"


def test_oversized_length_is_rejected_from_the_header_alone() -> None:
    """A header announcing more than the limit is refused before the body arrives."""
    header = struct.pack(">2sBBII", FRAME_MAGIC, 1, 1, 1000, 0)
    with pytest.raises(FrameError) as info:
        FrameDecoder(max_body_bytes=999).feed(header)
    assert info.value.reason == "oversized"
    with pytest.raises(FrameError):
        encode_frame(FrameType.RAFT, b"x" * 1000, max_body_bytes=999)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", "bad_magic"),
        (struct.pack(">2sBBII", FRAME_MAGIC, 2, 1, 0, zlib.crc32(b"")), "bad_version"),
        (struct.pack(">2sBBII", FRAME_MAGIC, 1, 9, 0, zlib.crc32(b"")), "bad_type"),
    ],
)
def test_foreign_streams_are_named(raw: bytes, reason: str) -> None:
    """An HTTP request, a future version or an unknown type each raise with their own reason."""
    with pytest.raises(FrameError) as info:
        FrameDecoder().feed(raw)
    assert info.value.reason == reason


def test_decoder_stays_poisoned_after_an_error() -> None:
    """After a bad frame the stream is out of sync: every later feed raises too."""
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(b"XX" + b"\0" * 10)
    with pytest.raises(FrameError):
        decoder.feed(encode_frame(FrameType.RAFT, b"{}"))

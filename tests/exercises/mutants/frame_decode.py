"""Wrong frame decoders a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "no-crc-check",
        "trusts the body without checking its CRC",
        replace=(("if zlib.crc32(body) != crc:", "if False:"),),
    ),
    Mutant(
        "late-magic",
        "checks the magic only once a whole header has arrived",
        replace=(("if not FRAME_MAGIC.startswith(bytes(self._buffer[:2])):", "if False:"),),
    ),
    Mutant(
        "header-only-consumed",
        "removes the header from the buffer but leaves the body",
        replace=(("del self._buffer[:end]", "del self._buffer[:FRAME_HEADER_BYTES]"),),
    ),
    Mutant(
        "waits-one-byte-too-long",
        "waits for one byte more than the body before returning a frame",
        replace=(("if len(self._buffer) < end:", "if len(self._buffer) <= end:"),),
    ),
    Mutant(
        "no-size-limit",
        "accepts a body of any length",
        replace=(("if length > self._max_body_bytes:", "if False:"),),
    ),
    Mutant(
        "type-before-version",
        "checks the type before the version",
        replace=(
            (
                "if version != FRAME_VERSION:",
                "if type_code not in FrameType._value2member_map_ and False:",
            ),
            (
                'if type_code not in FrameType._value2member_map_:\n    raise FrameError("bad_type"',
                'if version != FRAME_VERSION and type_code in FrameType._value2member_map_:\n    raise FrameError("bad_version", "")\nif type_code not in FrameType._value2member_map_:\n    raise FrameError("bad_type"',
            ),
        ),
    ),
]

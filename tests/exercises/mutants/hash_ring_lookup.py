"""Wrong hash ring lookups a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "bisect-right",
        "a key exactly on a position goes to the next position (strictly after, not at or after)",
        replace=(("bisect.bisect_left", "bisect.bisect_right"),),
    ),
    Mutant(
        "wrap-to-last",
        "off-by-one wrap-around: past the end goes to the last position instead of the first",
        replace=(("index = 0", "index = len(positions) - 1"),),
    ),
    Mutant(
        "predecessor",
        "takes the position before the key (the ring read counter-clockwise)",
        body="""
            index = bisect.bisect_right(positions, key_hash) - 1
            return owners[index]
        """,
    ),
    Mutant(
        "no-wrap-clamp",
        "clamps the index instead of wrapping: past the end stays on the last position",
        body="""
            index = min(bisect.bisect_left(positions, key_hash), len(positions) - 1)
            return owners[index]
        """,
    ),
    Mutant(
        "linear-strict",
        "a linear scan with > instead of >=, wrapping correctly",
        body="""
            for position, owner in zip(positions, owners):
                if position > key_hash:
                    return owner
            return owners[0]
        """,
    ),
]

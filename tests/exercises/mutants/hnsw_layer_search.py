"""Wrong layered searches a learner might write."""

from exercises._grading.mutants import Mutant

MUTANTS = [
    Mutant(
        "brute-force",
        "ignores the graph and scans every row (perfect recall, no index)",
        body="""
            rows = np.arange(len(layers[0]), dtype=np.int64)
            dists = distances_to(rows)
            order = np.argsort(dists, kind="stable")[:ef]
            return rows[order], dists[order].astype(np.float32)
        """,
    ),
    Mutant(
        "greedy-only",
        "never widens the beam: ef is ignored and only the best element is kept",
        replace=(
            ('argsort(kind="stable")[:ef]', 'argsort(kind="stable")[:1]'),
            ("if len(found_dists) == ef:", "if len(found_dists) == 1:"),
        ),
    ),
    Mutant(
        "farthest-first",
        "returns the found rows farthest first",
        replace=(
            ("return ~found_rows, found_dists", "return ~found_rows[::-1], found_dists[::-1]"),
        ),
    ),
    Mutant(
        "stop-at-best",
        "stops when the nearest candidate is farther than the best found, not the worst",
        replace=(
            (
                "np.flatnonzero(found_rows >= 0)[:expand]",
                "np.flatnonzero(found_rows[:1] >= 0)[:expand]",
            ),
        ),
    ),
    Mutant(
        "no-upper-layers",
        "skips the greedy descent and searches layer 0 from the entry point",
        replace=(("for adjacency in reversed(layers[1:]):", "for adjacency in []:"),),
    ),
    Mutant(
        "descent-stops-at-first-layer",
        "descends only the top layer, then jumps to layer 0",
        replace=(
            (
                "for adjacency in reversed(layers[1:]):",
                "for adjacency in list(reversed(layers[1:]))[:1]:",
            ),
        ),
    ),
    Mutant(
        "no-visited-set",
        "never marks elements visited, so they are scored and found again",
        replace=(
            (
                "neighbours = neighbours[~visited[neighbours]]",
                "neighbours = neighbours[neighbours >= 0]",
            ),
        ),
    ),
]

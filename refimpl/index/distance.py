"""Distances with Qdrant's conventions, and their vectorised kernels.

Rules (Qdrant ``Distance``):

* ``Cosine``: vectors are normalised to unit length on insert (a zero vector stays zero), and
  queries too; the score is the dot product of the normalised vectors, higher is better.
* ``Dot``: the plain dot product, higher is better.
* ``Euclid``: the score is the Euclidean distance, lower is better.
* ``Manhattan``: the score is the L1 distance, lower is better.

Theory of operation: inside the index every metric is turned into one *internal distance*
where lower is always better, so the graph code never branches on the metric: ``-dot`` for
Cosine and Dot, the *squared* Euclidean distance for Euclid (no square root in the hot loop:
it keeps the order), and the L1 distance for Manhattan. :func:`to_scores` turns internal
distances back into the scores Qdrant reports. Squared Euclidean distances are computed from
cached squared norms as ``|x|^2 - 2 x.q + |q|^2``, so every metric except Manhattan is one
matrix product over a whole block of vectors.
"""

import enum
from typing import assert_never

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IdArray = npt.NDArray[np.int64]

# Below this length a vector counts as zero and Cosine leaves it unchanged (as Qdrant does).
_ZERO_NORM = 1e-30


def f32(values: npt.ArrayLike) -> FloatArray:
    """``values`` as a float32 array (no copy when it already is one)."""
    return np.asarray(values, dtype=np.float32)


class Distance(enum.Enum):
    """Qdrant's four distances; the values are the names the REST API uses."""

    COSINE = "Cosine"
    DOT = "Dot"
    EUCLID = "Euclid"
    MANHATTAN = "Manhattan"

    @property
    def higher_is_better(self) -> bool:
        """True when a larger score means a closer point (Cosine, Dot)."""
        return self in (Distance.COSINE, Distance.DOT)


def prepare(distance: Distance, vectors: FloatArray) -> FloatArray:
    """Return ``vectors`` (shape ``(n, d)``) as the index stores them: float32, and unit
    length for Cosine."""
    out = np.array(vectors, dtype=np.float32, copy=True)
    if distance is Distance.COSINE:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > _ZERO_NORM)
    return out


def squared_norms(distance: Distance, vectors: FloatArray) -> FloatArray:
    """The per-row cache that Euclid needs (zeros, unused, for the other metrics)."""
    if distance is Distance.EUCLID:
        return f32(np.einsum("nd,nd->n", vectors, vectors).astype(np.float32))
    return np.zeros(len(vectors), dtype=np.float32)


def one_to_many(
    distance: Distance, query: FloatArray, block: FloatArray, block_sq: FloatArray
) -> FloatArray:
    """Internal distances from one prepared ``query`` (``(d,)``) to each row of ``block``
    (``(n, d)``), in one numpy call; ``block_sq`` are the rows' squared norms."""
    if distance is Distance.MANHATTAN:
        return f32(np.abs(block - query).sum(axis=1, dtype=np.float32))
    dots = block @ query
    if distance is Distance.EUCLID:
        return np.maximum(block_sq - 2.0 * dots + float(query @ query), 0.0)
    return -dots


def many_to_many(
    distance: Distance, queries: FloatArray, block: FloatArray, block_sq: FloatArray
) -> FloatArray:
    """Internal distances ``(q, n)`` from each row of ``queries`` to each row of ``block``."""
    if distance is Distance.MANHATTAN:
        out = np.empty((len(queries), len(block)), dtype=np.float32)
        for start in range(0, len(queries), 16):  # bounds the (16, n, d) temporary
            chunk = queries[start : start + 16]
            out[start : start + 16] = np.abs(chunk[:, None, :] - block[None, :, :]).sum(axis=2)
        return out
    dots = queries @ block.T
    if distance is Distance.EUCLID:
        q_sq = np.einsum("qd,qd->q", queries, queries)
        return f32(np.maximum(block_sq[None, :] - 2.0 * dots + q_sq[:, None], 0.0))
    return -dots


def rowwise(
    distance: Distance, queries: FloatArray, gathered: FloatArray, gathered_sq: FloatArray
) -> FloatArray:
    """Internal distances ``(b, w)`` from query ``i`` (``queries[i]``) to each of its own
    gathered vectors ``gathered[i]`` (shape ``(b, w, d)``): many queries, one call."""
    if distance is Distance.MANHATTAN:
        return f32(np.abs(gathered - queries[:, None, :]).sum(axis=2, dtype=np.float32))
    dots = np.einsum("bwd,bd->bw", gathered, queries)
    if distance is Distance.EUCLID:
        q_sq = np.einsum("bd,bd->b", queries, queries)
        return f32(np.maximum(gathered_sq - 2.0 * dots + q_sq[:, None], 0.0))
    return f32(-dots)


def pairwise_within(
    distance: Distance, gathered: FloatArray, gathered_sq: FloatArray
) -> FloatArray:
    """Internal distances ``(b, w, w)`` between the vectors of each group ``gathered[i]``."""
    if distance is Distance.MANHATTAN:
        return f32(np.abs(gathered[:, :, None, :] - gathered[:, None, :, :]).sum(axis=3))
    # The block is big (b * w * w): every step works in place, one allocation in all.
    dots: FloatArray = gathered @ gathered.transpose(0, 2, 1)
    if distance is Distance.EUCLID:
        dots *= -2.0
        dots += gathered_sq[:, :, None]
        dots += gathered_sq[:, None, :]
        np.maximum(dots, 0.0, out=dots)
    else:
        np.negative(dots, out=dots)
    return dots


def to_scores(distance: Distance, internal: FloatArray) -> FloatArray:
    """Turn internal distances into the scores Qdrant reports."""
    match distance:
        case Distance.COSINE | Distance.DOT:
            return -internal
        case Distance.EUCLID:
            return np.sqrt(np.maximum(internal, 0.0))
        case Distance.MANHATTAN:
            return internal
        case _:
            assert_never(distance)


def paired(
    distance: Distance,
    queries: FloatArray,
    vectors: FloatArray,
    vectors_sq: FloatArray,
) -> FloatArray:
    """Internal distances ``(n,)`` between ``queries[i]`` and ``vectors[i]`` for each ``i``:
    the flat form the lockstep search uses after dropping already-visited neighbours."""
    if distance is Distance.MANHATTAN:
        return f32(np.abs(vectors - queries).sum(axis=1, dtype=np.float32))
    dots = np.einsum("nd,nd->n", queries, vectors)
    if distance is Distance.EUCLID:
        q_sq = np.einsum("nd,nd->n", queries, queries)
        return f32(np.maximum(vectors_sq - 2.0 * dots + q_sq, 0.0))
    return f32(-dots)

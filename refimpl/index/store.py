"""Rows of vectors keyed by point id: the storage both indexes share.

Rules:

* Every point id (an unsigned 64-bit integer or a UUID, as in Qdrant) maps to one *live* row.
  Rows are append-only: upserting an existing id writes a new row and marks the old one
  deleted, as a Qdrant segment does, so row numbers (the graph's node ids) never change.
* A deleted row keeps its vector; the graph may still route through it, but no search ever
  returns it.
* Vectors and queries are checked here, once, at the boundary: the right dimension, finite
  components, a non-empty query; failures raise the typed errors of :mod:`.errors`.

Theory of operation: vectors live in one float32 array that doubles its capacity when full,
so appending ``n`` rows costs amortised O(n) copies and a block of rows is always a view.
"""

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index.distance import Distance, FloatArray, IdArray, f32, prepare, squared_norms
from refimpl.index.errors import (
    DimensionMismatchError,
    EmptyQueryError,
    NonFiniteVectorError,
    UnknownPointError,
    VectorIndexError,
)
from refimpl.index.persist import Arrays

_ID_INT, _ID_UUID = 0, 1
_U64 = (1 << 64) - 1


def check_point_id(point_id: object) -> PointId:
    """Return ``point_id`` if Qdrant accepts it (an int in ``[0, 2**64)`` or a UUID)."""
    if isinstance(point_id, uuid.UUID):
        return point_id
    if isinstance(point_id, int) and not isinstance(point_id, bool) and 0 <= point_id <= _U64:
        return point_id
    raise VectorIndexError(
        f"point id {point_id!r} is neither an unsigned 64-bit integer nor a UUID"
    )


class VectorStore:
    """Append-only rows of prepared vectors, their point ids and a deleted mask."""

    def __init__(self, dim: int, distance: Distance) -> None:
        if dim <= 0:
            raise VectorIndexError(f"vector dimension must be positive, got {dim}")
        self.dim = dim
        self.distance = distance
        self.vectors: FloatArray = np.zeros((16, dim), dtype=np.float32)
        self.sq_norms: FloatArray = np.zeros(16, dtype=np.float32)
        self.deleted = np.zeros(16, dtype=bool)
        self.n_rows = 0
        self.row_ids: list[PointId] = []
        self.row_of: dict[PointId, int] = {}

    def __len__(self) -> int:
        return len(self.row_of)

    # --- checking input -------------------------------------------------------------------
    def check_vectors(self, vectors: npt.ArrayLike, what: str = "vector") -> FloatArray:
        """Return ``vectors`` as a prepared ``(n, dim)`` float32 array, or raise."""
        array = np.asarray(vectors, dtype=np.float64)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2:
            raise DimensionMismatchError(
                f"expected a {what} of {self.dim} numbers or a 2-d array of them, "
                f"got an array of shape {array.shape}"
            )
        if array.shape[1] == 0:
            raise EmptyQueryError(f"the {what} is empty; expected {self.dim} components")
        if array.shape[1] != self.dim:
            raise DimensionMismatchError(
                f"{what} has {array.shape[1]} components, the index expects {self.dim}"
            )
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.flatnonzero(~finite.all(axis=1))[0])
            raise NonFiniteVectorError(
                f"{what} {row} has a NaN or infinite component; every component must be finite"
            )
        return prepare(self.distance, array.astype(np.float32))

    def check_query(self, query: npt.ArrayLike) -> FloatArray:
        """Return one prepared query of shape ``(dim,)``, or raise."""
        array = np.asarray(query, dtype=np.float64)
        if array.size == 0:
            raise EmptyQueryError(f"the query is empty; expected {self.dim} components")
        if array.ndim != 1:
            raise DimensionMismatchError(
                f"expected one query of {self.dim} numbers, got an array of shape {array.shape}"
            )
        return f32(self.check_vectors(array, "query")[0])

    def check_queries(self, queries: npt.ArrayLike) -> FloatArray:
        """Return a prepared batch of queries ``(q, dim)``, or raise."""
        array = np.asarray(queries, dtype=np.float64)
        if array.ndim != 2:
            raise DimensionMismatchError(
                f"expected a 2-d batch of queries, got an array of shape {array.shape}"
            )
        if array.shape[0] == 0:
            raise EmptyQueryError("the batch holds no queries")
        return self.check_vectors(array, "query")

    # --- changing rows --------------------------------------------------------------------
    def append(self, point_ids: Sequence[PointId], prepared: FloatArray) -> IdArray:
        """Write new rows for ``point_ids``; an id already present (or repeated in the batch:
        the last copy wins) has its older row marked deleted. Returns the new row numbers."""
        if len(point_ids) != len(prepared):
            raise VectorIndexError(
                f"{len(point_ids)} point ids but {len(prepared)} vectors; they must match"
            )
        checked = [check_point_id(p) for p in point_ids]
        start, count = self.n_rows, len(checked)
        self._reserve(start + count)
        self.vectors[start : start + count] = prepared
        self.sq_norms[start : start + count] = squared_norms(self.distance, prepared)
        for offset, point_id in enumerate(checked):
            old = self.row_of.get(point_id)
            if old is not None:
                self.deleted[old] = True
            self.row_of[point_id] = start + offset
        self.row_ids.extend(checked)
        self.n_rows = start + count
        return np.arange(start, start + count, dtype=np.int64)

    def delete(self, point_id: PointId) -> None:
        """Mark the live row of ``point_id`` deleted; raise if there is none."""
        row = self.row_of.pop(point_id, None)
        if row is None:
            raise UnknownPointError(f"point {point_id!r} is not in the index")
        self.deleted[row] = True

    def _reserve(self, rows: int) -> None:
        if rows <= len(self.vectors):
            return
        capacity = max(rows, 2 * len(self.vectors))
        self.vectors = _grown(self.vectors, capacity)
        self.sq_norms = _grown(self.sq_norms, capacity)
        self.deleted = _grown(self.deleted, capacity)

    # --- reading --------------------------------------------------------------------------
    def live_rows(self, allowed: Iterable[PointId] | None = None) -> IdArray:
        """Row numbers of live points, restricted to ``allowed`` ids when given."""
        if allowed is None:
            return np.flatnonzero(~self.deleted[: self.n_rows]).astype(np.int64)
        rows = [r for p in allowed if (r := self.row_of.get(p)) is not None]
        return np.unique(np.asarray(rows, dtype=np.int64))

    def admissible_mask(self, allowed: Iterable[PointId] | None) -> npt.NDArray[np.bool_]:
        """A mask over rows: True where a search may return the row."""
        if allowed is None:
            return ~self.deleted[: self.n_rows]
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[self.live_rows(allowed)] = True
        return mask

    def vector_of(self, point_id: PointId) -> FloatArray:
        """The stored (prepared) vector of a live point."""
        row = self.row_of.get(point_id)
        if row is None:
            raise UnknownPointError(f"point {point_id!r} is not in the index")
        return f32(self.vectors[row].copy())

    # --- persistence ----------------------------------------------------------------------
    def to_arrays(self) -> Arrays:
        """Everything needed to rebuild the store, as plain numeric arrays."""
        kinds = np.zeros(self.n_rows, dtype=np.uint8)
        high = np.zeros(self.n_rows, dtype=np.uint64)
        low = np.zeros(self.n_rows, dtype=np.uint64)
        for row, point_id in enumerate(self.row_ids):
            if isinstance(point_id, uuid.UUID):
                kinds[row], high[row], low[row] = _ID_UUID, point_id.int >> 64, point_id.int & _U64
            else:
                low[row] = point_id
        return {
            "store_dim": np.array([self.dim], dtype=np.int64),
            "store_distance": np.array([list(Distance).index(self.distance)], dtype=np.int64),
            "store_vectors": self.vectors[: self.n_rows],
            "store_deleted": self.deleted[: self.n_rows],
            "store_id_kind": kinds,
            "store_id_high": high,
            "store_id_low": low,
        }

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> "VectorStore":
        """Rebuild a store written by :meth:`to_arrays`."""
        distance = list(Distance)[int(arrays["store_distance"][0])]
        store = cls(int(arrays["store_dim"][0]), distance)
        kinds, high, low = arrays["store_id_kind"], arrays["store_id_high"], arrays["store_id_low"]
        ids: list[PointId] = [
            uuid.UUID(int=(int(h) << 64) | int(lo)) if k == _ID_UUID else int(lo)
            for k, h, lo in zip(kinds, high, low, strict=True)
        ]
        vectors: FloatArray = np.asarray(arrays["store_vectors"], dtype=np.float32)
        store._reserve(len(ids))
        store.vectors[: len(ids)] = vectors
        store.sq_norms[: len(ids)] = squared_norms(distance, vectors)
        store.deleted[: len(ids)] = arrays["store_deleted"]
        store.row_ids = ids
        store.n_rows = len(ids)
        store.row_of = {p: r for r, p in enumerate(ids) if not store.deleted[r]}
        return store


def _grown(array: npt.NDArray[Any], capacity: int) -> npt.NDArray[Any]:
    """A copy of ``array`` with ``capacity`` rows, the new rows zero."""
    out = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    return out

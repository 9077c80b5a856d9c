"""The ``VectorIndex`` protocol that every index of a shard implements.

Rules (Qdrant's point and search semantics):

* ``upsert`` writes vectors by point id; an existing id is replaced.
* ``delete`` removes ids; ids that are not there are ignored (Qdrant's delete is idempotent).
* ``search`` returns at most ``k`` points, best first, with Qdrant's scores (higher is better
  for Cosine and Dot, lower for Euclid and Manhattan). ``ef`` is the beam width of an
  approximate index (Qdrant's ``hnsw_ef``; ignored by an exact index), ``allowed`` restricts
  the answer to a set of ids (a filter), and ``exact=True`` forces a full scan. When at least
  ``k`` points are allowed, exactly ``k`` come back.
* ``save``/``load`` round-trip the whole index through an :class:`ArrayStore`.

Two implementations: :class:`refimpl.index.exact.ExactIndex` (the oracle) and
:class:`refimpl.index.hnsw.HnswIndex`; ``refimpl.testing.index_conformance`` checks both
against these rules.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index.distance import Distance
from refimpl.index.persist import ArrayStore


@dataclass(frozen=True, slots=True)
class ScoredPoint:
    """One search hit: the point id and its score as Qdrant reports it."""

    id: PointId
    score: float


class VectorIndex(Protocol):
    """What a shard needs from a vector index."""

    @property
    def dim(self) -> int:
        """Number of components of every vector."""
        ...

    @property
    def distance(self) -> Distance:
        """The metric, with Qdrant's scoring convention."""
        ...

    def __len__(self) -> int:
        """Number of live points."""
        ...

    def __contains__(self, point_id: object) -> bool:
        """True when ``point_id`` is a live point."""
        ...

    def upsert(self, point_ids: Sequence[PointId], vectors: npt.ArrayLike) -> None:
        """Insert or replace the vectors of ``point_ids`` (one row of ``vectors`` each)."""
        ...

    def delete(self, point_ids: Iterable[PointId]) -> int:
        """Remove the given ids (unknown ones are ignored); return how many were removed."""
        ...

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[ScoredPoint]:
        """The ``k`` best points for one query, best first."""
        ...

    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        ef: int | None = None,
        allowed: Collection[PointId] | None = None,
        exact: bool = False,
    ) -> list[list[ScoredPoint]]:
        """:meth:`search` for each row of ``queries``, computed together."""
        ...

    def save(self, store: ArrayStore) -> None:
        """Write the whole index to ``store``."""
        ...

    @classmethod
    def load(cls, store: ArrayStore) -> Self:
        """Rebuild an index that :meth:`save` wrote."""
        ...

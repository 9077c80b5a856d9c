"""Results of reads, their JSON shapes, and how answers from several shards merge.

Rules (Qdrant's REST responses, see the client notes):

* A record is ``{"id", "payload", "vector"}`` (``payload``/``vector`` null when not asked
  for); a scored point adds ``score`` and ``version`` (the number of the operation that last
  wrote the point; the official client requires it).
* Scored points are ordered best first — descending score for Cosine and Dot, ascending for
  Euclid and Manhattan, whose scores are distances — and equal scores by id.
* Scroll pages are ordered by id (integers first, then UUIDs); ``next_page_offset`` is the id
  the next page starts at, or null at the end.
* Merging shard answers: each shard returns its own best ``offset + limit`` (or, for scroll,
  its first ``limit`` ids and its own next offset); the merged answer is the same as one shard
  holding every point would have given.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from refimpl.ids import PointId
from refimpl.points.ids import id_sort_key, id_to_json

Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """A point as retrieve and scroll return it."""

    id: PointId
    payload: Payload | None = None
    vector: tuple[float, ...] | None = None
    order_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        """Qdrant's ``Record``."""
        out: dict[str, Any] = {"id": id_to_json(self.id), "payload": self.payload,
                               "vector": None if self.vector is None else list(self.vector)}  # fmt: skip
        if self.order_value is not None:
            out["order_value"] = self.order_value
        return out


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    """A point as a query returns it."""

    id: PointId
    score: float
    version: int
    payload: Payload | None = None
    vector: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """Qdrant's ``ScoredPoint``."""
        return {"id": id_to_json(self.id), "version": self.version, "score": self.score,
                "payload": self.payload,
                "vector": None if self.vector is None else list(self.vector)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScrollPage:
    """One page of a scroll."""

    points: tuple[Record, ...]
    next_page_offset: PointId | None

    def to_json(self) -> dict[str, Any]:
        """Qdrant's ``ScrollResult``."""
        offset = None if self.next_page_offset is None else id_to_json(self.next_page_offset)
        return {"points": [p.to_json() for p in self.points], "next_page_offset": offset}


def order_scored(hits: Iterable[ScoredRecord], higher_is_better: bool) -> list[ScoredRecord]:
    """Best first, equal scores by id."""
    sign = -1.0 if higher_is_better else 1.0
    return sorted(hits, key=lambda h: (sign * h.score, id_sort_key(h.id)))


def merge_scored(
    answers: Iterable[Sequence[ScoredRecord]], limit: int, offset: int, higher_is_better: bool
) -> list[ScoredRecord]:
    """Merge per-shard answers (each the shard's best ``offset + limit``) into one page."""
    merged = order_scored((h for answer in answers for h in answer), higher_is_better)
    return merged[offset : offset + limit]


def merge_scroll(pages: Iterable[ScrollPage], limit: int) -> ScrollPage:
    """Merge per-shard pages (each its first ``limit`` ids from the same offset)."""
    pages = list(pages)
    records = sorted((r for p in pages for r in p.points), key=lambda r: id_sort_key(r.id))
    beyond = [r.id for r in records[limit:]]
    beyond += [p.next_page_offset for p in pages if p.next_page_offset is not None]
    nxt = min(beyond, key=id_sort_key) if beyond else None
    return ScrollPage(tuple(records[:limit]), nxt)


def merge_ordered(pages: Iterable[ScrollPage], limit: int, descending: bool) -> ScrollPage:
    """Merge per-shard ``order_by`` pages (each its first ``limit`` entries) by order value,
    equal values by id; ``order_by`` scrolls have no next offset (as in Qdrant)."""
    records = [r for p in pages for r in p.points]
    assert all(r.order_value is not None for r in records), "order_by pages carry values"
    sign = -1.0 if descending else 1.0
    records.sort(key=lambda r: (sign * (r.order_value or 0.0), id_sort_key(r.id)))
    return ScrollPage(tuple(records[:limit]), None)

"""Point ids as Qdrant reads, orders and writes them.

Rules (Qdrant ``ExtendedPointId``):

* an id is an unsigned 64-bit integer (a JSON integer, never ``1.0``, never ``true``) or a UUID
  given as a string in any form Python's :class:`uuid.UUID` reads (hyphenated, 32 hex digits,
  ``urn:uuid:…``, braces); a numeric string such as ``"7"`` is *not* an integer id;
* ids are normalised on input: an int stays an int, a UUID string becomes a :class:`uuid.UUID`,
  and goes back out as the canonical lower-case hyphenated string;
* the order of ids (scroll, ties between equal scores) puts every integer before every UUID,
  integers ascending, UUIDs by their 128-bit value (the same as their byte and canonical
  string order).
"""

import uuid
from typing import Any

from refimpl.ids import PointId
from refimpl.points.errors import deserialize_error

U64_MAX = (1 << 64) - 1


def parse_point_id(raw: object) -> PointId:
    """Return the normalised id for a JSON value, or raise :class:`BadRequest`."""
    if isinstance(raw, uuid.UUID):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 0 <= raw <= U64_MAX:
            return raw
        raise deserialize_error(
            f"Unable to parse point id {raw}: an integer id must be in [0, 2^64 - 1]"
        )
    if isinstance(raw, str):
        try:
            return uuid.UUID(raw)
        except ValueError:
            pass
    raise deserialize_error(
        f"Unable to parse point id {_show(raw)}: expected an unsigned integer or a UUID string"
    )


def _show(raw: object) -> str:
    """A short JSON-like spelling of ``raw`` for an error message."""
    text = f'"{raw}"' if isinstance(raw, str) else repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def id_sort_key(point_id: PointId) -> tuple[int, int]:
    """Sort key: integers first (ascending), then UUIDs by value."""
    if isinstance(point_id, uuid.UUID):
        return (1, point_id.int)
    return (0, point_id)


def id_to_json(point_id: PointId) -> int | str:
    """The id as it appears in a response: a JSON integer or a canonical UUID string."""
    return str(point_id) if isinstance(point_id, uuid.UUID) else point_id


def id_from_json(raw: Any) -> PointId:
    """Inverse of :func:`id_to_json` for trusted data (our own files); raises on bad data."""
    return parse_point_id(raw)

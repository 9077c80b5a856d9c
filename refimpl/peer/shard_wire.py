"""Shard operations between peers: the bodies of ``shard_update`` and ``shard_read`` requests.

Rules:

* A peer that coordinates a client request and does not hold a shard sends the shard's part
  to a peer that does, as a p2p REQUEST frame answered by one RESPONSE (see
  :mod:`refimpl.peer.frames`); these are plain JSON objects with a ``"kind"``:

  - ``{"kind": "shard_update", "collection", "incarnation", "shard_id", "wait", "op"}`` where
    ``op`` is ``{"upsert": {"ids", "vectors", "payloads"}}``, ``{"delete": [ids]}`` or
    ``{"filter": <Qdrant filter JSON>}``; answered ``{"ok": true, "result": <UpdateResult>}``;
  - ``{"kind": "shard_read", "collection", "incarnation", "shard_id", "read", "body"}`` where
    ``read`` is ``query``, ``scroll``, ``count`` or ``retrieve`` and ``body`` is the REST body
    of that request (re-parsed and re-checked by the receiver); answered
    ``{"ok": true, "result": <the shard's answer in its REST shape>}``.

* Vectors travel as base64 of little-endian float32 rows: exact, and about five times smaller
  and faster than JSON numbers. Ids travel in their REST form (JSON integer or UUID string).
* ``incarnation`` names which collection of that name is meant (see
  :mod:`refimpl.peer.shards`), so a late request never lands in a re-created collection.
* Decoding checks shapes and raises :class:`refimpl.points.BadRequest`: a peer never trusts
  another peer's bytes more than a client's.

Theory of operation: pure functions from typed values to JSON and back; the router and the
request handler in :mod:`refimpl.peer.router` are their only users.
"""

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np

from refimpl.points import (
    BadRequest,
    DeletePoints,
    Record,
    ScoredRecord,
    ScrollPage,
    UpsertPoints,
    id_from_json,
    id_to_json,
    parse_point_id,
)

__all__ = [
    "ShardUpdate",
    "decode_record",
    "decode_scored",
    "decode_scroll_page",
    "decode_update",
    "encode_update",
]

ShardUpdate = UpsertPoints | DeletePoints


def encode_update(op: ShardUpdate | None, raw_filter: object = None) -> dict[str, Any]:
    """The ``op`` field for an upsert, a delete by ids, or (``op`` None) a delete by filter."""
    if op is None:
        return {"filter": raw_filter}
    if isinstance(op, DeletePoints):
        return {"delete": [id_to_json(p) for p in op.ids]}
    vectors = np.ascontiguousarray(op.vectors, dtype="<f4")
    return {
        "upsert": {
            "ids": [id_to_json(p) for p in op.ids],
            "vectors": base64.b64encode(vectors.tobytes()).decode("ascii"),
            "payloads": list(op.payloads),
        }
    }


def decode_update(raw: object, dim: int) -> tuple[ShardUpdate | None, object]:
    """Inverse of :func:`encode_update`: ``(op, None)`` or ``(None, raw_filter)``."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise BadRequest("Bad request: shard update must hold exactly one of upsert/delete/filter")
    if "filter" in raw:
        return None, raw["filter"]
    if "delete" in raw:
        ids = raw["delete"]
        if not isinstance(ids, list):
            raise BadRequest("Bad request: shard delete must list point ids")
        return DeletePoints(tuple(parse_point_id(p) for p in ids)), None
    body = raw.get("upsert")
    if not isinstance(body, dict):
        raise BadRequest("Bad request: unknown shard update")
    ids, payloads = body.get("ids"), body.get("payloads")
    if not isinstance(ids, list) or not isinstance(payloads, list) or len(ids) != len(payloads):
        raise BadRequest("Bad request: shard upsert needs ids and payloads of equal length")
    try:
        data = base64.b64decode(str(body.get("vectors", "")), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Bad request: shard upsert vectors are not base64") from None
    if len(data) != 4 * dim * len(ids):
        raise BadRequest(f"Bad request: shard upsert vectors do not hold {len(ids)} x {dim} floats")
    vectors = np.frombuffer(data, dtype="<f4").astype(np.float32).reshape(len(ids), dim)
    for p in payloads:
        if p is not None and not isinstance(p, dict):
            raise BadRequest("Bad request: a payload must be an object or null")
    return UpsertPoints(tuple(parse_point_id(p) for p in ids), vectors, tuple(payloads)), None


def _vector(raw: object) -> tuple[float, ...] | None:
    return None if raw is None else tuple(float(x) for x in raw)  # type: ignore[attr-defined]


def decode_record(raw: Mapping[str, Any]) -> Record:
    """A :class:`Record` from its REST form (``Record.to_json``)."""
    return Record(
        id_from_json(raw["id"]), raw.get("payload"), _vector(raw.get("vector")),
        raw.get("order_value"),
    )  # fmt: skip


def decode_scored(raw: Mapping[str, Any]) -> ScoredRecord:
    """A :class:`ScoredRecord` from its REST form (``ScoredRecord.to_json``)."""
    return ScoredRecord(
        id_from_json(raw["id"]), float(raw["score"]), int(raw["version"]), raw.get("payload"),
        _vector(raw.get("vector")),
    )  # fmt: skip


def decode_scroll_page(raw: Mapping[str, Any]) -> ScrollPage:
    """A :class:`ScrollPage` from its REST form (``ScrollPage.to_json``)."""
    offset = raw.get("next_page_offset")
    return ScrollPage(
        tuple(decode_record(r) for r in raw["points"]),
        None if offset is None else id_from_json(offset),
    )

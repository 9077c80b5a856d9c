"""Qdrant's point requests as the REST API receives them, parsed into typed values.

Rules:

* Every ``parse_*`` function takes the decoded JSON body (``json.loads`` output: Python ints
  keep u64 ids exact) and returns a frozen value, or raises :class:`BadRequest` with a message
  that names the offending field and says what to send. Unknown fields are rejected by name.
* Nothing is half-accepted: a batch with one bad point is rejected as a whole, before any
  shard sees it.
* Vectors: one unnamed dense vector per point (``[0.1, …]``, or ``{"": [...]}``), exactly
  ``dim`` JSON numbers, each finite as a 32-bit float ("Wrong input: Vector dimension error:
  expected dim: 4, got 3").
* Limits are bounded (:data:`LIMIT_MAX`, :data:`OFFSET_MAX`, :data:`BATCH_MAX`) so one request
  cannot ask a peer for unbounded memory.
* Defaults follow Qdrant's server: retrieve and scroll return payloads unless told not to,
  query does not; no request returns vectors unless asked (``with_vector``).

Theory of operation: a handful of small readers (``_json``) check one field each; the request
parsers compose them. Vectors are type-checked element by element (a string ``"1"`` is not a
number) and converted to one ``float32`` array per request; a column-wise batch of plain
floats is checked as one numpy block (the hot path of bulk ingest), falling back to the
element-wise checks only to word the error.
"""

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.points._json import as_bool, as_count, as_object, kind, only_keys
from refimpl.points.errors import deserialize_error, wrong_input
from refimpl.points.filters import Filter, HasId, parse_filter
from refimpl.points.ids import id_to_json, parse_point_id
from refimpl.points.jsonpath import Step, parse_path, values_at

FloatArray = npt.NDArray[np.float32]
Payload = dict[str, Any]

LIMIT_MAX = 100_000
"""Largest ``limit`` a query or scroll may ask for (our bound; Qdrant has none)."""
OFFSET_MAX = 1_000_000
"""Largest ``offset`` of a query: the shard must score ``offset + limit`` candidates."""
BATCH_MAX = 100_000
"""Most points (or ids, or queries) in one request."""
HNSW_EF_MAX = 100_000
"""Largest ``params.hnsw_ef``."""

_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True, slots=True, eq=False)
class UpsertPoints:
    """Insert or replace points; column-wise. ``vectors`` is ``(n, dim)`` float32 as given
    (the index normalises for Cosine). A repeated id: the last copy wins."""

    ids: tuple[PointId, ...]
    vectors: FloatArray
    payloads: tuple[Payload | None, ...]

    def __post_init__(self) -> None:
        assert len(self.ids) == len(self.vectors) == len(self.payloads), "columns must align"


@dataclass(frozen=True, slots=True)
class DeletePoints:
    """Delete these ids (unknown ids are ignored)."""

    ids: tuple[PointId, ...]


@dataclass(frozen=True, slots=True)
class DeleteByFilter:
    """Delete every point that passes ``filter``."""

    filter: Filter


UpdateOperation = UpsertPoints | DeletePoints | DeleteByFilter


@dataclass(frozen=True, slots=True)
class PayloadSelector:
    """``with_payload``: none, all, only the ``include`` keys, or all but the ``exclude`` keys."""

    enabled: bool
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    def select(self, payload: Payload | None) -> Payload | None:
        """The part of ``payload`` to return (``None`` when payloads are off)."""
        if not self.enabled:
            return None
        full = payload if payload is not None else {}
        selected: Payload = full
        if self.include is not None:
            selected = _include(full, _key_tree(self.include))
        elif self.exclude is not None:
            selected = _exclude(full, _key_tree(self.exclude))
        return dict(selected)


_KeyTree = dict[str | int | None, Any]
"""Selected paths as a prefix tree keyed by step (a key, ``None`` for ``[]``, an index);
``True`` selects everything below."""


def _key_tree(keys: tuple[str, ...]) -> _KeyTree:
    """``("a.b", "c[]")`` becomes ``{"a": {"b": True}, "c": {None: True}}``."""
    tree: _KeyTree = {}
    for key in keys:
        steps = [s.key if s.key is not None else s.index for s in parse_path(key)]
        node = tree
        for step in steps[:-1]:
            child = node.setdefault(step, {})
            if child is True:  # a shorter path already selects everything below
                break
            node = child
        else:
            node[steps[-1]] = True
    return tree


def _include(value: Any, tree: _KeyTree) -> Any:
    """Keep only the selected parts. As in Qdrant, only ``[]`` looks into an array: a key
    step does not, and ``[n]`` selects nothing."""
    if isinstance(value, dict):
        return {k: v if tree[k] is True else _include(v, tree[k])
                for k, v in value.items() if k in tree}  # fmt: skip
    if isinstance(value, list):
        if None not in tree:
            return []
        return value if tree[None] is True else [_include(item, tree[None]) for item in value]
    return value


def _exclude(value: Any, tree: _KeyTree) -> Any:
    """Drop the selected parts (the same path rules as :func:`_include`)."""
    if isinstance(value, dict):
        return {k: v if k not in tree else _exclude(v, tree[k])
                for k, v in value.items() if tree.get(k) is not True}  # fmt: skip
    if isinstance(value, list):
        if None not in tree:
            return value
        return [] if tree[None] is True else [_exclude(item, tree[None]) for item in value]
    return value


ALL_PAYLOAD = PayloadSelector(True)
NO_PAYLOAD = PayloadSelector(False)


@dataclass(frozen=True, slots=True)
class RetrieveRequest:
    """``POST /collections/{name}/points``."""

    ids: tuple[PointId, ...]
    with_payload: PayloadSelector = ALL_PAYLOAD
    with_vector: bool = False


@dataclass(frozen=True, slots=True)
class CountRequest:
    """``POST …/points/count``; ``exact=false`` is accepted and still counts exactly."""

    filter: Filter | None = None
    exact: bool = True


@dataclass(frozen=True, slots=True)
class OrderBy:
    """Scroll ordered by a numeric payload field (each numeric value gives one entry)."""

    key: str
    path: tuple[Step, ...]
    direction: Literal["asc", "desc"] = "asc"
    start_from: float | None = None

    def values(self, payload: Payload | None) -> list[float]:
        """The numeric values of the key in ``payload`` (booleans are not numbers)."""
        found = values_at(payload or {}, self.path)
        return [float(v) for v in found if isinstance(v, int | float) and not isinstance(v, bool)]


@dataclass(frozen=True, slots=True)
class ScrollRequest:
    """``POST …/points/scroll``: a page of points in id order (or ``order_by`` order)."""

    filter: Filter | None = None
    limit: int = 10
    offset: PointId | None = None
    with_payload: PayloadSelector = ALL_PAYLOAD
    with_vector: bool = False
    order_by: OrderBy | None = None


@dataclass(frozen=True, slots=True, eq=False)
class QueryRequest:
    """``POST …/points/query``: nearest neighbours of ``vector`` (or of the stored vector of
    point ``nearest_id``); with neither, the first points in id order, each scored 1.0."""

    vector: FloatArray | None = None
    nearest_id: PointId | None = None
    limit: int = 10
    offset: int = 0
    filter: Filter | None = None
    with_payload: PayloadSelector = NO_PAYLOAD
    with_vector: bool = False
    hnsw_ef: int | None = None
    exact: bool = False
    score_threshold: float | None = None


# --- vectors and ids ----------------------------------------------------------------------


def parse_vector(raw: object, dim: int, where: str) -> list[float]:
    """One dense vector of ``dim`` finite numbers, or :class:`BadRequest`."""
    if isinstance(raw, dict):
        only_keys(raw, ("",), where)  # Qdrant's name for the default (unnamed) vector
        raw = raw.get("")
    if not isinstance(raw, list):
        raise deserialize_error(f"`{where}` must be an array of numbers, got {kind(raw)}")
    # The common case, all floats in range, is checked by C loops (map); the element-wise
    # loops below only run to find and name what is wrong.
    if not set(map(type, raw)) <= _FLOAT:
        for i, x in enumerate(raw):
            if type(x) is not float and type(x) is not int:  # not bool, not "1"
                raise deserialize_error(f"`{where}[{i}]` must be a number, got {kind(x)}")
    if len(raw) != dim:
        raise wrong_input(f"Vector dimension error: expected dim: {dim}, got {len(raw)}")
    if not _in_float32_range(raw):
        for i, x in enumerate(raw):
            if not _in_float32_range([x]):
                raise wrong_input(
                    f"`{where}[{i}]` is {x}: every vector component must be a finite number "
                    "that fits a 32-bit float (no NaN, no infinity)"
                )
    return raw


_FLOAT = {float}


def _in_float32_range(values: list[float]) -> bool:
    """Every value finite and within float32's range (ints too large for a float are not)."""
    try:
        return all(map(math.isfinite, values)) and max(map(abs, values), default=0) <= _F32_MAX
    except OverflowError:  # an int beyond any float
        return False


def _vectors(rows: Sequence[list[float]], dim: int) -> FloatArray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32)


def _batch_vectors(raw: list[Any], dim: int) -> FloatArray:
    """``batch.vectors`` as one array: a block of plain float rows is checked by numpy at
    once; anything else goes row by row through :func:`parse_vector` for its message."""
    rectangular = raw and dim > 0 and all(type(row) is list and len(row) == dim for row in raw)
    if rectangular and set(map(type, itertools.chain.from_iterable(raw))) <= _FLOAT:
        block = np.array(raw, dtype=np.float64)
        if float(np.abs(block).max()) <= _F32_MAX:  # False for NaN and infinities too
            return block.astype(np.float32)
    rows = [parse_vector(v, dim, f"batch.vectors[{i}]") for i, v in enumerate(raw)]
    return _vectors(rows, dim)


def _ids(raw: object, where: str) -> tuple[PointId, ...]:
    if not isinstance(raw, list):
        raise deserialize_error(f"`{where}` must be an array of point ids, got {kind(raw)}")
    _bounded(raw, where)
    return tuple(parse_point_id(p) for p in raw)


def _bounded(items: list[Any], where: str) -> None:
    if len(items) > BATCH_MAX:
        raise wrong_input(
            f"`{where}` holds {len(items)} items; send at most {BATCH_MAX} per request"
        )


def _payload(raw: object, where: str) -> Payload | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise deserialize_error(f"`{where}` must be a JSON object or null, got {kind(raw)}")
    return raw


def _no_shard_key(body: Mapping[str, Any]) -> None:
    if body.get("shard_key") is not None:
        raise wrong_input("`shard_key` is only for collections with custom sharding; leave it out")


# --- updates ------------------------------------------------------------------------------


def parse_upsert(body: object, dim: int) -> UpsertPoints:
    """``PUT /collections/{name}/points``: ``{"points": [...]}`` or ``{"batch": {...}}``."""
    doc = as_object(body, "body")
    only_keys(doc, ("points", "batch", "shard_key"), "")
    _no_shard_key(doc)
    if ("points" in doc) == ("batch" in doc):
        raise deserialize_error("send exactly one of `points` (a list of points) or `batch`")
    if "batch" in doc:
        return _upsert_batch(doc["batch"], dim)
    raw_points = doc["points"]
    if not isinstance(raw_points, list):
        raise deserialize_error(f"`points` must be an array of points, got {kind(raw_points)}")
    _bounded(raw_points, "points")
    ids, rows, payloads = [], [], []
    for i, raw in enumerate(raw_points):
        where = f"points[{i}]"
        point = as_object(raw, where)
        only_keys(point, ("id", "vector", "payload"), where)
        for required in ("id", "vector"):
            if required not in point:
                raise deserialize_error(f"missing field `{required}` at `{where}`")
        ids.append(parse_point_id(point["id"]))
        rows.append(parse_vector(point["vector"], dim, f"{where}.vector"))
        payloads.append(_payload(point.get("payload"), f"{where}.payload"))
    return UpsertPoints(tuple(ids), _vectors(rows, dim), tuple(payloads))


def _upsert_batch(raw: object, dim: int) -> UpsertPoints:
    batch = as_object(raw, "batch")
    only_keys(batch, ("ids", "vectors", "payloads"), "batch")
    ids = _ids(batch.get("ids"), "batch.ids")
    raw_vectors = batch.get("vectors")
    if not isinstance(raw_vectors, list):
        raise deserialize_error(
            f"`batch.vectors` must be an array of vectors, got {kind(raw_vectors)}"
        )
    if len(raw_vectors) != len(ids):
        raise wrong_input(
            f"`batch` has {len(ids)} ids but {len(raw_vectors)} vectors; they must match"
        )
    vectors = _batch_vectors(raw_vectors, dim)
    raw_payloads = batch.get("payloads")
    if raw_payloads is None:
        payloads: list[Payload | None] = [None] * len(ids)
    elif not isinstance(raw_payloads, list) or len(raw_payloads) != len(ids):
        raise wrong_input(
            f"`batch.payloads` must be null or an array of {len(ids)} payloads (one per id)"
        )
    else:
        payloads = [_payload(p, f"batch.payloads[{i}]") for i, p in enumerate(raw_payloads)]
    return UpsertPoints(ids, vectors, tuple(payloads))


def parse_delete(body: object) -> DeletePoints | DeleteByFilter:
    """``POST …/points/delete``: ``{"points": [ids]}`` or ``{"filter": {...}}``."""
    doc = as_object(body, "body")
    only_keys(doc, ("points", "filter", "shard_key"), "")
    _no_shard_key(doc)
    if ("points" in doc) == ("filter" in doc):
        raise deserialize_error("send exactly one of `points` (a list of ids) or `filter`")
    if "points" in doc:
        return DeletePoints(_ids(doc["points"], "points"))
    return DeleteByFilter(parse_filter(doc["filter"]))


# --- reads --------------------------------------------------------------------------------


def parse_with_payload(
    raw: object, default: PayloadSelector, where: str = "with_payload"
) -> PayloadSelector:
    """``true``/``false``, a list of keys, ``{"include": [...]}`` or ``{"exclude": [...]}``."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return ALL_PAYLOAD if raw else NO_PAYLOAD
    if isinstance(raw, list):
        return PayloadSelector(True, include=_keys(raw, where))
    if isinstance(raw, dict) and len(raw) == 1 and ("include" in raw or "exclude" in raw):
        name = next(iter(raw))
        keys = _keys(raw[name], f"{where}.{name}")
        return PayloadSelector(True, **{name: keys})
    raise deserialize_error(
        f"`{where}` must be true, false, a list of payload keys, or "
        f'{{"include": [...]}} / {{"exclude": [...]}}; got {kind(raw)}'
    )


def _keys(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise deserialize_error(f"`{where}` must be an array of payload keys (strings)")
    for key in raw:
        parse_path(key)
    return tuple(raw)


def _with_vector(raw: object) -> bool:
    if isinstance(raw, list):
        raise deserialize_error(
            "`with_vector` must be true or false: collections here have one unnamed vector"
        )
    return as_bool(raw, "with_vector", False)


def _optional_filter(raw: object) -> Filter | None:
    return None if raw is None else parse_filter(raw)


def parse_retrieve(body: object) -> RetrieveRequest:
    """``POST /collections/{name}/points``: ``{"ids": [...], "with_payload", "with_vector"}``."""
    doc = as_object(body, "body")
    only_keys(doc, ("ids", "with_payload", "with_vector", "shard_key"), "")
    _no_shard_key(doc)
    if "ids" not in doc:
        raise deserialize_error("missing field `ids` (the list of point ids to fetch)")
    return RetrieveRequest(
        _ids(doc["ids"], "ids"),
        parse_with_payload(doc.get("with_payload"), ALL_PAYLOAD),
        _with_vector(doc.get("with_vector")),
    )


def parse_count(body: object) -> CountRequest:
    """``POST …/points/count``: ``{"filter", "exact"}`` (an empty or null body counts all)."""
    doc = as_object({} if body is None else body, "body")
    only_keys(doc, ("filter", "exact", "shard_key"), "")
    _no_shard_key(doc)
    return CountRequest(
        _optional_filter(doc.get("filter")), as_bool(doc.get("exact"), "exact", True)
    )


def _order_by(raw: object) -> OrderBy | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return OrderBy(raw, parse_path(raw))
    doc = as_object(raw, "order_by")
    only_keys(doc, ("key", "direction", "start_from"), "order_by")
    key = doc.get("key")
    if not isinstance(key, str):
        raise deserialize_error(f"`order_by.key` must be a payload key, got {kind(key)}")
    direction = doc.get("direction") or "asc"
    if direction not in ("asc", "desc"):
        raise deserialize_error(f'`order_by.direction` must be "asc" or "desc", got {direction!r}')
    start = doc.get("start_from")
    if start is not None and (isinstance(start, bool) or not isinstance(start, int | float)):
        raise deserialize_error(f"`order_by.start_from` must be a number, got {kind(start)}")
    sense: Literal["asc", "desc"] = "desc" if direction == "desc" else "asc"
    return OrderBy(key, parse_path(key), sense, None if start is None else float(start))


def parse_scroll(body: object) -> ScrollRequest:
    """``POST …/points/scroll``."""
    doc = as_object({} if body is None else body, "body")
    allowed = ("filter", "limit", "offset", "with_payload", "with_vector", "order_by", "shard_key")
    only_keys(doc, allowed, "")
    _no_shard_key(doc)
    order_by = _order_by(doc.get("order_by"))
    offset = doc.get("offset")
    if order_by is not None and offset is not None:
        raise wrong_input("`offset` cannot be used with `order_by`; use `order_by.start_from`")
    return ScrollRequest(
        filter=_optional_filter(doc.get("filter")),
        limit=as_count(doc.get("limit"), "limit", 10, low=1, high=LIMIT_MAX),
        offset=None if offset is None else parse_point_id(offset),
        with_payload=parse_with_payload(doc.get("with_payload"), ALL_PAYLOAD),
        with_vector=_with_vector(doc.get("with_vector")),
        order_by=order_by,
    )


_QUERY_KEYS = (
    "query", "limit", "offset", "filter", "with_payload", "with_vector", "params",
    "score_threshold", "using", "prefetch", "lookup_from", "shard_key",
)  # fmt: skip


def _query_target(raw: object, dim: int, where: str) -> tuple[FloatArray | None, PointId | None]:
    """The ``query`` field: ``{"nearest": v}`` or a bare ``v``; ``v`` a vector or a point id."""
    if isinstance(raw, dict):
        if "nearest" not in raw or len(raw) != 1:
            other = next((k for k in raw if k != "nearest"), "nearest")
            raise deserialize_error(
                f"`{where}.{other}` is not supported by this implementation; "
                'send {"nearest": [numbers]} or {"nearest": <point id>}'
            )
        raw, where = raw["nearest"], f"{where}.nearest"
    if raw is None:
        return None, None
    if isinstance(raw, list | dict):
        vector = parse_vector(raw, dim, where)
        return np.asarray(vector, dtype=np.float32), None
    return None, parse_point_id(raw)


def _params(raw: object, where: str) -> tuple[int | None, bool]:
    if raw is None:
        return None, False
    doc = as_object(raw, where)
    only_keys(doc, ("hnsw_ef", "exact", "indexed_only", "quantization", "acorn"), where)
    for ignored in ("quantization", "acorn"):
        if doc.get(ignored) is not None:
            raise wrong_input(f"`{where}.{ignored}` is not supported by this implementation")
    as_bool(doc.get("indexed_only"), f"{where}.indexed_only", False)
    ef = doc.get("hnsw_ef")
    hnsw_ef = None if ef is None else as_count(ef, f"{where}.hnsw_ef", 0, low=1, high=HNSW_EF_MAX)
    return hnsw_ef, as_bool(doc.get("exact"), f"{where}.exact", False)


def _score_threshold(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise deserialize_error(f"`{where}` must be a finite number, got {kind(raw)}")
    return float(raw)


def parse_query(body: object, dim: int, where: str = "") -> QueryRequest:
    """``POST …/points/query``; ``where`` prefixes field names (used by the batch form)."""
    doc = as_object(body, where or "body")
    at = f"{where}." if where else ""
    only_keys(doc, _QUERY_KEYS, where)
    _no_shard_key(doc)
    for name in ("prefetch", "lookup_from"):
        if doc.get(name) is not None:
            raise wrong_input(f"`{at}{name}` is not supported by this implementation")
    if doc.get("using") not in (None, ""):
        raise wrong_input(f"`{at}using`: this collection has one unnamed vector; leave `using` out")
    vector, nearest_id = _query_target(doc.get("query"), dim, f"{at}query")
    hnsw_ef, exact = _params(doc.get("params"), f"{at}params")
    return QueryRequest(
        vector=vector,
        nearest_id=nearest_id,
        limit=as_count(doc.get("limit"), f"{at}limit", 10, low=1, high=LIMIT_MAX),
        offset=as_count(doc.get("offset"), f"{at}offset", 0, low=0, high=OFFSET_MAX),
        filter=None if doc.get("filter") is None else parse_filter(doc["filter"], f"{at}filter"),
        with_payload=parse_with_payload(doc.get("with_payload"), NO_PAYLOAD, f"{at}with_payload"),
        with_vector=as_bool(doc.get("with_vector"), f"{at}with_vector", False),
        hnsw_ef=hnsw_ef,
        exact=exact,
        score_threshold=_score_threshold(doc.get("score_threshold"), f"{at}score_threshold"),
    )


def parse_query_batch(body: object, dim: int) -> tuple[QueryRequest, ...]:
    """``POST …/points/query/batch``: ``{"searches": [query bodies]}``."""
    doc = as_object(body, "body")
    only_keys(doc, ("searches",), "")
    searches = doc.get("searches")
    if not isinstance(searches, list):
        raise deserialize_error(
            f"`searches` must be an array of query requests, got {kind(searches)}"
        )
    _bounded(searches, "searches")
    return tuple(parse_query(s, dim, f"searches[{i}]") for i, s in enumerate(searches))


# --- back to JSON (forwarding an update to another peer) -------------------------------------


def update_to_json(op: UpsertPoints | DeletePoints) -> dict[str, Any]:
    """A body that :func:`parse_upsert` / :func:`parse_delete` read back to an equal op.

    Vectors are written as float32 values widened to float64, so the round trip is exact."""
    if isinstance(op, DeletePoints):
        return {"points": [id_to_json(p) for p in op.ids]}
    return {
        "batch": {
            "ids": [id_to_json(p) for p in op.ids],
            "vectors": op.vectors.astype(np.float64).tolist(),
            "payloads": list(op.payloads),
        }
    }


def with_query_vector(request: QueryRequest, vector: FloatArray) -> QueryRequest:
    """Turn a query by point id into a query by ``vector`` (the point's stored vector) that
    leaves the point itself out of the answer, as Qdrant does for the points a query names."""
    if request.nearest_id is None:
        return replace(request, vector=vector)
    skip = Filter(must_not=(HasId(frozenset([request.nearest_id])),))
    flt = skip if request.filter is None else Filter(must=(request.filter, skip))
    return replace(request, vector=vector, nearest_id=None, filter=flt)

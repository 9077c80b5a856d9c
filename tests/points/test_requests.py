"""Point requests parse as Qdrant's REST API reads them, and bad input gets a message that
says what to fix (Qdrant API reference, "Points"; issue 10's bad-input catalogue)."""

import math
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from refimpl.ids import PointId
from refimpl.points import (
    BadRequest,
    DeleteByFilter,
    DeletePoints,
    UpsertPoints,
    id_sort_key,
    id_to_json,
    parse_count,
    parse_delete,
    parse_filter,
    parse_point_id,
    parse_query,
    parse_query_batch,
    parse_retrieve,
    parse_scroll,
    parse_upsert,
    update_to_json,
)

U = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_list_and_batch_upsert_forms_give_the_same_operation() -> None:
    """``{"points": [...]}`` and ``{"batch": {...}}`` describe the same upsert."""
    listed = parse_upsert(
        {"points": [{"id": 1, "vector": [1, 2], "payload": {"a": 1}},
                    {"id": U, "vector": [3.5, 4]}]}, 2)  # fmt: skip
    batch = parse_upsert(
        {"batch": {"ids": [1, U], "vectors": [[1, 2], [3.5, 4]], "payloads": [{"a": 1}, None]}},
        2,
    )
    for op in (listed, batch):
        assert op.ids == (1, uuid.UUID(U))
        assert op.vectors.dtype == np.float32
        assert op.vectors.tolist() == [[1.0, 2.0], [3.5, 4.0]]
        assert op.payloads == ({"a": 1}, None)


def test_update_to_json_round_trips() -> None:
    """A forwarded update parses back to the same operation."""
    op = parse_upsert({"batch": {"ids": [2**64 - 1, U], "vectors": [[0.1, 0.2], [1, 2]]}}, 2)
    back = parse_upsert(update_to_json(op), 2)
    assert back.ids == op.ids and back.payloads == op.payloads
    assert np.array_equal(back.vectors, op.vectors)
    delete = parse_delete({"points": [3, U]})
    assert isinstance(delete, DeletePoints)
    assert parse_delete(update_to_json(delete)) == delete


def test_ids_normalise_and_order_ints_before_uuids() -> None:
    """Ids: u64 or UUID in any spelling; ints sort first, then UUIDs (Qdrant's id order)."""
    simple = U.replace("-", "").upper()
    assert parse_point_id(simple) == uuid.UUID(U)
    assert id_to_json(parse_point_id(simple)) == U
    assert parse_point_id(2**64 - 1) == 2**64 - 1
    ids: list[PointId] = [uuid.UUID(int=5), 10, uuid.UUID(int=1), 2]
    assert sorted(ids, key=id_sort_key) == [2, 10, uuid.UUID(int=1), uuid.UUID(int=5)]


def test_query_forms() -> None:
    """``{"nearest": v}``, a bare vector, a point id and no query at all are all accepted."""
    wrapped = parse_query({"query": {"nearest": [1, 0]}, "limit": 3, "params": {"hnsw_ef": 64}}, 2)
    bare = parse_query({"query": [1, 0], "params": {"exact": True}, "score_threshold": 0.5}, 2)
    assert wrapped.vector is not None and wrapped.vector.tolist() == [1.0, 0.0]
    assert (wrapped.limit, wrapped.hnsw_ef, wrapped.exact) == (3, 64, False)
    assert bare.vector is not None and (bare.exact, bare.score_threshold) == (True, 0.5)
    assert parse_query({"query": {"nearest": 17}}, 2).nearest_id == 17
    empty = parse_query({}, 2)
    assert (empty.vector, empty.nearest_id, empty.limit, empty.with_payload.enabled) == (
        None, None, 10, False)  # fmt: skip
    batch = parse_query_batch({"searches": [{"query": [1, 1]}, {"query": [0, 1], "limit": 1}]}, 2)
    assert [q.limit for q in batch] == [10, 1]


def test_read_defaults() -> None:
    """Retrieve and scroll return payloads by default, never vectors; count is exact."""
    retrieve = parse_retrieve({"ids": [1]})
    assert retrieve.with_payload.enabled and not retrieve.with_vector
    scroll = parse_scroll({"limit": 5, "offset": U})
    assert (scroll.limit, scroll.offset, scroll.with_payload.enabled) == (5, uuid.UUID(U), True)
    assert parse_count(None).exact is True
    selector = parse_scroll({"with_payload": {"exclude": ["b.c"]}}).with_payload
    assert selector.select({"a": 1, "b": {"c": 2, "d": 3}}) == {"a": 1, "b": {"d": 3}}
    assert isinstance(parse_delete({"filter": {"must": []}}), DeleteByFilter)


def _upsert(body: Any) -> UpsertPoints:
    return parse_upsert(body, 4)


def _query(body: Any) -> Any:
    return parse_query(body, 4)


def _point(**fields: Any) -> dict[str, Any]:
    return {"points": [{"id": 1, "vector": [0.0, 1.0, 2.0, 3.0], **fields}]}


BAD: list[tuple[str, Callable[[Any], object], Any, str]] = [
    (
        "short vector",
        _upsert,
        _point(vector=[1.0, 2.0, 3.0]),
        "Wrong input: Vector dimension error: expected dim: 4, got 3",
    ),
    (
        "NaN",
        _upsert,
        _point(vector=[1.0, math.nan, 0.0, 0.0]),
        "Wrong input: `points[0].vector[1]` is nan: every vector component must be a finite number "
        "that fits a 32-bit float (no NaN, no infinity)",
    ),
    ("infinity", _upsert, _point(vector=[math.inf, 0.0, 0.0, 0.0]), "`points[0].vector[0]` is inf"),
    ("too big for f32", _upsert, _point(vector=[1e39, 0.0, 0.0, 0.0]), "fits a 32-bit float"),
    (
        "string component",
        _upsert,
        _point(vector=["1", 0.0, 0.0, 0.0]),
        "Json deserialize error: `points[0].vector[0]` must be a number, got a string",
    ),
    ("bool component", _upsert, _point(vector=[True, 0.0, 0.0, 0.0]), "got a boolean"),
    (
        "negative id",
        _upsert,
        _point(id=-1),
        "Json deserialize error: Unable to parse point id -1: an integer id must be in [0, 2^64 - 1]",
    ),
    (
        "numeric string id",
        _upsert,
        _point(id="7"),
        'Unable to parse point id "7": expected an unsigned integer or a UUID string',
    ),
    ("float id", _upsert, _point(id=1.0), "Unable to parse point id 1.0"),
    ("bool id", _upsert, _point(id=True), "Unable to parse point id True"),
    ("id too big", _upsert, _point(id=2**64), "Unable to parse point id 18446744073709551616"),
    (
        "unknown point field",
        _upsert,
        _point(vectors=[1]),
        "Json deserialize error: unknown field `vectors` at `points[0]`, expected one of `id`, "
        "`vector`, `payload`",
    ),
    ("missing vector", _upsert, {"points": [{"id": 1}]}, "missing field `vector` at `points[0]`"),
    (
        "payload not object",
        _upsert,
        _point(payload=[1]),
        "`points[0].payload` must be a JSON object or null, got an array",
    ),
    (
        "named vector",
        _upsert,
        _point(vector={"image": [1.0, 2.0, 3.0, 4.0]}),
        "unknown field `image` at `points[0].vector`",
    ),
    ("both forms", _upsert, {"points": [], "batch": {}}, "send exactly one of `points`"),
    (
        "batch length",
        _upsert,
        {"batch": {"ids": [1, 2], "vectors": [[0.0] * 4]}},
        "Wrong input: `batch` has 2 ids but 1 vectors; they must match",
    ),
    (
        "batch payloads",
        _upsert,
        {"batch": {"ids": [1], "vectors": [[0.0] * 4], "payloads": []}},
        "`batch.payloads` must be null or an array of 1 payloads",
    ),
    ("body not object", _upsert, [1, 2], "expected an object at `body`, got an array"),
    ("too many points", _upsert, {"points": [{}] * 100_001}, "send at most 100000 per request"),
    ("shard key", _upsert, {"points": [], "shard_key": "a"}, "custom sharding"),
    (
        "zero limit",
        _query,
        {"limit": 0},
        "Validation error in JSON body: [limit: value 0 invalid, must be 1 or larger]",
    ),
    ("negative limit", _query, {"limit": -5}, "[limit: value -5 invalid, must be 1 or larger]"),
    ("huge limit", _query, {"limit": 10**20}, "must be at most 100000"),
    ("string limit", _query, {"limit": "10"}, "`limit` must be an integer, got a string"),
    ("negative offset", _query, {"offset": -1}, "[offset: value -1 invalid, must be 0 or larger]"),
    (
        "unknown query field",
        _query,
        {"vector": [1.0]},
        "Json deserialize error: unknown field `vector`, expected one of `query`",
    ),
    ("recommend", _query, {"query": {"recommend": {}}}, "`query.recommend` is not supported"),
    ("query dim", _query, {"query": {"nearest": [1.0]}}, "expected dim: 4, got 1"),
    (
        "bad ef",
        _query,
        {"query": [0.0] * 4, "params": {"hnsw_ef": 0}},
        "[params.hnsw_ef: value 0 invalid, must be 1 or larger]",
    ),
    ("bad exact", _query, {"params": {"exact": "yes"}}, "`params.exact` must be true or false"),
    ("nan threshold", _query, {"score_threshold": math.nan}, "`score_threshold` must be a finite"),
    ("using", _query, {"using": "image"}, "leave `using` out"),
    (
        "batch query dim",
        lambda b: parse_query_batch(b, 4),
        {"searches": [{"query": [0.0] * 4}, {"query": [1.0]}]},
        "expected dim: 4, got 1",
    ),
    (
        "batch unknown",
        lambda b: parse_query_batch(b, 4),
        {"searches": [{"limt": 1}]},
        "unknown field `limt` at `searches[0]`",
    ),
    ("scroll offset", parse_scroll, {"offset": "nope"}, 'Unable to parse point id "nope"'),
    (
        "scroll order+offset",
        parse_scroll,
        {"order_by": "a", "offset": 1},
        "use `order_by.start_from`",
    ),
    ("retrieve no ids", parse_retrieve, {}, "missing field `ids`"),
    (
        "retrieve with_payload",
        parse_retrieve,
        {"ids": [], "with_payload": 3},
        "`with_payload` must be true, false, a list of payload keys",
    ),
    ("delete both", parse_delete, {"points": [1], "filter": {}}, "send exactly one of"),
    ("count exact", parse_count, {"exact": 1}, "`exact` must be true or false, got an integer"),
]

BAD_FILTERS: list[tuple[str, Any, str]] = [
    ("unknown clause", {"mustt": []}, "unknown field `mustt` at `filter`, expected one of `must`"),
    (
        "float match",
        {"must": [{"key": "a", "match": {"value": 1.5}}]},
        "`filter.must[0].match.value` must be a string, an integer or a boolean, got a number "
        "(match compares exact values; use `range` for numbers)",
    ),
    (
        "two tests",
        {"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]},
        "needs exactly one of match, range, values_count, is_empty, is_null; got 2",
    ),
    ("no test", {"must": [{"key": "a"}]}, "got 0"),
    (
        "mixed any",
        {"should": [{"key": "a", "match": {"any": [1, "x"]}}]},
        "must hold only strings or only integers",
    ),
    (
        "string range",
        {"must": {"key": "a", "range": {"gt": "2020-01-01"}}},
        "`filter.must.range.gt` must be a number, got a string (datetime ranges are not supported",
    ),
    ("bad key", {"must": [{"key": "a..b", "match": {"value": 1}}]}, "Bad payload key `a..b`"),
    (
        "geo",
        {"must": [{"key": "loc", "geo_radius": {}}]},
        "geo_radius` conditions are not supported",
    ),
    ("unknown condition", {"must": [{"foo": 1}]}, "unknown condition at `filter.must[0]`"),
    ("bad has_id", {"must": [{"has_id": ["x"]}]}, 'Unable to parse point id "x"'),
    (
        "min_should zero",
        {"min_should": {"conditions": [], "min_count": 0}},
        "min_count: value 0 invalid, must be 1 or larger",
    ),
    ("filter not object", [], "expected an object at `filter`, got an array"),
]


@pytest.mark.parametrize(
    ("parser", "body", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_request_message(parser: Callable[[Any], object], body: Any, message: str) -> None:
    """Each malformed request raises BadRequest whose message names the problem."""
    with pytest.raises(BadRequest) as caught:
        parser(body)
    assert message in str(caught.value)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(("body", "message"), [b[1:] for b in BAD_FILTERS],
                         ids=[b[0] for b in BAD_FILTERS])  # fmt: skip
def test_bad_filter_message(body: Any, message: str) -> None:
    """A malformed filter is refused with the path of the bad part."""
    with pytest.raises(BadRequest) as caught:
        parse_filter(body)
    assert message in str(caught.value)

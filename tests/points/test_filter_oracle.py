"""Filter semantics agree with the official client's local mode (Qdrant docs, "Filtering").

Hypothesis generates payloads (scalars, arrays, nulls, nested objects) and filters
(must/should/must_not/min_should, match value/any/except, range, values_count, is_empty,
is_null, has_id, nested); the set of matching ids from :func:`refimpl.points.evaluate` must
equal the set the client's local mode (``QdrantClient(":memory:")``) returns.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient, models

from refimpl.points import NO_PAYLOAD, evaluate, parse_filter, parse_with_payload

SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0]),
    st.booleans(),
    st.sampled_from(["red", "green", "", "blue"]),
    st.none(),
)
VALUES = st.one_of(
    SCALARS,
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
        ),
        max_leaves=4,
    ),
)
PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "a": VALUES,
        "b": SCALARS,
        "n": st.dictionaries(st.sampled_from(["x", "y"]), VALUES, max_size=2) | VALUES,
        "l": st.lists(st.dictionaries(st.sampled_from(["x", "y"]), SCALARS), max_size=3) | VALUES,
    },
)
KEYS = st.sampled_from(["a", "b", "n.x", "n.y", "l", "l[].x", "a[]", "missing", "n[0]"])
MATCH_VALUES = st.one_of(
    st.integers(-3, 3), st.booleans(), st.sampled_from(["red", "green", "", "blue"])
)
VARIANTS = st.one_of(
    st.lists(st.integers(-3, 3), max_size=3),
    st.lists(st.sampled_from(["red", "green", "", "blue"]), max_size=3),
)
BOUND = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.5, -1.5]))


def _field(key: str, test: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, **test}


FIELD_CONDITIONS = st.builds(
    _field,
    KEYS,
    st.one_of(
        st.builds(lambda v: {"match": {"value": v}}, MATCH_VALUES),
        st.builds(lambda v: {"match": {"any": v}}, VARIANTS),
        st.builds(lambda v: {"match": {"except": v}}, VARIANTS),
        st.builds(
            lambda bounds: {"range": bounds},
            st.fixed_dictionaries({}, optional={b: BOUND for b in ("gt", "gte", "lt", "lte")}),
        ),
        st.builds(
            lambda a, b: {"values_count": {"gte": a, "lt": b}},
            st.none() | st.integers(0, 3),
            st.none() | st.integers(0, 3),
        ),
        st.builds(lambda v: {"is_empty": v}, st.booleans()),
        st.builds(lambda v: {"is_null": v}, st.booleans()),
    ),
)
OTHER_CONDITIONS = st.one_of(
    st.builds(lambda k: {"is_empty": {"key": k}}, KEYS),
    st.builds(lambda k: {"is_null": {"key": k}}, KEYS),
    st.builds(lambda ids: {"has_id": ids}, st.lists(st.integers(0, 12), max_size=4)),
)


def _filters(condition: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly one condition in one clause (selective but rarely empty), sometimes several."""
    single = st.builds(
        lambda name, c: {name: [c]}, st.sampled_from(["must", "should", "must_not"]), condition
    )
    clause = st.lists(condition, max_size=2)
    several = st.builds(
        lambda must, should, must_not: {"must": must, "should": should, "must_not": must_not},
        clause,
        clause,
        clause,
    )
    with_min = st.builds(
        lambda cs, n: {"min_should": {"conditions": cs, "min_count": n}},
        st.lists(condition, min_size=1, max_size=3),
        st.integers(1, 2),
    )
    return st.one_of(single, single, several, with_min)


LEAF = st.one_of(FIELD_CONDITIONS, OTHER_CONDITIONS)
NESTED = st.builds(
    lambda f: {"nested": {"key": "l", "filter": f}},
    _filters(
        st.builds(
            _field,
            st.sampled_from(["x", "y"]),
            st.builds(lambda v: {"match": {"value": v}}, MATCH_VALUES),
        )
    ),
)
FILTERS = st.recursive(
    _filters(st.one_of(LEAF, NESTED)),
    lambda inner: _filters(st.one_of(LEAF, inner)),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def oracle() -> Iterator[QdrantClient]:
    client = QdrantClient(":memory:")
    yield client
    client.close()


def _load(client: QdrantClient, payloads: list[dict[str, Any]]) -> None:
    if client.collection_exists("f"):
        client.delete_collection("f")
    client.create_collection("f", models.VectorParams(size=2, distance=models.Distance.DOT))
    points = [
        models.PointStruct(id=i, vector=[1.0, 0.0], payload=p) for i, p in enumerate(payloads)
    ]
    client.upsert("f", points)


def _oracle_ids(client: QdrantClient, flt: dict[str, Any]) -> set[int]:
    records, _ = client.scroll("f", scroll_filter=models.Filter.model_validate(flt), limit=100)
    return {int(r.id) for r in records}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
    database=None,
)
@given(payloads=st.lists(PAYLOADS, min_size=6, max_size=12), flt=FILTERS)
def test_filter_matches_the_local_mode_oracle(
    oracle: QdrantClient, payloads: list[dict[str, Any]], flt: dict[str, Any]
) -> None:
    """Our evaluation selects exactly the ids the client's local mode selects."""
    _load(oracle, payloads)
    ours = {i for i, p in enumerate(payloads) if evaluate(parse_filter(flt), i, p)}
    assert ours == _oracle_ids(oracle, flt)


def test_array_field_matches_when_any_element_matches() -> None:
    """A condition on an array field holds when one element satisfies it (Qdrant "Filtering")."""
    flt = parse_filter({"must": [{"key": "tags", "match": {"value": "b"}}]})
    assert evaluate(flt, 1, {"tags": ["a", "b"]}) is True
    assert evaluate(flt, 1, {"tags": ["a", "c"]}) is False
    rng = parse_filter({"must": [{"key": "p.q", "range": {"gte": 2, "lt": 3}}]})
    assert evaluate(rng, 1, {"p": {"q": [1, 2.5]}}) is True
    assert evaluate(rng, 1, {"p": {"q": [1, 3]}}) is False


def test_types_are_not_coerced() -> None:
    """``true`` does not match ``1`` and a float payload never matches an integer value."""
    one = parse_filter({"must": [{"key": "v", "match": {"value": 1}}]})
    assert [evaluate(one, 0, {"v": v}) for v in (1, True, 1.0, "1")] == [True, False, False, False]


SELECTOR_KEYS = st.lists(
    st.sampled_from(["a", "b", "n.x", "n", "l[].x", "l[]", "a[].y", "missing", "l.x"]),
    min_size=1,
    max_size=3,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture], derandomize=True, database=None)  # fmt: skip
@given(payloads=st.lists(PAYLOADS, min_size=3, max_size=6), keys=SELECTOR_KEYS,
       mode=st.sampled_from(["include", "exclude"]))  # fmt: skip
def test_payload_selectors_match_the_local_mode_oracle(
    oracle: QdrantClient, payloads: list[dict[str, Any]], keys: list[str], mode: str
) -> None:
    """``with_payload`` include/exclude lists cut payloads as the client's local mode does."""
    _load(oracle, payloads)
    selector = (models.PayloadSelectorInclude(include=keys) if mode == "include"
                else models.PayloadSelectorExclude(exclude=keys))  # fmt: skip
    records, _ = oracle.scroll("f", limit=100, with_payload=selector)
    ours = parse_with_payload({mode: keys}, NO_PAYLOAD)
    assert [ours.select(p) for p in payloads] == [r.payload for r in records]

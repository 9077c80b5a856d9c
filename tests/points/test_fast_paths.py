"""The fast paths of bulk ingest give exactly what the plain paths give (issue 6).

``decode_json`` (orjson where it agrees with the standard library) must return what
``json.loads`` returns and fail where it fails, with the same message; the numpy check of a
column-wise ``batch`` must accept and reject the same vectors as the element-wise check, and
name the same component in its message.
"""

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.points import BadRequest, decode_json, parse_upsert, parse_vector

F32_MAX = float(np.finfo(np.float32).max)

json_scalars = (
    st.none()
    | st.booleans()
    # Past orjson's 64-bit range too: those must stay exact Python ints.
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    """``("ok", value)`` or ``("error", exception type and message)``."""
    try:
        return "ok", decode(raw)
    except (ValueError, RecursionError) as exc:
        return "error", (isinstance(exc, json.JSONDecodeError), str(exc))


def same_json(a: Any, b: Any) -> bool:
    """Equal values of equal types all the way down (1 and 1.0 differ), NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=300)
@given(json_values, st.sampled_from([{}, {"separators": (",", ":")}, {"indent": 1}]))
def test_decode_json_returns_what_json_loads_returns(value: Any, style: dict[str, Any]) -> None:
    raw = json.dumps(value, **style).encode()
    assert same_json(decode_json(raw), json.loads(raw))


@settings(max_examples=300)
@given(st.binary(max_size=60) | st.text(max_size=60).map(str.encode))
def test_decode_json_fails_like_json_loads_on_anything(raw: bytes) -> None:
    mine, reference = outcome(decode_json, raw), outcome(json.loads, raw)
    assert mine[0] == reference[0]
    if mine[0] == "ok":
        assert same_json(mine[1], reference[1])
    else:
        assert mine[1] == reference[1]


@pytest.mark.parametrize(
    "raw",
    [
        b"18446744073709551616",  # 2**64: orjson would return a float
        b"[-9223372036854775809]",  # below -2**63
        b'{"a":-9223372036854775809,"b":[9223372036854775808]}',
        b'{"id": 123456789012345678901234567890}',
        b"[NaN, Infinity, -Infinity]",  # the standard library's extension, kept
        b"1e400",  # orjson refuses, json.loads says inf
        b'"\\ud800"',  # a lone surrogate
        b"\xef\xbb\xbf{}",  # a byte order mark
        '{"a": 1}'.encode("utf-16"),  # not UTF-8: json.loads detects it
        b"[0.0010487965773791075, 12345678901234567890.5]",
        b"[1, 2",
        b"",
        b'{"a": 1,}',
        b"\xff",
    ],
)
def test_decode_json_edge_cases_match_json_loads(raw: bytes) -> None:
    mine, reference = outcome(decode_json, raw), outcome(json.loads, raw)
    assert mine[0] == reference[0]
    assert same_json(mine[1], reference[1]) if mine[0] == "ok" else mine[1] == reference[1]


def batch_of(vectors: list[list[Any]]) -> dict[str, Any]:
    return {"batch": {"ids": list(range(len(vectors))), "vectors": vectors}}


def row_by_row(vectors: list[list[Any]], dim: int) -> np.ndarray[Any, Any]:
    """The plain path: every row through parse_vector, then one float32 array."""
    rows = [parse_vector(v, dim, f"batch.vectors[{i}]") for i, v in enumerate(vectors)]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)


def error_of(call: Any) -> str | None:
    try:
        call()
    except BadRequest as exc:
        return str(exc)
    return None


components = (
    st.floats(width=64, allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([True, "1", None, 3.5e38, -3.5e38, F32_MAX, 1e-45])
)


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=6), st.data())
def test_batch_block_check_agrees_with_row_by_row(dim: int, data: st.DataObject) -> None:
    """Mostly plain floats with now and then a bad or unusual component anywhere: the same
    array, or the same message naming the same ``batch.vectors[i][j]``."""
    n = data.draw(st.integers(min_value=1, max_value=8))
    plain = st.floats(min_value=-1e6, max_value=1e6, width=32)
    cell = st.one_of(plain, plain, plain, components)
    vectors = [[data.draw(cell) for _ in range(dim)] for _ in range(n)]
    expected_error = error_of(lambda: row_by_row(vectors, dim))
    assert error_of(lambda: parse_upsert(batch_of(vectors), dim)) == expected_error
    if expected_error is None:
        got = parse_upsert(batch_of(vectors), dim).vectors
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, row_by_row(vectors, dim))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (math.nan, "`batch.vectors[200][77]` is nan: every vector component must be a finite"),
        (-math.inf, "`batch.vectors[200][77]` is -inf"),
        (1e39, "`batch.vectors[200][77]` is 1e+39"),
        (True, "`batch.vectors[200][77]` must be a number, got a boolean"),
        ("0.5", "`batch.vectors[200][77]` must be a number, got a string"),
        (None, "`batch.vectors[200][77]` must be a number, got null"),
        (10**400, "`batch.vectors[200][77]` is 1000"),  # an int no float can hold
    ],
)
def test_one_bad_component_in_a_big_batch_is_named(bad: object, message: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(256, 128)).tolist()
    vectors[200][77] = bad
    with pytest.raises(BadRequest) as info:
        parse_upsert(batch_of(vectors), 128)
    assert message in str(info.value)
    assert info.value.status_code == 400


def test_a_row_of_the_wrong_length_in_a_big_batch_is_a_dimension_error() -> None:
    vectors = np.ones((256, 8)).tolist()
    vectors[9] = vectors[9][:7]
    with pytest.raises(BadRequest, match="Vector dimension error: expected dim: 8, got 7"):
        parse_upsert(batch_of(vectors), 8)


def test_a_big_batch_decoded_by_decode_json_is_the_exact_float32_block() -> None:
    rng = np.random.default_rng(5)
    block = rng.normal(size=(256, 16)).astype(np.float32)
    body = json.dumps(batch_of(block.tolist())).encode()
    op = parse_upsert(decode_json(body), 16)
    np.testing.assert_array_equal(op.vectors, block)
    assert op.ids == tuple(range(256))


def test_int_components_are_still_numbers() -> None:
    op = parse_upsert(batch_of([[1, 2.5], [0, -3]]), 2)
    np.testing.assert_array_equal(op.vectors, np.array([[1, 2.5], [0, -3]], dtype=np.float32))


def test_an_integer_too_long_to_convert_is_malformed_json() -> None:
    """``json.loads`` raises a bare ValueError for an integer of more than 4300 digits (which
    the REST layer would answer with a 500): decode_json makes it a JSONDecodeError."""
    with pytest.raises(json.JSONDecodeError, match="a number has more than 4300 digits"):
        decode_json(b'{"points": [{"id": ' + b"7" * 5000 + b"}]}")


def test_a_huge_int_component_in_a_point_is_a_clear_error() -> None:
    """10**400 fits no float: a 400, not an OverflowError (points form and batch form)."""
    body = {"points": [{"id": 1, "vector": [0.5, 10**400]}]}
    with pytest.raises(BadRequest, match=r"`points\[0\]\.vector\[1\]` is 1000"):
        parse_upsert(body, 2)

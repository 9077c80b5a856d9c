"""Payload filters: Qdrant's ``filter`` object, parsed once into typed values, evaluated purely.

Rules (Qdrant's filtering semantics, checked against the official client's local mode):

* A filter has clauses ``must`` (every condition holds), ``must_not`` (none holds), ``should``
  (at least one holds; an empty list is no constraint) and ``min_should`` (at least
  ``min_count`` of its conditions hold). A clause is one condition or a list. A filter may
  itself be a condition, so filters nest.
* A *field condition* names a payload ``key`` (a JSON path, see :mod:`.jsonpath`) and exactly
  one test: ``match`` (``{"value": v}``, ``{"any": [...]}``, ``{"except": [...]}``), ``range``
  (``gt``/``gte``/``lt``/``lte`` over numbers), ``values_count``, ``is_empty`` or ``is_null``.
  A missing key never matches ``match`` or ``range``.
* Arrays: a condition on a field holding an array holds when **any element** satisfies it.
* Types are not coerced: ``true`` does not match ``1``, a float payload value never matches an
  integer ``match``, a string never falls in a ``range``.
* ``is_empty`` holds when the key is missing, null or ``[]``; ``is_null`` when the value is
  null (or an array holding a null). ``has_id`` holds for the listed point ids. ``nested``
  applies a filter to each object of an array and holds if one object passes as a whole.

Theory of operation: :func:`parse_filter` checks the JSON and builds frozen dataclasses (paths
pre-split, id lists turned into sets), raising :class:`BadRequest` with the location of the
first problem. :func:`evaluate` is a direct recursive reading of the rules above.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from refimpl.ids import PointId
from refimpl.points._json import as_object as _object
from refimpl.points._json import kind as _kind
from refimpl.points._json import only_keys as _only_keys
from refimpl.points.errors import BadRequest, deserialize_error, validation_error
from refimpl.points.ids import parse_point_id
from refimpl.points.jsonpath import Step, parse_path, values_at

Scalar = str | int | bool
"""What ``match`` compares with: Qdrant's ``ValueVariants`` (no floats, no null)."""


@dataclass(frozen=True, slots=True)
class MatchValue:
    """``{"value": v}``: a value equal to ``v`` (same JSON type)."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class MatchAny:
    """``{"any": [...]}``: a value equal to one of these (all strings or all integers)."""

    any: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class MatchExcept:
    """``{"except": [...]}``: a non-null value equal to none of these."""

    excluded: tuple[Scalar, ...]


Match = MatchValue | MatchAny | MatchExcept


@dataclass(frozen=True, slots=True)
class Range:
    """Bounds over numbers; a missing bound is no constraint."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class FieldCondition:
    """A test on the values under one payload key. Exactly one test is set."""

    key: str
    path: tuple[Step, ...]
    match: Match | None = None
    range: Range | None = None
    values_count: Range | None = None
    is_empty: bool | None = None
    is_null: bool | None = None


@dataclass(frozen=True, slots=True)
class IsEmpty:
    """``{"is_empty": {"key": k}}``."""

    key: str
    path: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class IsNull:
    """``{"is_null": {"key": k}}``."""

    key: str
    path: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class HasId:
    """``{"has_id": [ids]}``."""

    ids: frozenset[PointId]


@dataclass(frozen=True, slots=True)
class Nested:
    """``{"nested": {"key": k, "filter": f}}``: ``f`` holds for one object of the array ``k``."""

    key: str
    path: tuple[Step, ...]
    filter: "Filter"


@dataclass(frozen=True, slots=True)
class MinShould:
    """``{"conditions": [...], "min_count": n}``."""

    conditions: "tuple[Condition, ...]"
    min_count: int


@dataclass(frozen=True, slots=True)
class Filter:
    """A whole filter; empty clauses are no constraint."""

    must: "tuple[Condition, ...]" = ()
    should: "tuple[Condition, ...]" = ()
    must_not: "tuple[Condition, ...]" = ()
    min_should: MinShould | None = None


Condition = FieldCondition | IsEmpty | IsNull | HasId | Nested | Filter

# --- parsing ------------------------------------------------------------------------------

_FILTER_KEYS = ("must", "should", "must_not", "min_should")
_FIELD_TESTS = ("match", "range", "values_count", "is_empty", "is_null")
_UNSUPPORTED_TESTS = ("geo_bounding_box", "geo_radius", "geo_polygon", "datetime_range")


def parse_filter(raw: object, where: str = "filter") -> Filter:
    """Parse a JSON filter object, or raise :class:`BadRequest` naming the bad part."""
    body = _object(raw, where)
    _only_keys(body, _FILTER_KEYS, where)
    clauses = {name: _clause(body.get(name), f"{where}.{name}") for name in _FILTER_KEYS[:3]}
    min_should = None
    if body.get("min_should") is not None:
        min_should = _min_should(body["min_should"], f"{where}.min_should")
    return Filter(clauses["must"], clauses["should"], clauses["must_not"], min_should)


def _clause(raw: object, where: str) -> tuple[Condition, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(parse_condition(item, f"{where}[{i}]") for i, item in enumerate(raw))
    return (parse_condition(raw, where),)


def _min_should(raw: object, where: str) -> MinShould:
    body = _object(raw, where)
    _only_keys(body, ("conditions", "min_count"), where)
    count = body.get("min_count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise deserialize_error(f"`{where}.min_count` must be an integer, got {_kind(count)}")
    if count < 1:
        raise validation_error(f"{where}.min_count: value {count} invalid, must be 1 or larger")
    conditions = body.get("conditions")
    if not isinstance(conditions, list):
        raise deserialize_error(f"`{where}.conditions` must be an array of conditions")
    return MinShould(_clause(conditions, f"{where}.conditions"), count)


def parse_condition(raw: object, where: str) -> Condition:
    """Parse one condition; the keys present decide which kind it is."""
    body = _object(raw, where)
    if "key" in body:
        return _field_condition(body, where)
    if "has_id" in body:
        _only_keys(body, ("has_id",), where)
        ids = body["has_id"]
        if not isinstance(ids, list):
            raise deserialize_error(f"`{where}.has_id` must be an array of point ids")
        return HasId(frozenset(parse_point_id(i) for i in ids))
    for name, kind in (("is_empty", IsEmpty), ("is_null", IsNull)):
        if name in body:
            _only_keys(body, (name,), where)
            inner = _object(body[name], f"{where}.{name}")
            _only_keys(inner, ("key",), f"{where}.{name}")
            key = _key(inner, f"{where}.{name}")
            return kind(key, parse_path(key))
    if "nested" in body:
        _only_keys(body, ("nested",), where)
        inner = _object(body["nested"], f"{where}.nested")
        _only_keys(inner, ("key", "filter"), f"{where}.nested")
        key = _key(inner, f"{where}.nested")
        path_text = key[:-2] if key.endswith("[]") and len(key) > 2 else key
        return Nested(
            key, parse_path(path_text), parse_filter(inner.get("filter"), f"{where}.nested.filter")
        )
    if set(body) <= set(_FILTER_KEYS):
        return parse_filter(body, where)
    raise deserialize_error(
        f"unknown condition at `{where}` with fields {sorted(body)}; expected a field "
        "condition with `key`, or `has_id`, `is_empty`, `is_null`, `nested`, or a nested filter"
    )


def _key(body: Mapping[str, Any], where: str) -> str:
    key = body.get("key")
    if not isinstance(key, str):
        raise deserialize_error(f"`{where}.key` must be a string payload key, got {_kind(key)}")
    return key


def _field_condition(body: Mapping[str, Any], where: str) -> FieldCondition:
    for name in _UNSUPPORTED_TESTS:
        if body.get(name) is not None:
            raise deserialize_error(
                f"`{where}.{name}` conditions are not supported by this implementation; "
                "use match, range, values_count, is_empty or is_null"
            )
    _only_keys(body, ("key", *_FIELD_TESTS, *_UNSUPPORTED_TESTS), where)
    key = _key(body, where)
    tests = [name for name in _FIELD_TESTS if body.get(name) is not None]
    if len(tests) != 1:
        raise BadRequest(
            f"Validation error in JSON body: [{where}: a field condition needs exactly one of "
            f"match, range, values_count, is_empty, is_null; got {len(tests)}]"
        )
    test, value = tests[0], body[tests[0]]
    path = parse_path(key)
    if test == "match":
        return FieldCondition(key, path, match=_match(value, f"{where}.match"))
    if test == "range":
        return FieldCondition(key, path, range=_range(value, f"{where}.range", integers=False))
    if test == "values_count":
        counts = _range(value, f"{where}.values_count", integers=True)
        return FieldCondition(key, path, values_count=counts)
    if not isinstance(value, bool):
        raise deserialize_error(f"`{where}.{test}` must be true or false, got {_kind(value)}")
    if test == "is_empty":
        return FieldCondition(key, path, is_empty=value)
    return FieldCondition(key, path, is_null=value)


def _scalar(raw: object, where: str) -> Scalar:
    if isinstance(raw, str | int):  # bool is an int
        return raw
    raise deserialize_error(
        f"`{where}` must be a string, an integer or a boolean, got {_kind(raw)}"
        + (
            " (match compares exact values; use `range` for numbers)"
            if isinstance(raw, float)
            else ""
        )
    )


def _variants(raw: object, where: str) -> tuple[Scalar, ...]:
    """An ``any``/``except`` list: all strings or all integers (Qdrant's ``AnyVariants``)."""
    if not isinstance(raw, list):
        raise deserialize_error(f"`{where}` must be an array, got {_kind(raw)}")
    strings = all(isinstance(v, str) for v in raw)
    integers = all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
    if not (strings or integers):
        raise deserialize_error(f"`{where}` must hold only strings or only integers")
    return tuple(raw)


def _match(raw: object, where: str) -> Match:
    body = _object(raw, where)
    _only_keys(body, ("value", "any", "except"), where)
    if len(body) != 1:
        raise deserialize_error(f"`{where}` needs exactly one of `value`, `any`, `except`")
    if "value" in body:
        return MatchValue(_scalar(body["value"], f"{where}.value"))
    if "any" in body:
        return MatchAny(_variants(body["any"], f"{where}.any"))
    return MatchExcept(_variants(body["except"], f"{where}.except"))


def _range(raw: object, where: str, *, integers: bool) -> Range:
    body = _object(raw, where)
    _only_keys(body, ("gt", "gte", "lt", "lte"), where)
    bounds: dict[str, float] = {}
    for name, value in body.items():
        if value is None:
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if integers:
            ok = ok and isinstance(value, int) and value >= 0
        if not ok or math.isnan(value):
            expected = "a non-negative integer" if integers else "a number"
            hint = (
                ""
                if integers or not isinstance(value, str)
                else (" (datetime ranges are not supported; store numbers, e.g. Unix seconds)")
            )
            raise deserialize_error(
                f"`{where}.{name}` must be {expected}, got {_kind(value)}{hint}"
            )
        bounds[name] = value
    return Range(**bounds)


# --- evaluation ---------------------------------------------------------------------------


def evaluate(flt: Filter, point_id: PointId | None, payload: Mapping[str, Any] | None) -> bool:
    """True when the point with ``point_id`` and ``payload`` passes ``flt``.

    ``point_id`` is ``None`` inside a ``nested`` filter, where ``has_id`` never holds."""
    data = payload if payload is not None else {}
    if not all(holds(c, point_id, data) for c in flt.must):
        return False
    if any(holds(c, point_id, data) for c in flt.must_not):
        return False
    if flt.should and not any(holds(c, point_id, data) for c in flt.should):
        return False
    if flt.min_should is not None:
        passed = sum(holds(c, point_id, data) for c in flt.min_should.conditions)
        if passed < flt.min_should.min_count:
            return False
    return True


def holds(condition: Condition, point_id: PointId | None, payload: Mapping[str, Any]) -> bool:
    """True when one condition holds for the point."""
    match condition:
        case FieldCondition():
            return _field_holds(condition, payload)
        case IsEmpty(path=path):
            return _is_empty(payload, path)
        case IsNull(path=path):
            return _is_null(payload, path)
        case HasId(ids=ids):
            return point_id is not None and point_id in ids
        case Nested(path=path, filter=inner):
            return any(
                evaluate(inner, None, element) for element in _nested_elements(payload, path)
            )
        case Filter():
            return evaluate(condition, point_id, payload)
        case _:
            assert_never(condition)


def _field_holds(cond: FieldCondition, payload: Mapping[str, Any]) -> bool:
    if cond.match is not None:
        return any(_match_holds(cond.match, v) for v in values_at(payload, cond.path))
    if cond.range is not None:
        return any(_in_range(cond.range, v) for v in values_at(payload, cond.path))
    if cond.values_count is not None:
        return _count_holds(cond.values_count, values_at(payload, cond.path, flat=False))
    if cond.is_empty is not None:
        return _is_empty(payload, cond.path) == cond.is_empty
    assert cond.is_null is not None, "a parsed field condition has exactly one test"
    return _is_null(payload, cond.path) == cond.is_null


def same_value(stored: object, wanted: Scalar) -> bool:
    """Exact match without Python's coercions (``True == 1``, ``1 == 1.0``)."""
    if isinstance(stored, bool) != isinstance(wanted, bool) or isinstance(stored, float):
        return False
    return stored == wanted


def _match_holds(match: Match, value: object) -> bool:
    match match:
        case MatchValue(value=wanted):
            return same_value(value, wanted)
        case MatchAny(any=options):
            return any(same_value(value, o) for o in options)
        case MatchExcept(excluded=excluded):
            return value is not None and not any(same_value(value, o) for o in excluded)
        case _:
            assert_never(match)


def _in_range(bounds: Range, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (
        (bounds.gt is None or value > bounds.gt)
        and (bounds.gte is None or value >= bounds.gte)
        and (bounds.lt is None or value < bounds.lt)
        and (bounds.lte is None or value <= bounds.lte)
    )


def _count_holds(bounds: Range, values: list[Any]) -> bool:
    """``values_count``: one of the values found (an array counts its elements) fits."""
    counts = [0 if v is None else len(v) if isinstance(v, list) else 1 for v in values] or [0]
    return any(_in_range(bounds, c) for c in counts)


def _is_empty(payload: Mapping[str, Any], path: tuple[Step, ...]) -> bool:
    return all(v is None or v == [] for v in values_at(payload, path, flat=False))


def _is_null(payload: Mapping[str, Any], path: tuple[Step, ...]) -> bool:
    return any(
        v is None or (isinstance(v, list) and any(e is None for e in v))
        for v in values_at(payload, path, flat=False)
    )


def _nested_elements(payload: Mapping[str, Any], path: tuple[Step, ...]) -> list[Any]:
    """The objects of the arrays found at ``path`` (a nested filter sees each alone)."""
    return [
        element
        for value in values_at(payload, path, flat=False)
        if isinstance(value, list)
        for element in value
        if isinstance(element, dict)
    ]

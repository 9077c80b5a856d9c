"""Small helpers for reading JSON bodies with precise error messages (internal).

:func:`decode_json` is the one JSON decoder of request bodies (REST and p2p): ``orjson`` (a
compiled parser, about five times faster than the standard library on a batch of vectors) for
the common case, and the standard library's :func:`json.loads` whenever ``orjson`` could answer
differently. The two differ only where ``orjson`` is stricter or narrower: it rejects the
``NaN``/``Infinity`` literals, a byte order mark, lone surrogates and non-UTF-8 encodings, and
it turns an integer outside the 64-bit range into a float. A rejected body is decoded again by
the standard library, and a body holding a digit run long enough to be such an integer goes
to the standard library directly, so the result (or the error and its message) is always the
one :func:`json.loads` gives.
"""

import json
import sys
from collections.abc import Mapping
from typing import Any

import orjson

from refimpl.points.errors import BadRequest, deserialize_error, validation_error

_NUMBER_SHAPE = bytes(
    ord("0") if c in b"0123456789" else ord(".") if c in b".eE" else ord(" ") for c in range(256)
)
"""Maps every digit to ``0``, what may precede a fraction or exponent to ``.``, the rest to a
space: in the mapped body, a possibly wide integer is 19 zeros after a space."""
_WIDE = b"0" * 19


def _may_hold_wide_int(raw: bytes) -> bool:
    """Whether ``raw`` may hold an integer of 19 digits or more: it may be outside
    ``orjson``'s range (-2**63 .. 2**64-1), whose ints it returns as floats. (Found with one
    ``translate`` and one substring search, both C loops: a regex is ten times slower.)"""
    shape = raw.translate(_NUMBER_SHAPE)
    return shape.startswith(_WIDE) or b" " + _WIDE in shape


def decode_json(raw: bytes) -> Any:
    """``json.loads(raw)``, faster: the same value, or the same exception — except that an
    integer too long for Python to convert (over ``sys.get_int_max_str_digits()`` digits,
    a bare ``ValueError`` from ``json.loads``) is a :class:`json.JSONDecodeError` too, so
    every caller that handles malformed JSON handles it."""
    if not _may_hold_wide_int(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard library accepts it (NaN, a BOM, ...) or words the error
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError:
        limit = sys.get_int_max_str_digits()
        text = raw.decode("utf-8", "replace")
        raise json.JSONDecodeError(f"a number has more than {limit} digits", text, 0) from None


def decode_body(raw: bytes) -> Any:
    """A request body's JSON value (``None`` for an empty body); malformed JSON is a
    :class:`BadRequest` that says so."""
    if not raw.strip():
        return None
    try:
        return decode_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"Json deserialize error: body is not valid JSON: {exc}") from None


def kind(raw: object) -> str:
    """The JSON type of ``raw`` as a message spells it (``an integer``, ``null``…)."""
    if raw is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "an object"}  # fmt: skip
    return names.get(type(raw), type(raw).__name__)


def as_object(raw: object, where: str) -> Mapping[str, Any]:
    """``raw`` if it is a JSON object, else a :class:`BadRequest` naming ``where``."""
    if not isinstance(raw, dict):
        raise deserialize_error(f"expected an object at `{where}`, got {kind(raw)}")
    return raw


def only_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Reject the first field of ``raw`` that is not in ``allowed``, naming it."""
    for name in raw:
        if name not in allowed:
            expected = ", ".join(f"`{a}`" for a in allowed)
            where_text = f" at `{where}`" if where else ""
            raise deserialize_error(
                f"unknown field `{name}`{where_text}, expected one of {expected}"
            )


def as_bool(raw: object, where: str, default: bool) -> bool:
    """A JSON boolean (``null`` or missing means ``default``)."""
    if raw is None:
        return default
    if not isinstance(raw, bool):
        raise deserialize_error(f"`{where}` must be true or false, got {kind(raw)}")
    return raw


def as_count(raw: object, where: str, default: int, *, low: int, high: int) -> int:
    """A JSON integer within ``[low, high]`` (``null`` or missing means ``default``)."""
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise deserialize_error(f"`{where}` must be an integer, got {kind(raw)}")
    if raw < low:
        raise validation_error(f"{where}: value {raw} invalid, must be {low} or larger")
    if raw > high:
        raise validation_error(f"{where}: value {raw} invalid, must be at most {high}")
    return raw

"""Small helpers for reading JSON bodies with precise error messages (internal)."""

from collections.abc import Mapping
from typing import Any

from refimpl.points.errors import deserialize_error, validation_error


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

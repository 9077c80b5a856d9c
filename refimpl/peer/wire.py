"""Frame bodies: Raft messages and peer requests as JSON (pure, no I/O).

Rules:

* A RAFT frame's body is ``{"type": "<message class name>", "fields": {...}}``. Fields are
  encoded from the frozen dataclasses of :mod:`refimpl.raft.messages` by their type hints:
  ints and bools as JSON numbers and booleans, ``bytes`` as base64 text, enums by member name,
  tuples and frozensets as lists, nested dataclasses (entries, snapshots) as objects.
* Decoding is driven by the same type hints and checks every value's type, so a body that is
  valid JSON but not a valid message raises :class:`WireError` — never ``KeyError`` or
  ``TypeError`` from deep inside. The transport counts a WireError like a bad frame.
* REQUEST / RESPONSE bodies are plain JSON objects with a ``"kind"`` key
  (see :mod:`refimpl.peer.node` for the kinds); :func:`decode_object` only checks that the
  body is a JSON object. Bodies are decoded by :func:`refimpl.points.decode_json` (``orjson``
  where it gives the standard library's answer).

Theory of operation: one recursive encoder and one recursive, type-directed decoder cover every
message type, so adding a field to a Raft message needs no change here.
"""

import base64
import binascii
import dataclasses
import enum
import json
import types
import typing
from typing import Any

from refimpl.points import decode_json
from refimpl.raft import Message

__all__ = ["WireError", "decode_message", "decode_object", "encode_message", "encode_object"]

_MESSAGE_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in typing.get_args(Message)}


class WireError(Exception):
    """A frame body that is not a valid message or request."""


def _to_json(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, frozenset):
        return sorted(_to_json(v) for v in value)
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    assert value is None or isinstance(value, int | str | float), f"cannot encode {value!r}"
    return value


def _from_json(tp: Any, value: Any) -> Any:
    while hasattr(tp, "__supertype__"):  # NewType (PeerId, Term, ...) -> int
        tp = tp.__supertype__
    origin = typing.get_origin(tp)
    if origin is typing.Union or isinstance(tp, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _from_json(arg, value)
            except WireError:
                continue
        raise WireError(f"{value!r} matches none of {tp}")
    if tp is type(None):
        if value is not None:
            raise WireError(f"expected null, got {value!r}")
        return None
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            raise WireError(f"expected {tp.__name__}, got {value!r}")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"expected int, got {value!r}")
        return value
    if tp is bytes:
        if not isinstance(value, str):
            raise WireError(f"expected base64 text, got {value!r}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WireError(f"bad base64: {exc}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if not isinstance(value, str) or value not in tp.__members__:
            raise WireError(f"{value!r} is not a {tp.__name__}")
        return tp[value]
    if origin in (tuple, frozenset):
        if not isinstance(value, list):
            raise WireError(f"expected a list, got {value!r}")
        item_type = typing.get_args(tp)[0]
        return origin(_from_json(item_type, v) for v in value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_from_json(tp, value)
    raise WireError(f"no decoder for type {tp}")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field types of a message class (resolving them is slow: once per class)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _dataclass_from_json(cls: type[Any], value: Any) -> Any:
    if not isinstance(value, dict):
        raise WireError(f"expected an object for {cls.__name__}, got {value!r}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in value:
            kwargs[f.name] = _from_json(hints[f.name], value[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise WireError(f"{cls.__name__}.{f.name} is missing")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise WireError(f"cannot build {cls.__name__}: {exc}") from None


def encode_message(message: Message) -> bytes:
    """Return the JSON body of a RAFT frame carrying ``message``."""
    body = {"type": type(message).__name__, "fields": _to_json(message)}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_message(body: bytes) -> Message:
    """Parse a RAFT frame body; raises WireError on anything that is not a Raft message."""
    obj = decode_object(body)
    name = obj.get("type")
    cls = _MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireError(f"unknown message type {obj.get('type')!r}")
    message: Message = _dataclass_from_json(cls, obj.get("fields"))
    return message


def encode_object(obj: dict[str, Any]) -> bytes:
    """Return the JSON body of a REQUEST or RESPONSE frame."""
    return json.dumps(obj, separators=(",", ":")).encode()


def decode_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object body; raises WireError if it is not UTF-8 JSON holding an object."""
    try:
        body.decode("utf-8")  # UTF-8 only, as peers send it
        obj = decode_json(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise WireError(f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("body is not a JSON object")
    return obj

"""Operations and states to bytes and back, so they can travel in Raft entries and snapshots.

Rules:

* the encoding is JSON with sorted keys and no spaces, so equal values give equal bytes on
  every peer and every run; each document carries a format version;
* enums are written as their values, mapping keys as strings, tuples as lists, ``None`` as
  ``null``; peer ids stay below 2**53 so they are exact in any JSON reader;
* decoding checks every field's type and refuses unknown or missing fields with
  :class:`CodecError`: a malformed entry is reported, never half-applied.

Theory of operation: one generic walker driven by the dataclasses' type hints converts values
in each direction; :data:`refimpl.consensus.operations.OPERATION_TYPES` names the operation
classes, and an operation is wrapped as ``{"v": 1, "type": <class name>, "op": {...}}``.
"""

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from refimpl.consensus.model import ClusterState
from refimpl.consensus.operations import OPERATION_TYPES, Operation

FORMAT_VERSION = 1
ENCODED_BYTES_MAX = 64 * 1024 * 1024
"""A limit on one encoded operation or snapshot."""

_BY_NAME: Mapping[str, type[Operation]] = {cls.__name__: cls for cls in OPERATION_TYPES}


class CodecError(ValueError):
    """Bytes that do not decode to a valid operation or state."""


def to_json_value(value: object) -> Any:
    """Turn a value built from our dataclasses into plain JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_key_to_json(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise CodecError(f"cannot encode a {type(value).__name__}")


def _key_to_json(key: object) -> str:
    if isinstance(key, enum.Enum):
        return str(key.value)
    if isinstance(key, str | int) and not isinstance(key, bool):
        return str(key)
    raise CodecError(f"cannot encode a mapping key of type {type(key).__name__}")


def from_json_value(tp: Any, data: object) -> Any:
    """Build a value of type ``tp`` from plain JSON data, checking types on the way."""
    if hasattr(tp, "__supertype__"):  # a NewType such as PeerId
        return from_json_value(tp.__supertype__, data)
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return _from_union(tp, data)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _from_dataclass(tp, data)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise CodecError(f"{data!r} is not a valid {tp.__name__}") from None
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        return tuple(from_json_value(item_type, v) for v in _expect(list, data))
    if origin in (Mapping, dict):
        key_type, value_type = typing.get_args(tp)
        return {
            _key_from_json(key_type, k): from_json_value(value_type, v)
            for k, v in _expect(dict, data).items()
        }
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)  # JSON writes 1.0 as 1 in some encoders
    if tp in (str, bool, float):
        return _expect(tp, data)
    if tp is int:
        if isinstance(data, bool):
            raise CodecError(f"expected an integer, got {data!r}")
        return _expect(int, data)
    raise CodecError(f"cannot decode type {tp!r}")


def _expect(tp: type, data: object) -> Any:
    if not isinstance(data, tp):
        raise CodecError(f"expected {tp.__name__}, got {type(data).__name__}")
    return data


def _from_union(tp: Any, data: object) -> Any:
    arms = [a for a in typing.get_args(tp) if a is not type(None)]
    if data is None and len(arms) < len(typing.get_args(tp)):
        return None
    if len(arms) != 1:
        raise CodecError(f"cannot decode an untagged union {tp!r}")
    return from_json_value(arms[0], data)


def _from_dataclass(tp: type, data: object) -> Any:
    fields = {f.name: f for f in dataclasses.fields(tp)}
    raw = _expect(dict, data)
    unknown = set(raw) - set(fields)
    if unknown:
        raise CodecError(f"{tp.__name__} has no field {sorted(unknown)[0]!r}")
    hints = _type_hints(tp)
    kwargs = {}
    for name, f in fields.items():
        if name in raw:
            kwargs[name] = from_json_value(hints[name], raw[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise CodecError(f"{tp.__name__} is missing field {name!r}")
    return tp(**kwargs)


@functools.cache
def _type_hints(tp: type) -> dict[str, Any]:
    # Resolving annotations is slow and the answer never changes for a class.
    return typing.get_type_hints(tp)


def _key_from_json(tp: Any, key: str) -> Any:
    base = tp.__supertype__ if hasattr(tp, "__supertype__") else tp
    if base is int:
        try:
            return tp(int(key))
        except ValueError:
            raise CodecError(f"mapping key {key!r} is not an integer") from None
    return from_json_value(tp, key)


def _dumps(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _loads(data: bytes) -> dict[str, Any]:
    if len(data) > ENCODED_BYTES_MAX:
        raise CodecError(f"encoded document is {len(data)} bytes, limit {ENCODED_BYTES_MAX}")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CodecError(f"not valid JSON: {error}") from None
    raw: dict[str, Any] = _expect(dict, document)
    if raw.get("v") != FORMAT_VERSION:
        raise CodecError(f"unsupported format version {raw.get('v')!r}")
    return raw


def encode_operation(operation: Operation) -> bytes:
    """Stable bytes for one operation."""
    name = type(operation).__name__
    assert name in _BY_NAME, f"{name} is not an operation"
    return _dumps({"v": FORMAT_VERSION, "type": name, "op": to_json_value(operation)})


def decode_operation(data: bytes) -> Operation:
    """The operation encoded by :func:`encode_operation`; :class:`CodecError` if malformed."""
    raw = _loads(data)
    type_name = raw.get("type")
    cls = _BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise CodecError(f"unknown operation type {raw.get('type')!r}")
    try:
        operation: Operation = from_json_value(cls, raw.get("op"))
    except TypeError as error:
        raise CodecError(str(error)) from None
    return operation


def encode_state(state: ClusterState) -> bytes:
    """Stable bytes for a whole cluster state (a Raft snapshot's payload)."""
    return _dumps({"v": FORMAT_VERSION, "state": to_json_value(state)})


def decode_state(data: bytes) -> ClusterState:
    """The state encoded by :func:`encode_state`; :class:`CodecError` if malformed."""
    state: ClusterState = from_json_value(ClusterState, _loads(data).get("state"))
    return state


__all__ = [
    "FORMAT_VERSION",
    "CodecError",
    "decode_operation",
    "decode_state",
    "encode_operation",
    "encode_state",
    "from_json_value",
    "to_json_value",
]

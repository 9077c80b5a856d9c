"""Payload keys: the JSON paths a filter names (``city``, ``address.city``, ``tags[]``,
``items[0].price``, ``"key.with.dots"``).

Rules (as Qdrant and its client's local mode read them):

* a path is a chain of *steps*: a key (letters, digits, ``_`` and ``-``, or any text in double
  quotes), optionally followed by ``[]`` (every element of an array) or ``[n]`` (element ``n``);
  steps are separated by ``.``;
* a key step only descends into an object: ``a.b`` does not look inside an array ``a``
  (write ``a[].b`` for that); an index or ``[]`` step only descends into an array;
* when the whole path is consumed and the value found is an array, a *flat* read yields its
  elements one by one (so a condition on an array field holds when any element satisfies it);
  a non-flat read yields the array itself (``is_empty`` and ``values_count`` need that).

Theory of operation: :func:`parse_path` turns the text into a tuple of steps once, when the
filter is parsed; :func:`values_at` walks a payload along them with a small recursion.
"""

from dataclasses import dataclass
from typing import Any

from refimpl.points.errors import deserialize_error

_KEY_EXTRA = "_-"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a path: ``key`` (an object member) or ``index`` (``None`` with
    ``key is None`` means every element, ``[]``)."""

    key: str | None = None
    index: int | None = None


def _bad(path: str, why: str) -> Exception:
    return deserialize_error(f"Bad payload key `{path}`: {why}")


def _read_key(path: str, pos: int) -> tuple[str, int]:
    """Read a bare or quoted key starting at ``pos``; return it and the next position."""
    if path.startswith('"', pos):
        end = path.find('"', pos + 1)
        if end == -1:
            raise _bad(path, "a quoted key has no closing quote")
        return path[pos + 1 : end], end + 1
    end = pos
    while end < len(path) and (path[end].isalnum() or path[end] in _KEY_EXTRA):
        end += 1
    if end == pos:
        raise _bad(path, f"expected a key at position {pos}")
    return path[pos:end], end


def _read_brackets(path: str, pos: int, steps: list[Step]) -> int:
    """Read any ``[]`` / ``[n]`` steps starting at ``pos``; return the next position."""
    while path.startswith("[", pos):
        end = path.find("]", pos)
        if end == -1:
            raise _bad(path, "a '[' has no closing ']'")
        inner = path[pos + 1 : end]
        if inner == "":
            steps.append(Step())
        elif inner.isascii() and inner.isdigit():
            steps.append(Step(index=int(inner)))
        else:
            raise _bad(path, f"'[{inner}]' is neither '[]' nor an array index")
        pos = end + 1
    return pos


def parse_path(path: str) -> tuple[Step, ...]:
    """Split a payload key into steps, or raise :class:`BadRequest`."""
    if not isinstance(path, str) or path == "":
        raise _bad(str(path), "a payload key must be a non-empty string")
    steps: list[Step] = []
    pos = 0
    while True:
        key, pos = _read_key(path, pos)
        steps.append(Step(key=key))
        pos = _read_brackets(path, pos, steps)
        if pos == len(path):
            return tuple(steps)
        if path[pos] != "." or pos + 1 == len(path):
            raise _bad(path, f"unexpected {path[pos:]!r}; separate keys with '.'")
        pos += 1


def values_at(payload: Any, steps: tuple[Step, ...], flat: bool = True) -> list[Any]:
    """Every value the path selects in ``payload`` (empty when it selects nothing)."""
    found: list[Any] = []
    _walk(payload, steps, 0, flat, found)
    return found


def _walk(data: Any, steps: tuple[Step, ...], at: int, flat: bool, found: list[Any]) -> None:
    if at == len(steps):
        if flat and isinstance(data, list):
            found.extend(data)
        else:
            found.append(data)
        return
    step = steps[at]
    if step.key is not None:
        if isinstance(data, dict) and step.key in data:
            _walk(data[step.key], steps, at + 1, flat, found)
    elif isinstance(data, list):
        if step.index is None:
            for item in data:
                _walk(item, steps, at + 1, flat, found)
        elif step.index < len(data):
            _walk(data[step.index], steps, at + 1, flat, found)

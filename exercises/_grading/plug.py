"""Plug a learner's function into refimpl in place of the reference one, and take it out again.

Rules:

* The learner's file is a whole copy of a refimpl module (the starter). It is imported under a
  private name; the function that owns the exercise region is taken from it by the same dotted
  path (``lookup`` or ``RaftNode._on_request_vote``).
* Before that function runs inside refimpl, the learner module's *non-function* globals that
  also exist in the refimpl module (classes, enums, constants, sentinels) are rebound to
  refimpl's objects. Otherwise the copy's own ``class Message`` would be a different type from
  refimpl's, and ``isinstance`` or ``match`` in the learner's code would never succeed. Module-
  level *functions* of the copy are kept, so helpers the learner edits or adds are used.
* A module-level function is replaced in every loaded ``refimpl`` module (and every grading
  module) that holds the reference function object, so ``from x import f`` copies are plugged
  too. A method is replaced on refimpl's class; helper methods the learner added to the copy's
  class are added too. Everything is restored on exit, even after a timeout.
* What cannot be reached this way (a function captured in a dict at import time, a closure) is
  not pluggable; the selfcheck finds it because the untouched starter then passes a check.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exercises._grading.regions import Region

_PATCHED_MODULE_PREFIXES = ("refimpl", "exercises._checks")


class LearnerImportError(Exception):
    """The learner's file does not import, or lacks the exercise's function."""


@dataclass(frozen=True, slots=True)
class Plugged:
    """What is plugged in while a grading run is active."""

    region: Region
    learner_path: Path
    module: types.ModuleType
    function: Callable[..., Any]
    reference: Callable[..., Any]
    """The reference implementation, for checks that need it as an oracle."""


def _unwrap(raw: object) -> Callable[..., Any]:
    func = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
    assert callable(func), f"{raw!r} is not callable"
    return func


def load_learner_module(path: Path, region: Region) -> types.ModuleType:
    """Import the learner's copy of ``region``'s module from ``path`` under a private name."""
    name = f"exercises._learner.{region.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LearnerImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise LearnerImportError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _resolve(module: types.ModuleType, qualname: str) -> tuple[Any, str]:
    """(owner, attribute name): the module or class that holds the last part of ``qualname``."""
    *outer, last = qualname.split(".")
    owner: Any = module
    for part in outer:
        owner = getattr(owner, part)
    return owner, last


@contextmanager
def plugged(region: Region, learner_path: Path) -> Iterator[Plugged]:
    """Swap the learner's version of ``region``'s function into refimpl for the ``with`` body."""
    target = importlib.import_module(region.module)
    learner = load_learner_module(learner_path, region)
    ref_owner, attr = _resolve(target, region.qualname)
    try:
        learner_owner, _ = _resolve(learner, region.qualname)
        raw_new = vars(learner_owner)[attr]
    except (AttributeError, KeyError) as exc:
        raise LearnerImportError(f"{learner_path} has no {region.qualname}") from exc
    raw_old = vars(ref_owner)[attr]
    undo: list[Callable[[], None]] = []

    def set_attr(obj: Any, name: str, value: object) -> None:
        had, old = name in vars(obj), vars(obj).get(name)
        setattr(obj, name, value)
        undo.append(lambda: setattr(obj, name, old) if had else delattr(obj, name))

    try:
        if isinstance(ref_owner, type):
            for name, value in vars(learner_owner).items():
                if name not in vars(ref_owner) and callable(_maybe_unwrap(value)):
                    set_attr(ref_owner, name, value)  # a helper method the learner added
            set_attr(ref_owner, attr, raw_new)
        else:
            for module in list(sys.modules.values()):
                if module is None or not module.__name__.startswith(_PATCHED_MODULE_PREFIXES):
                    continue
                for name, value in list(vars(module).items()):
                    if value is raw_old:
                        set_attr(module, name, raw_new)
        _rebind_globals(learner, target)
        yield Plugged(region, learner_path, learner, _unwrap(raw_new), _unwrap(raw_old))
    finally:
        for action in reversed(undo):
            action()
        sys.modules.pop(learner.__name__, None)


def _maybe_unwrap(value: object) -> object:
    return value.__func__ if isinstance(value, staticmethod | classmethod) else value


def _rebind_globals(learner: types.ModuleType, target: types.ModuleType) -> None:
    """Point the copy's classes and constants at refimpl's (see the module docstring)."""
    reference = vars(target)
    for name, value in list(vars(learner).items()):
        if name.startswith("__") or name not in reference:
            continue
        if isinstance(value, types.FunctionType | types.ModuleType):
            continue
        setattr(learner, name, reference[name])

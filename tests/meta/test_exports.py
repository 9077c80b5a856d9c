"""Every refimpl subpackage declares ``__all__`` and every name in it imports (a tested surface)."""

import importlib

import pytest

from tests.meta._repo import REFIMPL


def subpackages() -> list[str]:
    names = ["refimpl"]
    for init in sorted(REFIMPL.rglob("__init__.py")):
        rel = init.parent.relative_to(REFIMPL.parent)
        if rel.parts != ("refimpl",) and "__pycache__" not in rel.parts:
            names.append(".".join(rel.parts))
    return names


def test_there_are_subpackages_to_check() -> None:
    """The discovery must see at least the package root."""
    assert "refimpl" in subpackages()


@pytest.mark.parametrize("name", subpackages())
def test_subpackage_declares_all_and_exports_import(name: str) -> None:
    """``__all__`` exists, is a list of unique strings, and each name resolves."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, list | tuple), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ has duplicates"
    missing = [item for item in exported if not hasattr(module, item)]
    assert missing == [], f"{name}.__all__ names objects that do not exist: {missing}"

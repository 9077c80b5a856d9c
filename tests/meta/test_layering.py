"""The core packages are sans-IO (ARCHITECTURE.md, "Layers"): no event loop, no driver, no sim."""

import ast

import pytest

from tests.meta._repo import CORE_PACKAGES, REFIMPL, imported_modules, python_files

FORBIDDEN = ("trio", "anyio", "asyncio", "socket", "refimpl.peer", "refimpl.api", "refimpl.sim")


def forbidden_imports(source: str) -> list[str]:
    """Return 'line: module' for each import of a forbidden module in ``source``."""
    tree = ast.parse(source)
    bad = []
    for line, module in imported_modules(tree):
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN):
            bad.append(f"{line}: {module}")
    return bad


def test_checker_flags_a_forbidden_import() -> None:
    """The layering check itself must catch ``import trio`` and ``from refimpl.peer import x``."""
    assert forbidden_imports("import trio\nfrom refimpl.peer.x import y\nimport os\n") == [
        "1: trio",
        "2: refimpl.peer.x",
    ]


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_package_is_sans_io(package: str) -> None:
    """A core package never imports trio, sockets, the peer, the API or the simulator."""
    folder = REFIMPL / package
    if not folder.exists():
        pytest.skip(f"refimpl/{package} does not exist yet (nothing to check)")
    problems = {
        str(path.relative_to(REFIMPL)): bad
        for path in python_files(folder)
        if (bad := forbidden_imports(path.read_text()))
    }
    assert problems == {}

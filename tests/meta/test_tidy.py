"""Readable by budget (ARCHITECTURE.md, principle 12): no function in refimpl exceeds 70 lines."""

import ast

from tests.meta._repo import REFIMPL, python_files

MAX_FUNCTION_LINES = 70


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Names and lengths of the functions in ``source`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append(f"{node.name} ({length} lines)")
    return found


def test_checker_measures_function_length() -> None:
    """The tidy check itself must flag a long function and pass a short one."""
    long_body = "def f():\n" + "    x = 1\n" * 80
    assert long_functions(long_body) == ["f (81 lines)"]
    assert long_functions("def g():\n    return 1\n") == []


def test_no_function_in_refimpl_is_longer_than_the_budget() -> None:
    """Every function in refimpl/ fits in 70 lines."""
    offenders = {
        str(path.relative_to(REFIMPL)): bad
        for path in python_files(REFIMPL)
        if (bad := long_functions(path.read_text()))
    }
    assert offenders == {}

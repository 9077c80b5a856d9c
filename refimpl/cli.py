"""The ``refimpl`` command.

Subcommands are contributed by the packages that own them (the simulator, the peer, the
exercise grader); each provides ``add_subcommand(subparsers)`` which registers a parser whose
``handler`` default is called with the parsed arguments and returns the exit code.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="refimpl",
        description="A teaching reference implementation of Qdrant's distributed mode.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    version = subparsers.add_parser("version", help="print the version and exit")
    version.set_defaults(handler=_print_version)
    from refimpl.peer.cli import add_subcommands as add_peer_and_cluster
    from refimpl.sim.cli import add_subcommand as add_sim

    add_peer_and_cluster(subparsers)
    add_sim(subparsers)
    _add_grade(subparsers)
    return parser


def _add_grade(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``refimpl grade``: the exercise grader lives in ``exercises/`` at the repository root."""
    if Path("exercises/grade.py").is_file() and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # the learner runs `refimpl grade` from the repo root
    try:
        from exercises.grade import add_subcommand as add_grade
    except ImportError:
        grade = subparsers.add_parser("grade", help="grade the exercises (run from the repo root)")
        grade.set_defaults(handler=_grade_unavailable)
        return
    add_grade(subparsers)


def _grade_unavailable(args: argparse.Namespace) -> int:
    print(
        "refimpl grade: the exercises/ folder is not importable from here; "
        "run it from the repository root (or use `python -m exercises.grade`)",
        file=sys.stderr,
    )
    return 2


def _print_version(args: argparse.Namespace) -> int:
    from refimpl import __version__

    print(f"refimpl {__version__}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``refimpl`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())

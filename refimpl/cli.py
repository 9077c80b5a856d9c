"""The ``refimpl`` command.

Subcommands are contributed by the packages that own them (the simulator, the peer, the
exercise grader); each provides ``add_subcommand(subparsers)`` which registers a parser whose
``handler`` default is called with the parsed arguments and returns the exit code.
"""

import argparse
import sys
from collections.abc import Callable, Sequence

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
    return parser


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

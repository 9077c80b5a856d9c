"""Command-line entry points: ``refimpl peer`` and ``refimpl cluster up|status``.

Rules:

* ``refimpl peer [--uri URI] [--bootstrap URI] [--config-path FILE]`` takes the spec's flags
  (and, as Qdrant, the environment variables ``QDRANT_URI`` / ``QDRANT_BOOTSTRAP``). Bad flags,
  a bad config or a storage it cannot use exit with status 2 (usage) or 1 (start-up) and a
  one-line message naming the problem, never a traceback.
* ``refimpl cluster up --peers N`` starts a local cluster (see :mod:`refimpl.launcher`);
  ``refimpl cluster status [--watch]`` prints its table.

Theory of operation: :func:`add_subcommands` registers the parsers on the top-level ``refimpl``
parser (the lead wires it into :mod:`refimpl.cli`); ``python -m refimpl.peer.cli`` runs the same
commands without that wiring.
"""

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_subcommands", "main"]


def add_subcommands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register ``peer`` and ``cluster`` (with ``up`` and ``status``)."""
    peer = subparsers.add_parser("peer", help="run one peer (Qdrant's --uri / --bootstrap flags)")
    peer.add_argument("--uri", default=os.environ.get("QDRANT_URI"),
                      help="this peer's p2p URI, e.g. http://10.0.0.1:6335 (required on the first peer)")  # fmt: skip
    peer.add_argument("--bootstrap", default=os.environ.get("QDRANT_BOOTSTRAP"),
                      help="p2p URI of any running peer to join through")  # fmt: skip
    peer.add_argument("--config-path", type=Path, help="YAML config file (Qdrant's key names)")
    peer.set_defaults(handler=_run_peer)

    cluster = subparsers.add_parser("cluster", help="a local cluster of peer processes")
    commands = cluster.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    up = commands.add_parser("up", help="start N peers on 127.0.0.1 and stream their logs")
    up.add_argument("--peers", type=_positive, default=3, help="number of peers (default 3)")
    up.add_argument("--base-port", type=_port, default=6333,
                    help="REST port of peer 0; peer i uses BASE+10i (REST) and BASE+10i+2 (p2p)")  # fmt: skip
    up.add_argument("--data-dir", type=Path, default=Path(".cluster"), help="storage folders")
    up.add_argument("--tick-period-ms", type=_positive, default=100, help="Raft tick (default 100)")
    up.add_argument("--api-key", default=os.environ.get("QDRANT__SERVICE__API_KEY"),
                    help="REST API key every peer requires (service.api_key)")  # fmt: skip
    up.add_argument("--p2p-secret", default=os.environ.get("QDRANT__CLUSTER__P2P__SECRET"),
                    help="shared secret the peers' p2p port requires (cluster.p2p.secret)")  # fmt: skip
    up.set_defaults(handler=_cluster_up)
    status = commands.add_parser("status", help="print the cluster table")
    status.add_argument("--data-dir", type=Path, default=Path(".cluster"))
    status.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
    status.add_argument("--api-key", default=os.environ.get("QDRANT__SERVICE__API_KEY"),
                        help="REST API key of the cluster, if it requires one")  # fmt: skip
    status.set_defaults(handler=_cluster_status)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65000:
        raise argparse.ArgumentTypeError(f"port {value} leaves no room for more peers")
    return value


def _check_uri(flag: str, uri: str | None) -> str | None:
    from refimpl.peer.tcp import parse_uri

    if uri is None:
        return None
    try:
        parse_uri(uri)
    except ValueError as exc:
        raise SystemExit(f"error: {flag}: {exc}") from None
    return uri


def _run_peer(args: argparse.Namespace) -> int:
    import trio

    from refimpl.config import ConfigError, load_settings
    from refimpl.peer.identity import IdentityError
    from refimpl.peer.runner import StartupError, run_peer

    try:
        uri, bootstrap = _check_uri("--uri", args.uri), _check_uri("--bootstrap", args.bootstrap)
        settings = load_settings(args.config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if (uri or bootstrap) and not settings.cluster.enabled:
        print("error: --uri/--bootstrap need distributed mode: set cluster.enabled: true "
              "(or QDRANT__CLUSTER__ENABLED=true)", file=sys.stderr)  # fmt: skip
        return 2
    level = {"TRACE": "DEBUG", "WARN": "WARNING"}.get(settings.log_level, settings.log_level)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    expected = (StartupError, IdentityError, OSError)
    try:
        trio.run(run_peer, settings, uri, bootstrap)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ExceptionGroup as group:
        matched, rest = group.split(expected)
        if rest is not None or matched is None:
            raise
        for leaf in _leaves(matched):
            print(f"error: {leaf}", file=sys.stderr)
        return 1
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The non-group exceptions inside a (nested) exception group."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _cluster_up(args: argparse.Namespace) -> int:
    from refimpl.launcher import cluster_up

    secrets = {"api_key": args.api_key, "p2p_secret": args.p2p_secret}
    return cluster_up(args.peers, args.base_port, args.data_dir, args.tick_period_ms, **secrets)


def _cluster_status(args: argparse.Namespace) -> int:
    from refimpl.launcher import cluster_status

    return cluster_status(args.data_dir, watch=args.watch, api_key=args.api_key)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m refimpl.peer.cli``: the same commands without the top-level wiring."""
    parser = argparse.ArgumentParser(prog="refimpl")
    add_subcommands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

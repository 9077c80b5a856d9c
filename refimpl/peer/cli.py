"""Command-line entry points: ``refimpl peer`` and ``refimpl cluster up|status``.

Rules:

* ``refimpl peer [--uri URI] [--bootstrap URI] [--config-path FILE]`` takes the spec's flags
  (and, as Qdrant, the environment variables ``QDRANT_URI`` / ``QDRANT_BOOTSTRAP``). Bad flags,
  a bad config or a storage it cannot use exit with status 2 (usage) or 1 (start-up) and a
  one-line message naming the problem, never a traceback.
* A port the peer must listen on (``service.http_port``, and ``cluster.p2p.port`` in
  distributed mode) that another process holds exits with status 3 (:data:`EXIT_PORT_IN_USE`)
  and a message naming the setting and the port. The ports are checked before the peer touches
  its storage; a port taken between that check and the real bind exits the same way. A
  launcher can therefore tell "pick other ports and try again" from every other failure.
* ``refimpl cluster up --peers N`` starts a local cluster (see :mod:`refimpl.launcher`);
  ``refimpl cluster status [--watch]`` prints its table.

Theory of operation: :func:`add_subcommands` registers the parsers on the top-level ``refimpl``
parser (the lead wires it into :mod:`refimpl.cli`); ``python -m refimpl.peer.cli`` runs the same
commands without that wiring.
"""

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from refimpl.config import Settings

__all__ = ["EXIT_PORT_IN_USE", "add_subcommands", "main"]

EXIT_PORT_IN_USE = 3
"""Exit status of a peer that cannot listen because another process holds one of its ports."""


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
    ports = _listening_ports(settings)
    taken = [
        f"{name} {port}" for name, port in ports if not _can_listen(settings.service.host, port)
    ]
    if taken:
        print(f"error: port in use: {', '.join(taken)} on {settings.service.host} is held by "
              "another process", file=sys.stderr)  # fmt: skip
        return EXIT_PORT_IN_USE
    expected = (StartupError, IdentityError, OSError)
    try:
        trio.run(run_peer, settings, uri, bootstrap)
    except expected as exc:
        return _report([exc], ports)
    except ExceptionGroup as group:
        matched, rest = group.split(expected)
        if rest is not None or matched is None:
            raise
        return _report(_leaves(matched), ports)
    return 0


def _listening_ports(settings: "Settings") -> list[tuple[str, int]]:
    """The settings naming a port this peer listens on, with the port (0 = any: skipped)."""
    ports = [("service.http_port", settings.service.http_port)]
    if settings.cluster.enabled:
        ports.append(("cluster.p2p.port", settings.cluster.p2p.port))
    return [(name, port) for name, port in ports if port]


def _can_listen(host: str, port: int) -> bool:
    """False if binding ``host:port`` the way the servers do fails with "address in use".

    The servers set ``SO_REUSEADDR`` (so connections of an earlier run still in TIME_WAIT do
    not count) and bind every address ``host`` resolves to; any error other than "in use" is
    left for the real start to report.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return True
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
    return True


def _report(errors: list[BaseException], ports: list[tuple[str, int]]) -> int:
    """Print one line per start-up error; the exit status (3 if a port was taken)."""
    in_use = False
    for exc in errors:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            in_use = True
            names = ", ".join(f"{name} {port}" for name, port in ports)
            print(f"error: port in use: {exc} (one of {names} was taken while the peer "
                  "started)", file=sys.stderr)  # fmt: skip
        else:
            print(f"error: {exc}", file=sys.stderr)
    return EXIT_PORT_IN_USE if in_use else 1


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

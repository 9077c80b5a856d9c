"""Start a real peer process: storage, identity, join, p2p transport, consensus loop, REST.

Rules:

* First peer (no ``--bootstrap``, or ``--bootstrap`` equal to ``--uri``): must have ``--uri``
  ("First peer should specify its uri", as Qdrant); it bootstraps its storage with itself as
  the only voter.
* Joiner (``--bootstrap URI``): sends a join request to the bootstrap peer, retrying while the
  cluster has no leader, for up to ``cluster.consensus.bootstrap_timeout_sec``. Without
  ``--uri`` the bootstrap peer derives the URI from the connection's address and the joiner's
  p2p port. The joiner starts with empty membership and learns the cluster from the leader.
* Restart (``peer.json`` says joined): ``--bootstrap`` is ignored; the peer resumes from its
  storage.
* ``cluster.enabled: false``: a single voter with no p2p listener and no consensus traffic.
* With ``REFIMPL_EXIT_WITH_PARENT=1`` (set by :mod:`refimpl.launcher`) the peer also stops when
  the process that started it dies, so a crashed test or notebook leaves no peer behind.
* SIGINT / SIGTERM stop the peer cleanly (the nursery is cancelled; storage is fsynced on each
  Ready already).

Theory of operation: the p2p listener starts before the join (the leader contacts the joiner
as soon as the ADD_LEARNER entry applies); until the Peer exists, a :class:`_Slot` answers
requests with a retryable error and drops Raft messages, which the leader resends.
"""

import logging
import os
import random
import signal
from functools import partial
from pathlib import Path
from typing import Any, cast

import hypercorn.config
import hypercorn.typing
import trio
from hypercorn.trio import serve

from refimpl.api.app import ApiContext, create_app
from refimpl.api.auth import with_api_keys
from refimpl.config import Settings, p2p_secret
from refimpl.ids import PeerId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.data_plane import DataPlane, attach_shards
from refimpl.peer.handshake import HandshakeError
from refimpl.peer.identity import Identity, load_identity, new_peer_id, save_identity
from refimpl.peer.node import Peer, PeerOptions
from refimpl.peer.shards import LocalShards
from refimpl.peer.tcp import TcpTransport
from refimpl.peer.transport import FailureCounter, SendFailure, TransportError
from refimpl.raft import FileStorage, Membership, Message, StorageError

__all__ = ["StartupError", "run_peer"]

log = logging.getLogger("refimpl.peer")


class StartupError(Exception):
    """The peer cannot start with the given flags and storage; the message says why."""


class _Slot:
    """Inbound handler until the Peer exists, then a pass-through to it."""

    def __init__(self) -> None:
        self.peer: Peer | None = None

    def deliver(self, message: Message) -> None:
        if self.peer is not None:
            self.peer.deliver(message)

    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        if self.peer is None:
            return {"ok": False, "error": "peer is starting", "retryable": True}
        return await self.peer.handle_request(body, remote_host)


class _NoNetwork:
    """Transport of a standalone peer: there is nobody to talk to."""

    def __init__(self) -> None:
        self._failures = FailureCounter()

    def send(self, uri: str, message: Message) -> None:
        self._failures.record(uri, "standalone mode: no p2p")

    async def request(self, uri: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        raise TransportError("standalone mode: no p2p")

    def forget(self, uri: str) -> None:
        self._failures.forget(uri)

    def send_failures(self) -> dict[str, SendFailure]:
        return dict(self._failures.snapshot())

    def receive_errors(self) -> dict[str, int]:
        return {}

    def request_pool_stats(self) -> dict[str, int]:
        return {}


def _first_identity(settings: Settings, uri: str | None, rng: random.Random) -> Identity:
    if uri is None:
        raise StartupError("First peer should specify its uri: pass --uri http://HOST:P2P_PORT/")
    peer_id = PeerId(settings.cluster.peer_id or new_peer_id(rng))
    return Identity(peer_id, _normalise(uri), joined=True)


def _normalise(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


async def _join(
    transport: TcpTransport, settings: Settings, identity: Identity, bootstrap: str, port: int
) -> Identity:
    """Ask ``bootstrap`` to add us; retry while the cluster has no leader."""
    body = {"kind": "join", "peer_id": identity.peer_id, "uri": identity.uri, "port": port}
    deadline = trio.current_time() + settings.cluster.consensus.bootstrap_timeout_sec
    delay_s, last_error = 0.1, "no attempt"
    while trio.current_time() < deadline:
        try:
            answer = await transport.request(bootstrap, body, timeout_s=10.0)
        except TransportError as exc:
            # A refused handshake means our cluster secret is wrong: retrying cannot help.
            retryable = exc.retryable if isinstance(exc, HandshakeError) else True
            answer = {"ok": False, "error": str(exc), "retryable": retryable}
        if answer.get("ok") is True:
            peers = {PeerId(int(k)): str(v) for k, v in dict(answer["peers"]).items()}
            log.info(
                "peer %d: joined the cluster via %s as %s",
                identity.peer_id,
                bootstrap,
                answer["uri"],
            )
            return Identity(identity.peer_id, str(answer["uri"]), joined=True, peers=peers)
        last_error = str(answer.get("error"))
        if not answer.get("retryable", False):
            break
        log.info("peer %d: join not possible yet (%s); retrying", identity.peer_id, last_error)
        await trio.sleep(delay_s)
        delay_s = min(delay_s * 2, 2.0)
    raise StartupError(f"could not join the cluster via {bootstrap}: {last_error}")


async def run_peer(
    settings: Settings, uri: str | None, bootstrap: str | None, seed: int | None = None
) -> None:
    """Run one peer until cancelled or signalled."""
    rng = random.Random(seed)
    storage_path = Path(settings.storage.storage_path)
    storage_path.mkdir(parents=True, exist_ok=True)
    identity = load_identity(storage_path)
    genesis = False
    if bootstrap is not None and uri is not None and _normalise(bootstrap) == _normalise(uri):
        bootstrap = None  # as Qdrant: bootstrapping from yourself means "I am the first peer"
    if identity is None:
        if bootstrap is None or not settings.cluster.enabled:
            if settings.cluster.enabled:
                identity = _first_identity(settings, uri, rng)
            else:
                identity = Identity(
                    PeerId(settings.cluster.peer_id or new_peer_id(rng)), None, True
                )
            genesis = True  # saved once the storage holds the genesis snapshot
        else:
            identity = Identity(PeerId(settings.cluster.peer_id or new_peer_id(rng)),
                                _normalise(uri) if uri else None, joined=False)  # fmt: skip
            save_identity(storage_path, identity)  # before the join: a retry keeps the same id
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
        if os.environ.get("REFIMPL_EXIT_WITH_PARENT") == "1":
            nursery.start_soon(_stop_when_orphaned, nursery.cancel_scope, os.getppid())
        await _run_with_identity(nursery, settings, identity, bootstrap, genesis=genesis, rng=rng)


async def _run_with_identity(
    nursery: trio.Nursery,
    settings: Settings,
    identity: Identity,
    bootstrap: str | None,
    *,
    genesis: bool,
    rng: random.Random,
) -> None:
    storage_path = Path(settings.storage.storage_path)
    slot = _Slot()
    transport: TcpTransport | _NoNetwork
    if settings.cluster.enabled:
        transport = tcp = TcpTransport(secret=p2p_secret(settings))
        p2p_port = await nursery.start(
            tcp.run, slot, settings.service.host, settings.cluster.p2p.port
        )
        if not identity.joined:
            if bootstrap is None:
                raise StartupError("this peer never finished joining: pass --bootstrap URI")
            identity = await _join(tcp, settings, identity, _normalise(bootstrap), p2p_port)
            save_identity(storage_path, identity)
    else:
        transport = _NoNetwork()
    storage = _open_storage(storage_path, identity, genesis)
    nursery.start_soon(_close_on_exit, storage)
    consensus = settings.cluster.consensus
    options = PeerOptions(
        identity.peer_id,
        identity.uri,
        consensus.tick_period_ms / 1000,
        compact_log_entries=consensus.compact_wal_entries,
    )
    machine = ClusterStateMachine()
    shards = attach_shards(identity.peer_id, machine, storage_path)
    nursery.start_soon(_close_shards_on_exit, shards)
    peer = Peer(options, storage, machine, transport, rng, known_peers=identity.peers)
    plane = DataPlane.build(peer, machine, shards)

    def persist_peers(peers: Any) -> None:
        save_identity(storage_path, identity.with_peers(dict(peers)))

    peer.on_peers_changed = persist_peers
    slot.peer = peer
    await nursery.start(peer.run)
    nursery.start_soon(plane.run)
    await _serve_http(nursery, settings, ApiContext(peer, settings.cluster.enabled, plane))
    log.info(
        "peer %d: REST API on http://%s:%d",
        peer.id,
        settings.service.host,
        settings.service.http_port,
    )


def _open_storage(storage_path: Path, identity: Identity, genesis: bool) -> FileStorage:
    raft_dir = storage_path / "raft"
    try:
        if not genesis:
            return FileStorage(raft_dir)
        storage = FileStorage.bootstrap(raft_dir, Membership(frozenset({identity.peer_id})))
    except StorageError as exc:
        raise StartupError(f"cannot use storage {raft_dir}: {exc}") from exc
    save_identity(storage_path, identity)
    log.info("peer %d: first peer of a new cluster at %s", identity.peer_id, identity.uri)
    return storage


async def _close_shards_on_exit(shards: LocalShards) -> None:
    try:
        await trio.sleep_forever()
    finally:
        shards.close()


async def _close_on_exit(storage: FileStorage) -> None:
    try:
        await trio.sleep_forever()
    finally:
        storage.close()


async def _serve_http(nursery: trio.Nursery, settings: Settings, ctx: ApiContext) -> None:
    config = hypercorn.config.Config()
    config.bind = [f"{settings.service.host}:{settings.service.http_port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    app = cast(hypercorn.typing.Framework, with_api_keys(create_app(ctx), settings.service))
    await nursery.start(partial(serve, app, config, shutdown_trigger=trio.sleep_forever))


async def _stop_when_orphaned(scope: trio.CancelScope, parent_pid: int) -> None:
    """Stop when the launcher that started us dies (so no peer outlives a crashed test)."""
    while os.getppid() == parent_pid:
        await trio.sleep(0.5)
    log.warning("the launcher (pid %d) is gone, stopping", parent_pid)
    scope.cancel()


async def _stop_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s, stopping", signal.Signals(signum).name)
            scope.cancel()
            return

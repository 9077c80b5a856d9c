"""The consensus driver: one trio task that owns a Raft core and carries out its work.

Rules:

* Only the task in :meth:`Peer.run` and code it calls synchronously touch the Raft node, the
  storage and the cluster state. trio switches tasks only at ``await``, and nothing here awaits
  between ``ready()`` and ``advance()``, so a Ready is handled atomically.
* Driver order for each Ready (the persist-before-send rule of the Raft contract): install a
  snapshot, append entries, store the hard state, ``sync`` if asked, *then* send messages,
  then apply committed entries to the cluster state, then ``advance``.
* Time is an input: the loop calls ``tick()`` once per ``tick_period_s`` of trio time. Under
  ``trio.testing.MockClock`` the whole cluster runs in virtual time.
* A proposal waits until its own entry is applied *locally* and returns that entry's result.
  With no leader it fails at once with :class:`NoLeaderError` (HTTP 503 + Retry-After): the spec
  says collection updates are denied while the cluster elects a leader.
* Conf changes: ADD_LEARNER carries the joiner's URI in its context and, when applied, records
  the peer in the cluster state; REMOVE_PEER forgets it; the peer that applies its own removal
  stops its consensus loop. Only the leader promotes learners, one at a time, when its log is
  fully committed and the learner has caught up (as Qdrant's ``try_promote_learner``).

Theory of operation: anything that changes the Raft node (a message, a proposal, a tick) calls
:meth:`Peer._wake`, and the loop processes the resulting Ready. Requests from other peers
(joins, proposals forwarded by followers, "you were removed") arrive through
:meth:`Peer.handle_request` and are answered with JSON objects.
"""

import base64
import contextlib
import datetime
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.peer.state import StateMachine
from refimpl.peer.transport import Transport, TransportError
from refimpl.raft import (
    ConfChange,
    ConfChangeKind,
    Entry,
    EntryKind,
    Message,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
    Storage,
)

__all__ = [
    "ConsensusStoppedError",
    "NoLeaderError",
    "Peer",
    "PeerOptions",
    "ProposalError",
    "ProposalRejectedError",
    "ProposalTimeoutError",
]

log = logging.getLogger("refimpl.peer")

RequestHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

ROLE_NAMES = {
    Role.FOLLOWER: "Follower",
    Role.PRE_CANDIDATE: "PreCandidate",
    Role.CANDIDATE: "Candidate",
    Role.LEADER: "Leader",
}
MAX_CATCH_UP_TICKS = 5
"""A loop iteration that overslept ticks at most this many times (as Qdrant caps its count),
so a stalled event loop does not look like a silent leader."""


class ProposalError(Exception):
    """A proposal did not apply; ``retryable`` errors may succeed if sent again later."""

    retryable = True


class NoLeaderError(ProposalError):
    """No leader is known: an election is under way (or this peer is cut off)."""


class ProposalTimeoutError(ProposalError):
    """The proposal was not applied in time (it may still apply later)."""


class ProposalRejectedError(ProposalError):
    """The leader refused the proposal for good (a bad request, not a passing state)."""

    retryable = False


class ConsensusStoppedError(ProposalError):
    """This peer was removed from the cluster; its consensus loop has stopped."""

    retryable = False


@dataclass(frozen=True, slots=True)
class PeerOptions:
    """Static facts about one peer."""

    peer_id: PeerId
    uri: str | None
    """This peer's own p2p URI, as others reach it (None until a joiner learns it)."""
    tick_period_s: float = 0.1
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 1
    request_timeout_s: float = 10.0
    compact_log_entries: int = 128
    """Snapshot the cluster state and drop the log once this many entries were applied since
    the last snapshot (Qdrant's ``compact_wal_entries``); 0 = never."""


@dataclass(slots=True)
class _Waiter:
    term: Term
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: ProposalError | None = None


class Peer:
    """One peer's consensus: Raft core + storage + cluster state + transport."""

    def __init__(
        self,
        options: PeerOptions,
        storage: Storage,
        state: StateMachine,
        transport: Transport,
        rng: random.Random,
        *,
        known_peers: Mapping[PeerId, str] | None = None,
    ) -> None:
        self.options = options
        self.storage = storage
        self.state = state
        self.transport = transport
        config = RaftConfig(
            id=options.peer_id,
            election_timeout_ticks=options.election_timeout_ticks,
            heartbeat_interval_ticks=options.heartbeat_interval_ticks,
            snapshot_threshold_entries=options.compact_log_entries,
        )
        self.node = RaftNode(config, storage, rng)
        snapshot = storage.snapshot()
        if snapshot is not None:
            # A restart after compaction: the log no longer holds the prefix, the snapshot does.
            state.load_bytes(snapshot.data)
        self._known_peers: dict[PeerId, str] = dict(known_peers or {})
        self._waiters: dict[LogIndex, _Waiter] = {}
        self._wake_send, self._wake_receive = trio.open_memory_channel[None](1)
        self._stopped = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._last_role: Role | None = None
        self._last_leader: PeerId | None = None
        self._origin_proposed = False
        self.last_update = _utc_now()
        self.on_peers_changed: Callable[[Mapping[PeerId, str]], None] | None = None
        """Called after a conf change applied (the CLI persists the address book)."""
        self.request_handlers: dict[str, RequestHandler] = {}
        """Handlers for further request kinds (the shard requests of :mod:`refimpl.peer.router`)."""

    # ----------------------------------------------------------------- views

    @property
    def id(self) -> PeerId:
        """This peer's id."""
        return self.options.peer_id

    @property
    def stopped(self) -> bool:
        """True once this peer was removed from the cluster (or shut down)."""
        return self._stopped.is_set()

    def addresses(self) -> dict[PeerId, str]:
        """Every peer URI known: from the join answer, then from the applied state."""
        merged = dict(self._known_peers)
        merged.update(self.state.peers())
        if self.options.uri is not None:
            merged.setdefault(self.id, self.options.uri)
        return merged

    def cluster_info(self) -> dict[str, Any]:
        """The ``result`` of ``GET /cluster`` (Qdrant's shape plus a few teaching extras)."""
        node = self.node
        membership = node.membership
        failures = {
            uri: {"count": f.count, "latest_error": f.latest_error,
                  "latest_error_timestamp": f.latest_error_timestamp}
            for uri, f in self.transport.send_failures().items()
        }  # fmt: skip
        if self.stopped:
            thread: dict[str, Any] = {"consensus_thread_status": "stopped"}
        else:
            thread = {"consensus_thread_status": "working", "last_update": self.last_update}
        peers = {str(p): {"uri": u} for p, u in sorted(self.addresses().items())}
        return {
            "status": "enabled",
            "peer_id": self.id,
            "peers": peers,
            "raft_info": {
                "term": node.term,
                "commit": node.commit_index,
                "pending_operations": len(self._waiters),
                "leader": node.leader_id,
                "role": ROLE_NAMES[node.role],
                "is_voter": self.id in membership.voters,
                "applied": node.applied_index,
                "voters": sorted(membership.voters),
                "learners": sorted(membership.learners),
            },
            "consensus_thread_status": thread,
            "message_send_failures": failures,
            "p2p_receive_errors": dict(self.transport.receive_errors()),
            "p2p_request_connections": dict(self.transport.request_pool_stats()),
        }

    # ------------------------------------------------------------ the loop

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick, step and process Ready until the peer is removed or cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            period = self.options.tick_period_s
            next_tick = trio.current_time() + period
            while not self.stopped:
                with trio.move_on_at(next_tick):
                    await self._wake_receive.receive()
                now = trio.current_time()
                ticks = 0
                while now >= next_tick and ticks < MAX_CATCH_UP_TICKS:
                    self.node.tick()
                    next_tick += period
                    ticks += 1
                next_tick = max(next_tick, now)  # drop ticks we overslept past the cap
                if ticks:
                    self._leader_duties()
                self._process_ready()
                self.last_update = _utc_now()
            nursery.cancel_scope.cancel()
        self._fail_waiters(ConsensusStoppedError("this peer is no longer part of the cluster"))

    def stop(self) -> None:
        """Stop taking part in consensus (the loop exits at its next iteration)."""
        if not self.stopped:
            log.warning("peer %d: consensus stopped", self.id)
            self._stopped.set()
            self._wake()

    def _wake(self) -> None:
        # A wake-up already pending is enough: the loop processes everything in one go.
        with contextlib.suppress(trio.WouldBlock):
            self._wake_send.send_nowait(None)

    def deliver(self, message: Message) -> None:
        """Step a Raft message from another peer (called by the transport)."""
        if self.stopped:
            return
        if message.dst != self.id:
            return  # meant for a previous owner of this address
        self.node.step(message)
        self._wake()

    def _process_ready(self) -> None:
        steps = 0
        while self.node.has_ready() and not self.stopped:
            steps += 1
            assert steps < 1000, "Ready loop does not converge"
            rd = self.node.ready()
            self._persist(rd)
            for message in rd.messages:
                self._send(message)
            for entry in rd.committed_entries:
                self._apply(entry)
            self.node.advance(rd)
            self._log_role_change()
        if self.node.compaction_due and not self.stopped:
            self._compact()

    def _compact(self) -> None:
        """Replace the applied log prefix by a snapshot of the cluster state."""
        index = self.node.applied_index
        snapshot = self.node.compact(index, self.state.to_bytes())
        self.storage.compact(index, snapshot)
        log.info("peer %d: compacted the log up to index %d", self.id, index)

    def _persist(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
            self.state.load_bytes(rd.snapshot.data)
            log.info(
                "peer %d: installed snapshot at index %d", self.id, rd.snapshot.meta.last_index
            )
        if rd.entries:
            self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        if rd.must_sync:
            self.storage.sync()

    def _send(self, message: Message) -> None:
        uri = self.addresses().get(message.dst)
        if uri is None:
            log.debug("peer %d: no address for peer %d, message dropped", self.id, message.dst)
            return
        self.transport.send(uri, message)

    def _log_role_change(self) -> None:
        node = self.node
        if node.role == self._last_role and node.leader_id == self._last_leader:
            return
        self._last_role, self._last_leader = node.role, node.leader_id
        if node.role == Role.LEADER:
            log.info("peer %d: became leader in term %d", self.id, node.term)
        elif node.leader_id is not None:
            log.info("peer %d: following leader %d in term %d", self.id, node.leader_id, node.term)
        else:
            log.info("peer %d: %s in term %d, no leader", self.id, ROLE_NAMES[node.role], node.term)

    # ------------------------------------------------------- applying entries

    def _apply(self, entry: Entry) -> None:
        result: Any = None
        match entry.kind:
            case EntryKind.NOOP:
                result = None
            case EntryKind.NORMAL:
                result = self.state.apply_command(entry.data)
                log.info("peer %d: applied entry %d: %s", self.id, entry.index, _short(result))
            case EntryKind.CONF_CHANGE:
                result = self._apply_conf_change(ConfChange.decode(entry.data))
        waiter = self._waiters.pop(entry.index, None)
        if waiter is not None:
            if waiter.term == entry.term:
                waiter.result = result
            else:
                waiter.error = ProposalError("leadership changed; the proposal was dropped, retry")
            waiter.done.set()

    def _apply_conf_change(self, change: ConfChange) -> bool:
        match change.kind:
            case ConfChangeKind.ADD_LEARNER:
                uri = change.context.decode("utf-8", "replace")
                self.state.add_peer(change.peer, uri)
                log.info(
                    "peer %d: applied: peer %d joined as learner at %s", self.id, change.peer, uri
                )
            case ConfChangeKind.PROMOTE_VOTER:
                log.info("peer %d: applied: peer %d promoted to voter", self.id, change.peer)
            case ConfChangeKind.REMOVE_PEER:
                self._on_peer_removed(change.peer)
        if self.on_peers_changed is not None:
            self.on_peers_changed(self.addresses())
        return True

    def _on_peer_removed(self, peer: PeerId) -> None:
        uri = self.addresses().get(peer)
        self.state.remove_peer(peer)
        self._known_peers.pop(peer, None)
        log.info("peer %d: applied: peer %d removed", self.id, peer)
        if uri is not None and peer != self.id:
            self.transport.forget(uri)
        if peer == self.id:
            self.stop()
        elif self.node.role == Role.LEADER and uri is not None and self._nursery is not None:
            # The removed peer no longer receives the log, so it may never learn of its removal;
            # tell it directly (best effort) so that it stops campaigning.
            self._nursery.start_soon(self._notify_removed, peer, uri)

    async def _notify_removed(self, peer: PeerId, uri: str) -> None:
        body = {"kind": "removed", "peer_id": peer, "by": self.id}
        try:
            await self.transport.request(uri, body, timeout_s=2.0)
        except TransportError as exc:
            log.info("peer %d: could not tell peer %d it was removed: %s", self.id, peer, exc)

    # ------------------------------------------------------- leader duties

    def _leader_duties(self) -> None:
        if self.node.role != Role.LEADER or self.stopped:
            return
        self._record_origin()
        self._promote_caught_up_learner()

    def _record_origin(self) -> None:
        """The first peer is a voter from genesis; record its URI through the log once."""
        uri = self.options.uri
        if uri is None or self._origin_proposed or self.state.peers().get(self.id) == uri:
            return
        try:
            self.node.propose(self.state.record_peer_command(self.id, uri))
        except (NotLeader, ProposalDropped):
            return
        self._origin_proposed = True
        self._wake()

    def _promote_caught_up_learner(self) -> None:
        """Leader only: propose PROMOTE_VOTER for one learner that has caught up.

        As Qdrant's ``try_promote_learner``: only when the leader's own log is fully committed
        (``commit_index == storage.last_index()``), pick the learner with the smallest id whose
        match index (``node.progress()[learner][0]``) has reached the commit index, and propose
        its promotion with ``node.propose_conf_change``. If the core refuses (``NotLeader``, or
        ``ProposalDropped`` because another conf change is pending) do nothing: the next tick
        tries again. Promote at most one learner per call, and ``_wake()`` after proposing.
        """
        # [exercise: promote_learner] begin
        node = self.node
        learners = node.membership.learners
        if not learners or node.commit_index != self.storage.last_index():
            return
        progress = node.progress()
        for learner in sorted(learners):
            match_index, _next_index = progress.get(learner, (LogIndex(0), LogIndex(0)))
            if match_index >= node.commit_index:
                try:
                    node.propose_conf_change(ConfChange(ConfChangeKind.PROMOTE_VOTER, learner))
                except (NotLeader, ProposalDropped):
                    return  # another conf change is pending; try at a later tick
                log.info("peer %d: promoting caught-up learner %d", self.id, learner)
                self._wake()
                return
        # [exercise: promote_learner] end

    # ----------------------------------------------------------- proposals

    async def propose(self, data: bytes, timeout_s: float | None = None) -> Any:
        """Propose a cluster-state command; return its result once applied here."""
        return await self._propose(("propose", data), timeout_s)

    async def propose_conf_change(self, change: ConfChange, timeout_s: float | None = None) -> Any:
        """Propose a membership change; return once applied here."""
        return await self._propose(("conf_change", change.encode()), timeout_s)

    async def _propose(self, what: tuple[str, bytes], timeout_s: float | None) -> Any:
        timeout = self.options.request_timeout_s if timeout_s is None else timeout_s
        if self.stopped:
            raise ConsensusStoppedError("this peer is no longer part of the cluster")
        if self.node.role == Role.LEADER:
            index, waiter = self._propose_locally(what)
        else:
            index, waiter = None, None
        if waiter is None:
            result, index = await self._forward(what, timeout)
            await self._wait_applied(index, timeout)
            return result
        with trio.move_on_after(timeout):
            await waiter.done.wait()
        if not waiter.done.is_set():
            if index is not None:
                self._waiters.pop(index, None)
            raise ProposalTimeoutError(
                "Waiting for consensus operation commit failed. "
                f"Timeout set at: {timeout:g} seconds"
            )
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _propose_locally(self, what: tuple[str, bytes]) -> tuple[LogIndex | None, _Waiter | None]:
        kind, data = what
        try:
            if kind == "propose":
                index = self.node.propose(data)
            else:
                index = self.node.propose_conf_change(ConfChange.decode(data))
        except NotLeader:
            return None, None
        except ProposalDropped as exc:
            raise ProposalError(f"proposal dropped by the leader ({exc}); retry") from None
        waiter = _Waiter(self.node.term)
        self._waiters[index] = waiter
        self._wake()
        return index, waiter

    async def _forward(self, what: tuple[str, bytes], timeout_s: float) -> tuple[Any, LogIndex]:
        leader = self.node.leader_id
        uri = self.addresses().get(leader) if leader is not None else None
        if leader is None or leader == self.id or uri is None:
            raise NoLeaderError(
                "no leader is established; the cluster is electing one, retry shortly"
            )
        kind, data = what
        body = {"kind": kind, "data": base64.b64encode(data).decode(), "timeout_s": timeout_s}
        try:
            # One second more than the leader waits, so its own timeout answer reaches us.
            response = await self.transport.request(uri, body, timeout_s + 1.0)
        except TransportError as exc:
            raise NoLeaderError(f"leader {leader} is unreachable ({exc}); retry shortly") from None
        return _unpack_proposal_response(response)

    async def _wait_applied(self, index: LogIndex, timeout_s: float) -> None:
        """Wait (bounded) until this peer applied ``index``, so a reader here sees the write."""
        with trio.move_on_after(timeout_s):
            while self.node.applied_index < index and not self.stopped:
                await trio.sleep(self.options.tick_period_s / 4)

    def _fail_waiters(self, error: ProposalError) -> None:
        for waiter in self._waiters.values():
            waiter.error = error
            waiter.done.set()
        self._waiters.clear()

    # -------------------------------------------------- requests from peers

    async def handle_request(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        """Answer a request from another peer (join, forwarded proposal, removal notice)."""
        kind = body.get("kind")
        extra = self.request_handlers.get(str(kind))
        if extra is not None:
            try:
                return await extra(body)
            except Exception as exc:  # a bug in one request must not stop the peer
                log.exception("peer %d: %s request failed", self.id, kind)
                error = f"internal error: {type(exc).__name__}: {exc}"
                return {"ok": False, "error": error, "retryable": True}
        try:
            if kind == "join":
                return await self._handle_join(body, remote_host)
            if kind in ("propose", "conf_change"):
                data = base64.b64decode(str(body.get("data", "")), validate=True)
                result = await self._propose((str(kind), data), _timeout_of(body))
                return {"ok": True, "result": result, "index": self.node.applied_index}
            if kind == "removed":
                if body.get("peer_id") == self.id:
                    log.warning(
                        "peer %d: removed from the cluster by peer %s", self.id, body.get("by")
                    )
                    self.stop()
                return {"ok": True}
        except ProposalError as exc:
            return {"ok": False, "error": str(exc), "retryable": exc.retryable}
        except ValueError as exc:
            return {"ok": False, "error": f"bad request: {exc}", "retryable": False}
        except Exception as exc:  # a malformed request must never stop the peer
            log.exception("peer %d: %s request failed", self.id, kind)
            return {
                "ok": False,
                "error": f"internal error: {type(exc).__name__}",
                "retryable": True,
            }
        return {"ok": False, "error": f"unknown request kind {kind!r}", "retryable": False}

    async def _handle_join(self, body: dict[str, Any], remote_host: str) -> dict[str, Any]:
        peer_id = body.get("peer_id")
        if not isinstance(peer_id, int) or not 1 <= peer_id < 2**53:
            raise ValueError(f"peer_id must be an integer in [1, 2**53), got {peer_id!r}")
        given = body.get("uri")
        if given is not None and not (isinstance(given, str) and given.startswith("http")):
            raise ValueError(f"uri must be a string like http://host:6335, got {given!r}")
        uri = given or _derive_uri(remote_host, body.get("port"))
        joiner = PeerId(peer_id)
        for other, other_uri in self.state.peers().items():
            if other_uri == uri and other != joiner:
                # As Qdrant: a peer that came back with wiped storage has a new id at the old
                # address; the old id is removed first unless it still holds replicas.
                if self.state.peer_has_shards(other):
                    raise ProposalRejectedError(
                        f"peer URI {uri} is already used by peer {other}, which still has shards"
                    )
                log.info(
                    "peer %d: removing peer %d, whose URI %s a new peer reuses", self.id, other, uri
                )
                await self.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_PEER, other))
        if self.state.peers().get(joiner) != uri:
            change = ConfChange(ConfChangeKind.ADD_LEARNER, joiner, uri.encode())
            log.debug("peer %d: peer %d asks to join as %s", self.id, joiner, uri)
            await self.propose_conf_change(change)
        peers = {str(p): u for p, u in self.addresses().items()}
        return {"ok": True, "uri": uri, "peers": peers}


def _timeout_of(body: dict[str, Any]) -> float | None:
    """The wait a forwarding follower asked for, bounded to [0.1, 60] seconds."""
    value = body.get("timeout_s")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(float(value), 0.1), 60.0)
    return None


def _derive_uri(remote_host: str, port: object) -> str:
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"a joiner without --uri must send its p2p port, got {port!r}")
    host = f"[{remote_host}]" if ":" in remote_host else remote_host
    return f"http://{host}:{port}/"


def _unpack_proposal_response(response: dict[str, Any]) -> tuple[Any, LogIndex]:
    if response.get("ok") is True and isinstance(response.get("index"), int):
        return response.get("result"), LogIndex(response["index"])
    error = str(response.get("error", "malformed response from the leader"))
    if response.get("retryable", True):
        raise ProposalError(error)
    raise ProposalRejectedError(error)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

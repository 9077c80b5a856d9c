"""Shard transfers by streaming records, and the automatic recovery of Dead replicas.

Rules (spec "Cluster scaling", "Node Failure Recovery"; facts §4.4, §6):

* A transfer exists only once ``StartTransfer`` is applied: from then on the target replica is
  Partial (it already receives new writes from every coordinator) and the **source peer** drives
  the transfer; every other peer only watches the cluster state.
* The source first asks the target to *prepare* (``transfer_init``): the target waits until it
  has applied the start itself, then empties its replica (a recovering Dead replica may hold
  points deleted since). From that moment the source **forwards** every update it applies to
  that shard (Qdrant's ForwardProxy), then streams all its points in id order, one page at a
  time, as ordinary ``shard_update`` upserts.
* Forwarding and streaming take the same per-transfer lock, and a page is read and sent inside
  it: an update applied after a page was read is forwarded after that page arrives, so an old
  copy never overwrites a newer one. Both copies stay updated; nothing applied on the source is
  missed, whoever coordinated it.
* When the stream is done the source proposes ``FinishTransfer`` (target Active; a move also
  drops the source replica). A failed attempt (target unreachable, a forward that failed) is
  retried from the start up to :data:`ATTEMPTS` times, then ``AbortTransfer`` is proposed.
* Recovery: a peer whose own replica is Dead, with no transfer on that shard, proposes a
  replicating transfer from an Active replica on another peer (lowest id first) — Dead ->
  Partial -> Active, as Qdrant's ``sync_local_state``. Proposals are retried every
  :data:`RECOVERY_RETRY_S` while the replica stays Dead.

Theory of operation: :class:`ShardTransfers` runs in the peer's nursery. A listener on the
cluster state wakes it after every applied entry; it starts a task for each transfer whose
source is this peer and cancels the tasks of transfers that are gone (finished or aborted). The
router calls :meth:`ShardTransfers.forward` after each local update it coordinated; updates
coordinated elsewhere arrive as ``shard_update`` requests, which this module answers (through
the router) so it can forward them too.
Limits: concurrent updates of one point through different coordinators may reach two replicas
in different orders (the spec's caveat on concurrent writes); there is no point versioning.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import trio

from refimpl.consensus import (
    AbortTransfer,
    ClusterState,
    FinishTransfer,
    ShardTransfer,
    StartTransfer,
    encode_operation,
)
from refimpl.ids import PeerId, ShardId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.node import Peer, ProposalError
from refimpl.peer.shard_wire import encode_update
from refimpl.peer.shards import LocalShards
from refimpl.peer.transport import TransportError
from refimpl.points import ALL_PAYLOAD, DeletePoints, ScrollRequest, UpsertPoints, id_sort_key
from refimpl.replication import ReplicaState
from refimpl.storage import ShardStore

__all__ = ["ATTEMPTS", "BATCH_POINTS", "RECOVERY_RETRY_S", "ShardTransfers"]

log = logging.getLogger("refimpl.peer.transfers")

BATCH_POINTS = 100
"""Points per streamed page (Qdrant's stream_records batch)."""
ATTEMPTS = 3
"""Tries of one transfer before it is aborted (Qdrant: 3, with 1 s x attempt between)."""
RECOVERY_RETRY_S = 2.0
"""How often a peer re-proposes the recovery of a replica that stays Dead."""
REQUEST_TIMEOUT_S = 30.0
PREPARE_WAIT_S = 10.0
"""How long a target waits to see the transfer's start applied before refusing to prepare."""
OPEN_WAIT_S = 2.0
"""How long an update for a replica not open yet waits for this peer's state to catch up."""

Key = tuple[str, ShardId]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class TransferFailedError(Exception):
    """One attempt of a transfer failed; it is retried or aborted."""


@dataclass(slots=True)
class _Outgoing:
    """A transfer this peer is the source of."""

    collection: str
    transfer: ShardTransfer
    lock: trio.Lock = field(default_factory=trio.Lock)
    forwarding: bool = False
    failed: str | None = None
    comment: str = "starting"
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class ShardTransfers:
    """Drives the transfers this peer is the source of; recovers its Dead replicas."""

    def __init__(
        self,
        peer: Peer,
        view: ClusterStateMachine,
        shards: LocalShards,
        shard_handler: Handler,
    ) -> None:
        self.peer = peer
        self.view = view
        self.shards = shards
        self._shard_handler = shard_handler
        self.outgoing: dict[Key, _Outgoing] = {}
        self._recovery_at: dict[Key, float] = {}
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        view.listeners.append(self._wake)
        peer.request_handlers["transfer_init"] = self.handle_prepare
        peer.request_handlers["shard_update"] = self.handle_update

    def _wake(self) -> None:
        self._changed.set()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Forever: follow the cluster state (start and stop transfer tasks, recover)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                with trio.move_on_after(RECOVERY_RETRY_S):
                    await self._changed.wait()
                self._changed = trio.Event()
                self._sync(self.view.cluster)

    def _sync(self, state: ClusterState) -> None:
        assert self._nursery is not None
        wanted: dict[Key, tuple[str, ShardTransfer]] = {}
        for name, coll in state.collections.items():
            for t in coll.transfers:
                if t.from_peer == self.peer.id:
                    wanted[(name, t.shard_id)] = (name, t)
        for key, entry in list(self.outgoing.items()):
            if key not in wanted or wanted[key][1] != entry.transfer:
                entry.scope.cancel()  # finished or aborted: the state says so
                del self.outgoing[key]
        for key, (name, t) in wanted.items():
            if key not in self.outgoing:
                entry = _Outgoing(name, t)
                self.outgoing[key] = entry
                self._nursery.start_soon(self._drive, entry)
        for name, shard_id, source in self._recoverable(state):
            key = (name, shard_id)
            now = trio.current_time()
            if now - self._recovery_at.get(key, -1e9) >= RECOVERY_RETRY_S:
                self._recovery_at[key] = now
                t = ShardTransfer(shard_id, source, self.peer.id, sync=True)
                self._nursery.start_soon(self._propose, StartTransfer(name, t), "recovery")

    def _recoverable(self, state: ClusterState) -> list[tuple[str, ShardId, PeerId]]:
        """This peer's Dead replicas with no transfer, each with an Active source elsewhere."""
        found = []
        for name, coll in sorted(state.collections.items()):
            for shard_id, replicas in sorted(coll.replicas.items()):
                if replicas.get(self.peer.id) is not ReplicaState.Dead:
                    continue
                if any(t.shard_id == shard_id for t in coll.transfers):
                    continue
                sources = sorted(
                    p
                    for p, s in replicas.items()
                    if s is ReplicaState.Active and p != self.peer.id and p in state.peers
                )
                if sources:
                    found.append((name, shard_id, sources[0]))
        return found

    async def _propose(self, operation: Any, why: str) -> Any:
        try:
            result = await self.peer.propose(encode_operation(operation))
        except ProposalError as exc:
            log.info("peer %d: %s proposal failed: %s", self.peer.id, why, exc)
            return None
        if result is not True:
            log.info("peer %d: %s proposal refused: %s", self.peer.id, why, result)
        return result

    # ---------------------------------------------------------- the source side

    async def _drive(self, entry: _Outgoing) -> None:
        """Run one transfer to its end: finish it, or abort it after :data:`ATTEMPTS`."""
        t, name = entry.transfer, entry.collection
        with entry.scope:
            error = ""
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    await self._attempt(entry)
                except TransferFailedError as exc:
                    error = str(exc)
                    log.warning("peer %d: transfer of %s/%d to %d, attempt %d: %s",
                                self.peer.id, name, t.shard_id, t.to_peer, attempt, exc)  # fmt: skip
                    entry.forwarding = False
                    await trio.sleep(1.0 * attempt)
                    continue
                async with entry.lock:  # no forward can fail unseen while finishing
                    if entry.failed is None:
                        entry.comment = "finalizing"
                        finish = FinishTransfer(name, t.shard_id, t.from_peer, t.to_peer)
                        await self._propose(finish, "finish transfer")
                        return
                    error = entry.failed
                entry.forwarding = False
            entry.comment = f"aborting: {error}"
            abort = AbortTransfer(name, t.shard_id, t.from_peer, t.to_peer, "transmission failed")
            await self._propose(abort, "abort transfer")

    async def _attempt(self, entry: _Outgoing) -> None:
        t, name = entry.transfer, entry.collection
        entry.failed = None
        entry.comment = "preparing the target"
        incarnation = self.view.incarnation(name)
        await self._send(t.to_peer, {"kind": "transfer_init", "collection": name,
                                     "incarnation": incarnation, "shard_id": t.shard_id,
                                     "from_peer": t.from_peer})  # fmt: skip
        entry.forwarding = True  # from here every local update is forwarded too
        shard = self.shards.get(name, t.shard_id)
        if shard is None or shard.incarnation != incarnation:
            raise TransferFailedError(f"the source replica of {name}/{t.shard_id} is not here")
        offset: Any = None
        sent = 0
        while True:
            async with entry.lock:
                page = await shard.run(partial(_page, offset=offset))
                if page.upsert is not None:
                    op = encode_update(page.upsert)
                    body = _update_body(name, incarnation, t.shard_id, op)
                    await self._send(t.to_peer, body)
            sent += len(page.ids)
            entry.comment = f"transferring records ({sent} sent)"
            if entry.failed is not None:
                raise TransferFailedError(entry.failed)
            if page.next_offset is None:
                return
            offset = page.next_offset

    async def _send(self, peer: PeerId, body: dict[str, Any]) -> Any:
        uri = self.peer.addresses().get(peer)
        if uri is None:
            raise TransferFailedError(f"no address for peer {peer}")
        try:
            answer = await self.peer.transport.request(uri, body, REQUEST_TIMEOUT_S)
        except TransportError as exc:
            raise TransferFailedError(f"peer {peer}: {exc}") from None
        if answer.get("ok") is not True:
            raise TransferFailedError(f"peer {peer}: {answer.get('error')}")
        return answer.get("result")

    async def forward(self, collection: str, shard_id: ShardId, body: dict[str, Any]) -> None:
        """After this peer applied ``body`` (a ``shard_update``) to its replica: send it on to
        the target of an outgoing transfer of that shard, if forwarding has begun."""
        entry = self.outgoing.get((collection, shard_id))
        if entry is None or not entry.forwarding or body.get("forwarded"):
            return
        async with entry.lock:
            try:
                await self._send(entry.transfer.to_peer, {**body, "forwarded": True})
            except TransferFailedError as exc:
                entry.failed = entry.failed or f"forwarding an update failed: {exc}"

    # ---------------------------------------------------------- the target side

    async def handle_prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_init``: wait to see the transfer started here, then empty the replica."""
        name, shard_id = str(body.get("collection")), ShardId(int(body.get("shard_id", -1)))
        with trio.move_on_after(PREPARE_WAIT_S):
            while not self._is_target(name, shard_id, body.get("incarnation")):
                await trio.sleep(0.02)
        if not self._is_target(name, shard_id, body.get("incarnation")):
            return {"ok": False, "retryable": True,
                    "error": f"peer {self.peer.id} is not the target of a transfer of "
                             f"{name}/{shard_id}"}  # fmt: skip
        shard = self.shards.get(name, shard_id)
        assert shard is not None, "_is_target checked the replica is open"
        removed = await shard.run(_empty)
        log.info("peer %d: prepared %s/%d for a transfer (%d stale points removed)",
                 self.peer.id, name, shard_id, removed)  # fmt: skip
        return {"ok": True, "result": removed}

    def _is_target(self, name: str, shard_id: ShardId, incarnation: object) -> bool:
        coll = self.view.cluster.collections.get(name)
        shard = self.shards.get(name, shard_id)
        return (
            coll is not None
            and any(t.shard_id == shard_id and t.to_peer == self.peer.id for t in coll.transfers)
            and shard is not None
            and shard.incarnation == incarnation
        )

    async def handle_update(self, body: dict[str, Any]) -> dict[str, Any]:
        """``shard_update`` from a coordinator: apply it (through the router), then forward
        it if this peer is streaming that shard somewhere. A replica this peer was just given
        (its state is a few milliseconds behind the coordinator's) is waited for briefly."""
        name, shard_id = body.get("collection"), body.get("shard_id")
        if isinstance(name, str) and isinstance(shard_id, int):
            with trio.move_on_after(OPEN_WAIT_S):
                while (
                    s := self.shards.get(name, ShardId(shard_id))
                ) is None or s.incarnation != body.get("incarnation"):
                    await trio.sleep(0.02)
        answer = await self._shard_handler(body)
        if answer.get("ok") is True and isinstance(name, str) and isinstance(shard_id, int):
            await self.forward(name, ShardId(shard_id), body)
        return answer

    def comments(self) -> dict[Key, str]:
        """What each outgoing transfer is doing (``shard_transfers[].comment``)."""
        return {key: entry.comment for key, entry in self.outgoing.items()}


@dataclass(frozen=True, slots=True)
class _Page:
    ids: tuple[Any, ...]
    upsert: UpsertPoints | None
    next_offset: Any


def _page(store: ShardStore, offset: Any) -> _Page:
    """One page of the store's points from ``offset`` (in id order), as an upsert."""
    request = ScrollRequest(
        limit=BATCH_POINTS, offset=offset, with_payload=ALL_PAYLOAD, with_vector=True
    )
    page = store.scroll(request)
    ids = tuple(r.id for r in page.points)
    if not ids:
        return _Page((), None, None)
    vectors = np.array([r.vector for r in page.points], dtype=np.float32)
    upsert = UpsertPoints(ids, vectors, tuple(r.payload for r in page.points))
    return _Page(ids, upsert, page.next_page_offset)


def _empty(store: ShardStore) -> int:
    """Delete every point of ``store`` (a target starts from nothing); return how many."""
    ids = tuple(sorted(store.matching_ids(None), key=id_sort_key))
    if ids:
        store.apply(DeletePoints(ids), wait=True)
    return len(ids)


def _update_body(name: str, incarnation: int, shard_id: ShardId, op: Any) -> dict[str, Any]:
    return {"kind": "shard_update", "collection": name, "incarnation": incarnation,
            "shard_id": shard_id, "wait": True, "op": op}  # fmt: skip

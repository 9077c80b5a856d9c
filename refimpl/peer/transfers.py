"""Shard transfers (three methods) and the automatic recovery of Dead replicas.

Rules (spec "Cluster scaling", "Node Failure Recovery"; facts §4.4, §6):

* A transfer exists only once ``StartTransfer`` is applied: from then on the target replica is
  Partial (``stream_records``) or Recovery (``snapshot``, ``wal_delta``), and the **source
  peer** drives the transfer; every other peer only watches the cluster state.
* The source first asks the target to *prepare* (``transfer_init``): the target waits until it
  has applied the start itself. Then the method:

  - ``stream_records``: the target empties its replica (a recovering Dead replica may hold
    points deleted since). From that moment the source **forwards** every update it applies
    to that shard (Qdrant's ForwardProxy), then streams all its points in id order, one page
    at a time, as ordinary ``shard_update`` upserts. Forwarding and streaming take the same
    per-transfer lock, and a page is read and sent inside it: an update applied after a page
    was read is forwarded after that page arrives, so an old copy never overwrites a newer one.
  - ``snapshot``: the source checkpoints its replica and ships the checkpoint as a snapshot
    archive (:mod:`refimpl.storage.snapshot`, checksummed) in chunks of at most
    :data:`CHUNK_BYTES`; the target verifies it and replaces its replica with it.
  - ``wal_delta``: the target reports its *recovery point* (a digest of every operation its
    WAL holds); the source finds the first operation of its own WAL the target lacks and
    sends only the operations from there (:func:`delta_start`). When the WAL cannot tell
    (compacted past the point where the two diverged, or the target holds operations the
    source never saw), it falls back to streaming every record into the emptied target.

  A Recovery target takes no writes from coordinators, so for the last two methods the source
  keeps the updates in its own WAL instead (Qdrant's QueueProxy): the base (snapshot, delta or
  stream) is "everything up to operation N of the source", and the source then **tails its
  WAL** from N, sending every later operation in its order, until the transfer ends; while
  the tail runs, an update applied at the source is acknowledged only once the tail has
  delivered it (as a forwarded one would be), so a client's next write, which may reach the
  target directly, never arrives before its previous one. Once
  caught up it proposes ``SetReplicaState(snapshot_applied)`` (Recovery -> Partial: from then
  on coordinators write to the target too) and waits until every reachable peer sees the
  target Partial, still tailing (an update a coordinator sent only to the source before it
  learnt of Partial reaches the target anyway). Last, holding the source replica so no update
  applies to it meanwhile, it sends what the tail has not and proposes ``FinishTransfer``.
  After a replication (the source stays) the tail goes on for :data:`LINGER_S`: a write whose
  coordinator started it while it still saw the target in Recovery reached only the source,
  and is delivered (and acknowledged) that way.
  An update that reaches a replica after the state dropped it is refused there (see
  :mod:`refimpl.peer.shards`), so its coordinator sends it again to the new replicas.
* A failed attempt (target unreachable, a forward that failed, a WAL compacted under the tail)
  is retried from the start up to :data:`ATTEMPTS` times, then ``AbortTransfer`` is proposed.
  The target only becomes Active by ``FinishTransfer``, proposed after a complete attempt.
* Recovery: a peer whose own replica is Dead, with no transfer on that shard, proposes a
  ``wal_delta`` replicating transfer from an Active replica on another peer (lowest id first)
  — Dead -> Recovery -> Partial -> Active, as Qdrant's ``sync_local_state``. Proposals are
  retried every :data:`RECOVERY_RETRY_S` while the replica stays Dead.

Theory of operation: :class:`ShardTransfers` runs in the peer's nursery. A listener on the
cluster state wakes it after every applied entry; it starts a task for each transfer whose
source is this peer and cancels the tasks of transfers that are gone (finished or aborted). The
router calls :meth:`ShardTransfers.forward` after each local update it coordinated; updates
coordinated elsewhere arrive as ``shard_update`` requests, which this module answers (through
the router) so it can forward them too (or, for a WAL tail, wake it).
Limits: concurrent updates of one point through different coordinators may reach two replicas
in different orders (the spec's caveat on concurrent writes); there is no point versioning.
The recovery point compares operations by content, not by Qdrant's clock tags (which need the
coordinator to tag each update): an operation repeated with identical content is taken as
already present.
"""

import base64
import binascii
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
import trio

from refimpl.consensus import (
    AbortTransfer,
    ClusterState,
    FinishTransfer,
    SetReplicaState,
    ShardTransfer,
    StartTransfer,
    TransferMethod,
    encode_operation,
)
from refimpl.ids import PeerId, ShardId
from refimpl.peer.cluster_state import ClusterStateMachine
from refimpl.peer.node import Peer, ProposalError
from refimpl.peer.shard_wire import decode_update, encode_update
from refimpl.peer.shards import LocalShard, LocalShards
from refimpl.peer.transport import TransportError
from refimpl.points import (
    ALL_PAYLOAD,
    BadRequest,
    DeletePoints,
    ScrollRequest,
    UpsertPoints,
    id_sort_key,
)
from refimpl.replication import ReplicaEvent, ReplicaState
from refimpl.storage import ShardStore, SnapshotError, StorageError, WalRecord, encode_record
from refimpl.storage.snapshot import archive_bytes, parse_snapshot

__all__ = [
    "ATTEMPTS",
    "BATCH_POINTS",
    "CHUNK_BYTES",
    "RECOVERY_RETRY_S",
    "ShardTransfers",
    "delta_start",
    "op_digest",
]

log = logging.getLogger("refimpl.peer.transfers")

BATCH_POINTS = 100
"""Points per streamed page (Qdrant's stream_records batch)."""
TAIL_BATCH_POINTS = 1000
"""Points per request when the source sends WAL operations (a request holds whole operations)."""
CHUNK_BYTES = 4 << 20
"""Bytes of snapshot archive per request (base64 in JSON stays under the 8 MiB frame limit)."""
ATTEMPTS = 3
"""Tries of one transfer before it is aborted (Qdrant: 3, with 1 s x attempt between)."""
RECOVERY_RETRY_S = 2.0
"""How often a peer re-proposes the recovery of a replica that stays Dead."""
REQUEST_TIMEOUT_S = 30.0
PREPARE_WAIT_S = 10.0
"""How long a target waits to see the transfer's start applied before refusing to prepare."""
OPEN_WAIT_S = 2.0
"""How long an update for a replica not open yet waits for this peer's state to catch up."""
TAIL_POLL_S = 0.05
"""How often a WAL tail looks for new operations when no update woke it."""
LINGER_S = 30.0
"""How long a finished replication's tail keeps delivering late updates: a coordinator gives
up on a shard request after this long (:data:`refimpl.peer.router.SHARD_REQUEST_TIMEOUT_S`)."""
SYNC_WAIT_S = 5.0
"""How long the source waits for one peer to see the target Partial before finishing anyway
(a peer that cannot be reached coordinates no writes either)."""

T = TypeVar("T")
Key = tuple[str, ShardId]
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class TransferFailedError(Exception):
    """One attempt of a transfer failed; it is retried or aborted."""


@dataclass(slots=True)
class _Outgoing:
    """A transfer this peer is the source of."""

    collection: str
    transfer: ShardTransfer
    incarnation: int = -1
    """The collection's incarnation the transfer belongs to (a collection deleted and created
    again under the same name is another one: its updates are none of this entry's business)."""
    lock: trio.Lock = field(default_factory=trio.Lock)
    forwarding: bool = False
    failed: str | None = None
    comment: str = "starting"
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    wake: trio.Event = field(default_factory=trio.Event)
    """Set when the source applied an update (a WAL tail looks for it at once)."""
    sent_through: int = 0
    """The source's last operation a WAL tail has delivered to the target."""
    tailing: bool = False
    """A WAL tail runs: an update applied here is acknowledged only once it delivered it."""
    progress: trio.Event = field(default_factory=trio.Event)
    """Set (and replaced) each time the tail delivered more, and when it stops."""
    finishing: bool = False
    """The finish was proposed: once it applies, a replication's tail lingers a while."""


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
        self._incoming: dict[Key, bytearray] = {}
        self.lingering: dict[Key, _Outgoing] = {}
        """Finished replications whose WAL tail still runs (:data:`LINGER_S`)."""
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        view.listeners.append(self._wake)
        handlers = {"transfer_init": self.handle_prepare, "shard_update": self.handle_update,
                    "transfer_ops": self.handle_ops, "transfer_chunk": self.handle_chunk,
                    "transfer_restore": self.handle_restore,
                    "transfer_state": self.handle_state}  # fmt: skip
        peer.request_handlers.update(handlers)

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
                del self.outgoing[key]  # finished or aborted: the state says so
                if self._lingers(state, entry):
                    self.lingering[key] = entry  # its task ends by itself
                else:
                    entry.scope.cancel()
        for key, (name, t) in wanted.items():
            if key not in self.outgoing:
                entry = _Outgoing(name, t, incarnation=self.view.incarnation(name))
                self.outgoing[key] = entry
                self._nursery.start_soon(self._drive, entry)
        for name, shard_id, source in self._recoverable(state):
            key = (name, shard_id)
            now = trio.current_time()
            if now - self._recovery_at.get(key, -1e9) >= RECOVERY_RETRY_S:
                self._recovery_at[key] = now
                t = ShardTransfer(shard_id, source, self.peer.id, sync=True,
                                  method=TransferMethod.WAL_DELTA)  # fmt: skip
                self._nursery.start_soon(self._propose, StartTransfer(name, t), "recovery")

    @staticmethod
    def _lingers(state: ClusterState, entry: _Outgoing) -> bool:
        """A ``snapshot``/``wal_delta`` replication that finished (its target is Active): a
        write its coordinator started before it saw the target Partial may still reach only
        the source, so the tail keeps sending for a while (:data:`LINGER_S`)."""
        t = entry.transfer
        if not (entry.finishing and t.sync and t.method is not TransferMethod.STREAM_RECORDS):
            return False
        coll = state.collections.get(entry.collection)
        replicas = {} if coll is None else coll.replicas.get(t.shard_id, {})
        return replicas.get(t.to_peer) is ReplicaState.Active

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
                if entry.finishing and self._target_state(name, t) is ReplicaState.Active:
                    return  # the finish applied after its proposal timed out: nothing to redo
                try:
                    if t.method is TransferMethod.STREAM_RECORDS:
                        await self._attempt(entry)
                    else:
                        await self._recover(entry)
                        return  # it proposed the finish itself, while still tailing
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

    async def _prepare(self, entry: _Outgoing, method: TransferMethod) -> tuple[LocalShard, Any]:
        """Ask the target to prepare; return the source replica and the target's answer."""
        t, name = entry.transfer, entry.collection
        entry.failed = None
        entry.comment = "preparing the target"
        incarnation = self.view.incarnation(name)
        answer = await self._send(t.to_peer, {"kind": "transfer_init", "collection": name,
                                              "incarnation": incarnation, "shard_id": t.shard_id,
                                              "from_peer": t.from_peer,
                                              "method": method.value})  # fmt: skip
        shard = self.shards.get(name, t.shard_id)
        if shard is None or shard.incarnation != incarnation:
            raise TransferFailedError(f"the source replica of {name}/{t.shard_id} is not here")
        return shard, answer

    async def _attempt(self, entry: _Outgoing) -> None:
        """One ``stream_records`` attempt: empty the target, forward, stream every page."""
        shard, _ = await self._prepare(entry, TransferMethod.STREAM_RECORDS)
        entry.forwarding = True  # from here every local update is forwarded too
        await self._stream_pages(entry, shard)

    async def _stream_pages(self, entry: _Outgoing, shard: LocalShard) -> None:
        t, name = entry.transfer, entry.collection
        offset: Any = None
        sent = 0
        while True:
            async with entry.lock:
                page = await shard.run(partial(_page, offset=offset))
                if page.upsert is not None:
                    op = encode_update(page.upsert)
                    body = _update_body(name, shard.incarnation, t.shard_id, op)
                    await self._send(t.to_peer, body)
            sent += len(page.ids)
            entry.comment = f"transferring records ({sent} sent)"
            if entry.failed is not None:
                raise TransferFailedError(entry.failed)
            if page.next_offset is None:
                return
            offset = page.next_offset

    async def _recover(self, entry: _Outgoing) -> None:
        """One ``snapshot`` or ``wal_delta`` attempt into a Recovery target: send the base,
        then tail the source's WAL from it while switching the target Partial and finishing."""
        t = entry.transfer
        shard, answer = await self._prepare(entry, t.method)
        after: int | None = None
        if t.method is TransferMethod.WAL_DELTA:
            after = await self._delta_point(entry, shard, answer)
        if after is None and t.method is TransferMethod.WAL_DELTA:
            entry.comment = "the WAL delta cannot be resolved: streaming records instead"
            await self._prepare(entry, TransferMethod.STREAM_RECORDS)  # empties the target
            after = await shard.run(_last_op)
            await self._stream_pages(entry, shard)
        elif after is None:
            after = await self._send_snapshot(entry, shard)
        entry.sent_through, entry.tailing = after, True
        try:  # until the finish, updates here wait for the tail (or the flush) to deliver them
            await self._tail_until_partial(entry, shard)
            await self._flush_and_finish(entry, shard)
            if t.sync:
                await self._linger(entry, shard)
        finally:
            entry.tailing = False
            entry.progress.set()
            if self.lingering.get((entry.collection, t.shard_id)) is entry:
                del self.lingering[(entry.collection, t.shard_id)]

    async def _linger(self, entry: _Outgoing, shard: LocalShard) -> None:
        """After a replication finished: keep the tail running for :data:`LINGER_S`, so a
        write that reached only the source (its coordinator still saw the target in
        Recovery when it started it) is delivered too, and acknowledged only then."""
        entry.comment = "delivering late updates"
        with trio.move_on_after(LINGER_S):
            try:
                await self._tail(entry, shard, trio.Event())
            except TransferFailedError as exc:
                log.warning("peer %d: late updates of %s/%d to %d: %s", self.peer.id,
                            entry.collection, entry.transfer.shard_id, entry.transfer.to_peer,
                            exc)  # fmt: skip

    async def _tail_until_partial(self, entry: _Outgoing, shard: LocalShard) -> None:
        """Run the WAL tail while the target is switched to Partial."""
        try:
            async with trio.open_nursery() as nursery:
                caught_up = trio.Event()
                nursery.start_soon(self._tail, entry, shard, caught_up)
                await caught_up.wait()
                await self._switch_partial(entry)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            failed = group.subgroup(TransferFailedError)
            if failed is None:
                raise
            first: BaseException = failed
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            raise first from None

    async def _delta_point(self, entry: _Outgoing, shard: LocalShard, answer: Any) -> int | None:
        """The source operation number after which the target needs everything, or None."""
        digests = answer.get("digests") if isinstance(answer, dict) else None
        if not isinstance(digests, list):
            raise TransferFailedError("the target sent no recovery point")
        op_nums, mine, complete = await shard.run(_wal_digests)
        start = delta_start(mine, complete, [str(d) for d in digests])
        if start is None:
            return None
        entry.comment = f"sending the WAL delta ({len(op_nums) - start} operations)"
        if start == len(op_nums):
            return await shard.run(_last_op)
        return op_nums[start] - 1

    async def _send_snapshot(self, entry: _Outgoing, shard: LocalShard) -> int:
        """Checkpoint the source, ship the archive in chunks, have the target restore it;
        return the operation number the snapshot holds everything up to."""
        t, name = entry.transfer, entry.collection
        entry.comment = "creating snapshot"
        files, op_num = await shard.run(_snapshot)
        data = await self._offload(partial(archive_bytes, {t.shard_id: files}, {}, name))
        where = {"collection": name, "incarnation": shard.incarnation, "shard_id": t.shard_id}
        for offset in range(0, len(data), CHUNK_BYTES):
            chunk = base64.b64encode(data[offset : offset + CHUNK_BYTES]).decode("ascii")
            await self._send(t.to_peer, {"kind": "transfer_chunk", **where, "offset": offset,
                                         "data": chunk})  # fmt: skip
            entry.comment = f"transferring snapshot ({offset} of {len(data)} bytes)"
        entry.comment = "recovering"
        await self._send(t.to_peer, {"kind": "transfer_restore", **where, "size": len(data)})
        return op_num

    async def _tail(self, entry: _Outgoing, shard: LocalShard, caught_up: trio.Event) -> None:
        """Forever: send the source's WAL operations after ``entry.sent_through`` to the
        target, in order; ``caught_up`` is set once a look found nothing left to send."""
        sent = 0
        while True:
            entry.wake = trio.Event()  # before reading: an update applied later wakes us
            records = await shard.run(partial(_ops_since, after=entry.sent_through))
            if records is None:
                raise TransferFailedError(
                    f"the source's WAL no longer holds operation {entry.sent_through + 1}"
                )
            if not records:
                caught_up.set()
                with trio.move_on_after(TAIL_POLL_S):
                    await entry.wake.wait()
                continue
            sent += await self._send_ops(entry, shard, records)
            if not caught_up.is_set():
                entry.comment = f"syncing queued updates ({sent} sent)"

    async def _send_ops(
        self, entry: _Outgoing, shard: LocalShard, records: Sequence[WalRecord]
    ) -> int:
        t = entry.transfer
        for batch in _batches(records):
            ops = [encode_update(r.op) for r in batch]
            await self._send(t.to_peer, {"kind": "transfer_ops", "collection": entry.collection,
                                         "incarnation": shard.incarnation,
                                         "shard_id": t.shard_id, "ops": ops})  # fmt: skip
            entry.sent_through = batch[-1].op_num
            entry.progress.set()
            entry.progress = trio.Event()
        return len(records)

    async def _flush_and_finish(self, entry: _Outgoing, shard: LocalShard) -> None:
        """Holding the source replica (no update can apply to it meanwhile): send what the
        tail has not sent yet, then propose the finish. An update that reaches the source
        after the finish applied is refused there (the replica is retired) and its
        coordinator sends it again to the replicas of the new state."""
        t, name = entry.transfer, entry.collection
        entry.comment = "finalizing"
        async with shard.lock:
            store = shard.store
            assert store is not None, "the tail opened it"
            records = _ops_since(store, entry.sent_through)
            if records is None:
                raise TransferFailedError("the source's WAL was compacted under the transfer")
            await self._send_ops(entry, shard, records)
            finish = FinishTransfer(name, t.shard_id, t.from_peer, t.to_peer)
            entry.finishing = True
            if await self._propose(finish, "finish transfer") is not True:
                raise TransferFailedError("the finish was not applied")

    async def _switch_partial(self, entry: _Outgoing) -> None:
        """Recovery -> Partial through consensus; wait until the peers see it."""
        t, name = entry.transfer, entry.collection
        entry.comment = "waiting consensus"
        if self._target_state(name, t) is ReplicaState.Recovery:
            applied = SetReplicaState(name, t.shard_id, t.to_peer, ReplicaEvent.SNAPSHOT_APPLIED,
                                      from_state=ReplicaState.Recovery)  # fmt: skip
            await self._propose(applied, "recovery to partial")
        if self._target_state(name, t) is not ReplicaState.Partial:
            raise TransferFailedError("the target replica did not turn Partial")
        await self._peers_see_partial(name, t)

    def _target_state(self, name: str, t: ShardTransfer) -> ReplicaState | None:
        coll = self.view.cluster.collections.get(name)
        return None if coll is None else coll.replicas.get(t.shard_id, {}).get(t.to_peer)

    async def _peers_see_partial(self, name: str, t: ShardTransfer) -> None:
        """Qdrant's "sync all peers": until a coordinator knows the target is Partial it
        writes only to the source; the tail covers those writes only while it runs."""
        body = {"kind": "transfer_state", "collection": name, "shard_id": t.shard_id,
                "peer_id": t.to_peer}  # fmt: skip

        async def ask(peer: PeerId) -> None:
            with trio.move_on_after(SYNC_WAIT_S):
                while True:
                    try:
                        if await self._send(peer, body) != ReplicaState.Recovery.value:
                            return
                    except TransferFailedError:
                        pass
                    await trio.sleep(0.05)

        async with trio.open_nursery() as nursery:
            for peer in sorted(self.view.cluster.peers):
                if peer != self.peer.id:
                    nursery.start_soon(ask, peer)

    async def _delivered(self, entry: _Outgoing) -> None:
        """Wait until the WAL tail delivered every operation this replica has applied so far
        (so one client's later write, sent to the target directly, cannot overtake its
        earlier one still in the tail); at once if no tail runs."""
        shard = self.shards.get(entry.collection, entry.transfer.shard_id)
        if shard is None or shard.store is None or shard.incarnation != entry.incarnation:
            return
        wanted = shard.store.last_op_num
        while entry.tailing and entry.sent_through < wanted:
            await entry.progress.wait()

    async def _offload(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a worker thread, or inline where shard calls are (the simulation:
        a thread would let virtual time jump while it runs)."""
        if self.shards.threaded:
            return await trio.to_thread.run_sync(fn)
        await trio.lowlevel.checkpoint()
        return fn()

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
        the target of an outgoing ``stream_records`` transfer of that shard, if forwarding has
        begun; wake the WAL tail of a ``snapshot`` or ``wal_delta`` transfer."""
        entry = self.outgoing.get((collection, shard_id)) or self.lingering.get(
            (collection, shard_id)
        )
        if entry is None or body.get("forwarded") or body.get("incarnation") != entry.incarnation:
            return  # (an update of a re-created collection must not wait for an old tail)
        if entry.transfer.method is not TransferMethod.STREAM_RECORDS:
            entry.wake.set()
            await self._delivered(entry)
            return
        if not entry.forwarding:
            return
        async with entry.lock:
            try:
                await self._send(entry.transfer.to_peer, {**body, "forwarded": True})
            except TransferFailedError as exc:
                entry.failed = entry.failed or f"forwarding an update failed: {exc}"

    # ---------------------------------------------------------- the target side

    async def handle_prepare(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_init``: wait to see the transfer started here; then, by method, empty
        the replica (``stream_records``), nothing (``snapshot``: the restore replaces it) or
        report the recovery point (``wal_delta``)."""
        name, shard_id = str(body.get("collection")), ShardId(int(body.get("shard_id", -1)))
        with trio.move_on_after(PREPARE_WAIT_S):
            while not self._is_target(name, shard_id, body.get("incarnation")):
                await trio.sleep(0.02)
        shard = self._target_shard(body)
        if shard is None:
            return _not_target(self.peer.id, name, shard_id)
        self._incoming.pop(shard.key, None)
        method = body.get("method", TransferMethod.STREAM_RECORDS.value)
        if method == TransferMethod.WAL_DELTA.value:
            digests = await shard.run(lambda s: [op_digest(r) for r in s.wal.records])
            log.info("peer %d: prepared %s/%d for a wal_delta transfer (%d operations held)",
                     self.peer.id, name, shard_id, len(digests))  # fmt: skip
            return {"ok": True, "result": {"digests": digests}}
        if method == TransferMethod.SNAPSHOT.value:
            return {"ok": True, "result": 0}
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

    def _target_shard(self, body: dict[str, Any]) -> LocalShard | None:
        """The replica a transfer request is for, if this peer is that transfer's target."""
        name, shard_id = body.get("collection"), body.get("shard_id")
        if not isinstance(name, str) or not isinstance(shard_id, int):
            return None
        if not self._is_target(name, ShardId(shard_id), body.get("incarnation")):
            return None
        return self.shards.get(name, ShardId(shard_id))

    async def handle_ops(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_ops``: apply the source's WAL operations in their order (to the target
        of a transfer, or to a replica a finished replication still sends late updates)."""
        shard = self._target_shard(body) or self._held_shard(body)
        ops = body.get("ops")
        if shard is None or not isinstance(ops, list):
            return _not_target(self.peer.id, body.get("collection"), body.get("shard_id"))
        try:
            decoded = [decode_update(raw, shard.config.dim)[0] for raw in ops]
            if any(op is None for op in decoded):
                raise BadRequest("Bad request: a transferred operation must not be a filter")
            count = await shard.run(partial(_apply_all, ops=decoded))
        except (BadRequest, StorageError) as exc:
            return {"ok": False, "error": str(exc), "retryable": True}
        return {"ok": True, "result": count}

    def _held_shard(self, body: dict[str, Any]) -> LocalShard | None:
        name, shard_id = body.get("collection"), body.get("shard_id")
        if not isinstance(name, str) or not isinstance(shard_id, int):
            return None
        shard = self.shards.get(name, ShardId(shard_id))
        held = shard is not None and shard.incarnation == body.get("incarnation")
        return shard if held and not self._transfers_of(name, ShardId(shard_id)) else None

    def _transfers_of(self, name: str, shard_id: ShardId) -> bool:
        coll = self.view.cluster.collections.get(name)
        return coll is not None and any(t.shard_id == shard_id for t in coll.transfers)

    async def handle_chunk(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_chunk``: the next piece of a snapshot archive, in order."""
        shard = self._target_shard(body)
        if shard is None:
            return _not_target(self.peer.id, body.get("collection"), body.get("shard_id"))
        buffer = self._incoming.setdefault(shard.key, bytearray())
        if body.get("offset") == 0:
            buffer.clear()
        if body.get("offset") != len(buffer):
            return {"ok": False, "retryable": True,
                    "error": f"snapshot chunk at {body.get('offset')}, expected {len(buffer)}"}  # fmt: skip
        try:
            buffer += base64.b64decode(str(body.get("data")), validate=True)
        except (binascii.Error, ValueError):
            return {"ok": False, "retryable": True, "error": "snapshot chunk is not base64"}
        return {"ok": True, "result": len(buffer)}

    async def handle_restore(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_restore``: verify the whole archive, then replace the replica with it."""
        shard = self._target_shard(body)
        if shard is None:
            return _not_target(self.peer.id, body.get("collection"), body.get("shard_id"))
        data = bytes(self._incoming.pop(shard.key, b""))
        if len(data) != body.get("size"):
            return {"ok": False, "retryable": True,
                    "error": f"got {len(data)} snapshot bytes of {body.get('size')}"}  # fmt: skip
        try:
            snapshot = await self._offload(partial(parse_snapshot, data, "transferred snapshot"))
            files = snapshot.shards.get(shard.shard_id)
            if files is None or len(snapshot.shards) != 1:
                raise SnapshotError(f"the snapshot does not hold exactly shard {shard.shard_id}")
            points = await shard.restore(files)
        except StorageError as exc:  # SnapshotError included: nothing usable was restored
            return {"ok": False, "retryable": True, "error": str(exc)}
        log.info("peer %d: restored %s/%d from a transferred snapshot (%d points)",
                 self.peer.id, shard.collection, shard.shard_id, points)  # fmt: skip
        return {"ok": True, "result": points}

    async def handle_state(self, body: dict[str, Any]) -> dict[str, Any]:
        """``transfer_state``: the state this peer sees for one replica (or null)."""
        coll = self.view.cluster.collections.get(str(body.get("collection")))
        shard_id, peer = body.get("shard_id"), body.get("peer_id")
        state = None
        if coll is not None and isinstance(shard_id, int) and isinstance(peer, int):
            state = coll.replicas.get(ShardId(shard_id), {}).get(PeerId(peer))
        return {"ok": True, "result": None if state is None else state.value}

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


def _not_target(peer: PeerId, name: object, shard_id: object) -> dict[str, Any]:
    return {"ok": False, "retryable": True,
            "error": f"peer {peer} is not the target of a transfer of {name}/{shard_id}"}  # fmt: skip


# ------------------------------------------------------------- recovery points


def op_digest(record: WalRecord) -> str:
    """A short digest of a logged operation's content (its number left out, since every
    replica numbers operations itself): how two replicas recognise the same operation."""
    return hashlib.blake2b(encode_record(WalRecord(0, record.op)), digest_size=8).hexdigest()


# [wal-delta-start] begin
def delta_start(source: Sequence[str], complete: bool, target: Sequence[str]) -> int | None:
    """Where in the source's WAL (digests ``source``, oldest first) the target (digests of
    its own WAL, ``target``) must start receiving operations; None when a delta cannot be
    trusted. ``complete`` says the source's WAL reaches back to its first operation.

    The two WALs are lined up by position, not looked up as sets: the target's last operation
    must stand in the source's WAL with the operations before it in the same order (as far
    back as both reach), and the delta starts right after it. Set membership would be wrong
    when a client repeats an operation word for word (set x=1, x=2, x=1 again): the repeat
    looks present on a target that missed it. The earliest such place is taken, so a doubt
    costs re-sending operations the target already applied, never skipping one it lacks
    (replaying an ordered run of upserts and deletes on top of its own result changes
    nothing). Refused: the target's WAL does not line up (it holds operations the source
    never saw, or in another order), or it starts after the source's oldest retained
    operation while the source's WAL was compacted (what came before cannot be compared)."""
    if not target:
        return 0 if complete else None
    last = target[-1]
    for j, digest in enumerate(source):
        if digest != last:
            continue
        overlap = min(len(target), j + 1)
        if list(source[j + 1 - overlap : j + 1]) != list(target[len(target) - overlap :]):
            continue
        if j + 1 - overlap == 0:  # lined up back to the source's oldest retained operation
            return j + 1
        return 0 if complete else None  # the target's WAL starts later: resend everything
    return None


# [wal-delta-start] end


# ---------------------------------------------------- calls run on a shard store


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


def _last_op(store: ShardStore) -> int:
    return store.last_op_num


def _wal_digests(store: ShardStore) -> tuple[list[int], list[str], bool]:
    """The retained WAL records' numbers and digests, and whether they reach back to the
    first operation."""
    records = store.wal.records
    return (
        [r.op_num for r in records],
        [op_digest(r) for r in records],
        store.wal.dropped_through == 0,
    )


def _snapshot(store: ShardStore) -> tuple[dict[str, bytes], int]:
    """A checkpoint's files and the operation number they hold everything up to."""
    return dict(store.snapshot_files()), store.last_op_num


def _ops_since(store: ShardStore, after: int) -> list[WalRecord] | None:
    found = store.ops_since(after)
    return None if found is None else list(found)


def _apply_all(store: ShardStore, ops: Sequence[Any]) -> int:
    """Apply transferred operations in order, then make them durable at once."""
    for op in ops:
        store.apply(op, wait=False)
    store.sync()
    return len(ops)


def _batches(records: Sequence[WalRecord]) -> list[list[WalRecord]]:
    """Whole operations grouped up to :data:`TAIL_BATCH_POINTS` points per request."""
    batches: list[list[WalRecord]] = []
    points = 0
    for record in records:
        if not batches or points + len(record.op.ids) > TAIL_BATCH_POINTS:
            batches.append([])
            points = 0
        batches[-1].append(record)
        points += len(record.op.ids)
    return batches


def _update_body(name: str, incarnation: int, shard_id: ShardId, op: Any) -> dict[str, Any]:
    return {"kind": "shard_update", "collection": name, "incarnation": incarnation,
            "shard_id": shard_id, "wait": True, "op": op}  # fmt: skip

"""Points across the cluster: any peer accepts any points request and routes it to the shards.

Rules (spec "Sharding"; facts §3, §5):

* **Validate first.** The whole request is parsed and checked (dimension, finite components,
  ids, filter) against the collection before any shard sees it, so a bad batch is refused as a
  whole and never half-applied.
* **Writes** are split by the hash ring (a delete by filter goes to every shard) and each part
  is sent, in parallel, to every replica of its shard that accepts writes: the local one
  directly, remote ones as ``shard_update`` requests (:mod:`refimpl.peer.shard_wire`). A part
  succeeds by :func:`refimpl.replication.write_outcome`; replicas that failed while enough
  others succeeded are marked Dead through consensus before the client is answered.
* **Reads** fan out to every shard. Within a shard, the read ``consistency`` (``1`` by
  default, an integer, ``majority``, ``quorum`` or ``all``) and the collection's
  ``read_fan_out_factor`` decide how many Active replicas to ask and how many answers are
  needed (:func:`refimpl.replication.plan_read`, spec "Consistency guarantees": a partial
  fan-out): the local replica first, the others in a seeded shuffled order, that many at once,
  the next one whenever one cannot answer, until enough answered. Several answers combine as
  Qdrant does (:mod:`refimpl.replication.reads`): a point is kept when the same copy of it is
  in all (or most) answers — so a point that one replica has not updated yet drops out of an
  ``all`` read instead of being answered from either side — and counts take the minimum (or
  the middle). Too few Active replicas, or too few answers, fail the read with a retryable 503
  saying which shard and why; a read never marks a replica Dead. The shards' answers then
  merge: queries keep the best ``offset + limit`` by score, scrolls the first ``limit`` ids,
  counts add up, retrieves keep the request's order.
* **A write whose replica set changed under it** is retried: when a shard part fails and
  consensus has since changed that shard's replicas (a move finished, a replica was marked
  Dead), the part is sent again to the replicas the fresh state names, up to
  :data:`WRITE_ATTEMPTS` times; if the collection was deleted or re-created meanwhile, the write
  fails with a clear message instead.
* A query by point id first fetches that point's vector from the shard that owns it, then
  queries every shard with the vector, leaving the point itself out (as Qdrant).
* Errors: bad input raises :class:`refimpl.points.BadRequest` (4xx); an unknown collection
  :class:`CollectionNotFoundError` (404); a shard that cannot be served
  :class:`ShardUnavailableError` (500/503 with Qdrant's wording).

Theory of operation: :class:`Router` runs on the peer's trio loop; the local store's calls run
in worker threads (:class:`refimpl.peer.shards.LocalShard`); :meth:`Router.handle_request` is
the receiving side of the two request kinds.
"""

import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar

import numpy as np
import trio

from refimpl.consensus import (
    CollectionState,
    SetReplicaState,
    encode_operation,
)
from refimpl.ids import PeerId, PointId, ShardId
from refimpl.peer.node import Peer, ProposalError
from refimpl.peer.shard_wire import (
    decode_record,
    decode_scored,
    decode_scroll_page,
    decode_update,
    encode_update,
)
from refimpl.peer.shards import ClusterView, LocalShard, LocalShards
from refimpl.peer.transport import TransportError
from refimpl.points import (
    BadRequest,
    DeleteByFilter,
    DeletePoints,
    Record,
    ScoredRecord,
    ScrollPage,
    UpdateOperation,
    UpsertPoints,
    decode_body,
    id_sort_key,
    id_to_json,
    merge_ordered,
    merge_scored,
    merge_scroll,
    parse_count,
    parse_delete,
    parse_filter,
    parse_query,
    parse_query_batch,
    parse_retrieve,
    parse_scroll,
    parse_upsert,
)
from refimpl.points.errors import point_not_found
from refimpl.replication import (
    ReadConsistency,
    ReplicaEvent,
    WriteOutcome,
    write_outcome,
    write_targets,
)
from refimpl.replication.reads import (
    NotEnoughReplicasError,
    ReadPlan,
    ResolveCondition,
    plan_read,
    resolve_count,
    resolve_items,
)
from refimpl.sharding import HashRing
from refimpl.storage import ShardStore, StorageError

__all__ = [
    "ClusterView",
    "CollectionNotFoundError",
    "Router",
    "ShardUnavailableError",
    "split_by_shard",
]

log = logging.getLogger("refimpl.peer.router")

T = TypeVar("T")
SHARD_REQUEST_TIMEOUT_S = 30.0
_HIGHER_IS_BETTER = {"Cosine": True, "Dot": True, "Euclid": False, "Manhattan": False}


MARK_DEAD_WAIT_S = 30.0
"""How long a coordinator keeps proposing that a failed replica is Dead before it gives up."""
WRITE_ATTEMPTS = 3
"""How many times one shard's part of a write is sent while its replica set keeps changing."""


class CollectionNotFoundError(BadRequest):
    """The request names a collection that does not exist."""

    status_code = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"Not found: Collection `{name}` doesn't exist!")


class ShardUnavailableError(Exception):
    """A shard could not be read or written; ``status_code`` is the HTTP answer."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class _ReplicaFailedError(Exception):
    """One replica did not answer (transport error, shard not there yet, remote failure)."""


@dataclass(frozen=True, slots=True)
class _Target:
    """A collection as one request sees it: its state at the start of the request."""

    name: str
    incarnation: int
    state: CollectionState
    ring: HashRing

    @property
    def dim(self) -> int:
        return self.state.config.vectors.size


def split_by_shard(op: UpsertPoints | DeletePoints, ring: HashRing) -> dict[ShardId, Any]:
    """The part of ``op`` each shard owns (by the hash ring), keeping the points' order."""
    rows: dict[ShardId, list[int]] = {}
    for i, point_id in enumerate(op.ids):
        rows.setdefault(ring.shard_for(point_id), []).append(i)
    if isinstance(op, DeletePoints):
        return {s: DeletePoints(tuple(op.ids[i] for i in idx)) for s, idx in rows.items()}
    return {
        s: UpsertPoints(
            tuple(op.ids[i] for i in idx),
            op.vectors[np.asarray(idx, dtype=np.int64)],
            tuple(op.payloads[i] for i in idx),
        )
        for s, idx in rows.items()
    }


def _parse_and_split(body: object, t: _Target) -> dict[ShardId, Any]:
    """An upsert body (decoded JSON, or the request's raw bytes) checked and split by shard."""
    if isinstance(body, bytes):  # a JSON value is never bytes: these are the raw request
        body = decode_body(body)
    return split_by_shard(parse_upsert(body, t.dim), t.ring)


async def _gather(calls: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run ``calls`` concurrently; their results in order."""
    results: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        results[i] = await calls[i]()

    try:
        async with trio.open_nursery() as nursery:
            for i in range(len(calls)):
                nursery.start_soon(one, i)
    except BaseExceptionGroup as group:
        # One failed part fails the request: answer with its error, not with the group.
        first: BaseException = group
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        if isinstance(first, Exception):
            raise first from None
        raise
    return results


class Router:
    """Coordinates points requests for one peer (see the module rules)."""

    def __init__(self, peer: Peer, view: ClusterView, shards: LocalShards) -> None:
        self.peer = peer
        self.view = view
        self.shards = shards
        self._rings: dict[int, HashRing] = {}
        self._rng = random.Random(int(peer.id))
        """Shuffles the remote replicas a read asks (seeded: simulations replay)."""
        self.after_local_update: (
            Callable[[str, ShardId, dict[str, Any]], Awaitable[None]] | None
        ) = None
        """Called once this peer applied an update it coordinated to its own replica (a shard
        transfer forwards it to the target, :mod:`refimpl.peer.transfers`)."""

    # ------------------------------------------------------------ collections

    def target(self, name: str) -> _Target:
        """The collection ``name`` as this request will route it."""
        state = self.view.cluster.collections.get(name)
        if state is None:
            raise CollectionNotFoundError(name)
        n = state.config.shard_number
        ring = self._rings.get(n)
        if ring is None:
            ring = self._rings[n] = HashRing([ShardId(s) for s in range(n)])
        return _Target(name, self.view.incarnation(name), state, ring)

    def _local(self, t: _Target, shard_id: ShardId) -> LocalShard:
        shard = self.shards.get(t.name, shard_id)
        if shard is None or shard.incarnation != t.incarnation:
            raise _ReplicaFailedError(
                f"shard {shard_id} of {t.name!r} is not open on this peer yet"
            )
        return shard

    async def _remote(self, peer: PeerId, body: dict[str, Any]) -> Any:
        uri = self.peer.addresses().get(peer)
        if uri is None:
            raise _ReplicaFailedError(f"no address for peer {peer}")
        try:
            answer = await self.peer.transport.request(uri, body, SHARD_REQUEST_TIMEOUT_S)
        except TransportError as exc:
            raise _ReplicaFailedError(str(exc)) from None
        if answer.get("ok") is True:
            return answer.get("result")
        if isinstance(answer.get("status"), int) and not answer.get("retryable", True):
            raise _RemoteBadRequestError(int(answer["status"]), str(answer.get("error")))
        raise _ReplicaFailedError(f"peer {peer}: {answer.get('error')}")

    # ------------------------------------------------------------------ writes

    async def upsert(self, name: str, body: object, wait: bool) -> dict[str, Any]:
        """``PUT /collections/{name}/points``; ``body`` is the decoded JSON, or the request's
        raw bytes (then decoded here, see below)."""
        t = self.target(name)
        # Decoding a big batch and checking every component takes a while: off the event
        # loop, both in one worker thread (each hand-off to a thread and back costs the
        # loop a wake-up and a switch; issue 6 measured them per batch).
        if self.shards.threaded:
            parts = await trio.to_thread.run_sync(_parse_and_split, body, t)
        else:  # the peer simulation: a worker thread would let the virtual clock jump meanwhile
            parts = _parse_and_split(body, t)
        return await self._write(t, parts, None, wait)

    async def delete(self, name: str, body: object, wait: bool) -> dict[str, Any]:
        """``POST /collections/{name}/points/delete``."""
        t = self.target(name)
        op = parse_delete(body)
        if isinstance(op, DeletePoints):
            return await self._write(t, split_by_shard(op, t.ring), None, wait)
        assert isinstance(body, dict)
        every = {ShardId(s): op for s in range(t.state.config.shard_number)}
        return await self._write(t, every, body["filter"], wait)

    async def _write(
        self, t: _Target, parts: Mapping[ShardId, UpdateOperation], raw_filter: object, wait: bool
    ) -> dict[str, Any]:
        calls = [
            (lambda s=s, op=op: self._write_shard(t, s, op, raw_filter, wait))
            for s, op in sorted(parts.items())
        ]
        op_ids = await _gather(calls)
        status = "completed" if wait else "acknowledged"
        return {"operation_id": max(op_ids, default=0), "status": status}

    async def _write_shard(
        self, t: _Target, shard_id: ShardId, op: UpdateOperation, raw_filter: object, wait: bool
    ) -> int:
        """Send one shard's part to its replicas; if it fails because consensus changed the
        shard's replica set meanwhile, send it again to the replicas of the fresh state.

        Why sending it again is safe: the client has not been answered, so the write may take
        effect at any moment until it is, and applying it twice equals applying it once.
        Upserts and deletes by id name the points and their final contents, so a replica that
        already applied the first attempt ends in the same state after the second. A delete by
        filter deletes what matches *when it is applied*: a second attempt may also remove a
        matching point that another client upserted in between — which is what the same
        delete, arriving a moment later, would have done; nothing orders concurrent writes of
        different clients (spec "Consistency guarantees")."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            outcome, op_ids, errors = await self._write_replicas(t, shard_id, op, raw_filter, wait)
            if outcome.succeeded:
                if outcome.to_mark_dead:
                    await self._mark_dead(t, shard_id, outcome.to_mark_dead)
                return max(op_ids)
            fresh = self._changed_under(t, shard_id)
            if fresh is None or attempt == WRITE_ATTEMPTS:
                break
            log.info("peer %d: replicas of %s/%d changed during a write (%s); sending it again",
                     self.peer.id, t.name, shard_id, outcome.reason)  # fmt: skip
            t = fresh
        detail = "; ".join(errors)
        raise ShardUnavailableError(
            500, f"Service internal error: shard {shard_id} of `{t.name}`: {outcome.reason}"
            + (f" ({detail})" if detail else ""),
        )  # fmt: skip

    def _changed_under(self, t: _Target, shard_id: ShardId) -> _Target | None:
        """The collection as consensus has it now, if the shard's replica set changed since
        ``t`` was taken; None if it did not. A collection deleted or re-created meanwhile is
        an error: the write was meant for the one that is gone."""
        state = self.view.cluster.collections.get(t.name)
        if state is None:
            raise CollectionNotFoundError(t.name)
        if self.view.incarnation(t.name) != t.incarnation:
            raise ShardUnavailableError(
                500, f"Service internal error: collection `{t.name}` was deleted and created "
                "again while this write was in flight; it may have reached replicas of the old "
                "collection and was not applied to the new one. Send it again to write to the "
                "new collection.",
            )  # fmt: skip
        if state.replicas.get(shard_id) == t.state.replicas[shard_id]:
            return None
        return self.target(t.name)

    async def _write_replicas(
        self, t: _Target, shard_id: ShardId, op: UpdateOperation, raw_filter: object, wait: bool
    ) -> tuple[WriteOutcome, list[int], list[str]]:
        """One attempt: the update to every replica of the shard that takes writes, at once;
        the write-concern outcome, the operation ids and the failures."""
        states = t.state.replicas[shard_id]
        acks: dict[PeerId, bool] = {}
        op_ids: list[int] = [0]
        errors: list[str] = []
        wire = None if isinstance(op, DeleteByFilter) else encode_update(op)
        body = {"kind": "shard_update", "collection": t.name, "incarnation": t.incarnation,
                "shard_id": shard_id, "wait": wait,
                "op": wire if wire is not None else encode_update(None, raw_filter)}  # fmt: skip

        async def one(peer: PeerId) -> None:
            try:
                if peer == self.peer.id:
                    local = self._local(t, shard_id)
                    result = await local.run(lambda s: s.apply(op, wait=wait).operation_id)
                    if self.after_local_update is not None:
                        await self.after_local_update(t.name, shard_id, body)
                else:
                    result = int((await self._remote(peer, body))["operation_id"])
            except (
                _ReplicaFailedError, _RemoteBadRequestError, BadRequest, StorageError, OSError
            ) as exc:  # fmt: skip
                acks[peer] = False
                errors.append(f"peer {peer}: {exc}")
                return
            acks[peer] = True
            op_ids.append(result)

        async with trio.open_nursery() as nursery:
            for peer in write_targets(states):
                nursery.start_soon(one, peer)
        outcome = write_outcome(acks, states, t.state.config.write_consistency_factor)
        return outcome, op_ids, errors

    async def _mark_dead(self, t: _Target, shard_id: ShardId, peers: Sequence[PeerId]) -> None:
        """Replicas that missed an acknowledged write must not serve reads (spec "Error
        handling"): mark them Dead before the client hears "completed"."""
        for peer in peers:
            op = SetReplicaState(t.name, shard_id, peer, ReplicaEvent.UPDATE_FAILED,
                                 from_state=t.state.replicas[shard_id][peer])  # fmt: skip
            result = await self._propose_dead(op)
            log.warning("peer %d: marked %s/%d on peer %d dead: %s",
                        self.peer.id, t.name, shard_id, peer, result)  # fmt: skip

    async def _propose_dead(self, op: SetReplicaState) -> Any:
        """Propose ``op``, retrying with backoff while consensus has no leader (the peer that
        failed may have been the leader), for up to :data:`MARK_DEAD_WAIT_S` (Qdrant retries
        until the Dead state is committed and waits up to 30 s before answering)."""
        delay_s, waited_s = 0.1, 0.0
        while True:
            try:
                return await self.peer.propose(encode_operation(op))
            except ProposalError as exc:
                if not exc.retryable or waited_s >= MARK_DEAD_WAIT_S:
                    raise ShardUnavailableError(
                        500, "Service internal error: Consistency of this update is not "
                        f"guaranteed ({exc}). Please retry.",
                    ) from None  # fmt: skip
            await trio.sleep(delay_s)
            waited_s += delay_s
            delay_s = min(2 * delay_s, 2.0)

    # ------------------------------------------------------------------- reads

    async def _read_all(
        self, t: _Target, read: "_Read[T]", consistency: ReadConsistency
    ) -> list[T]:
        """Ask every shard of the collection, concurrently."""
        calls = [partial(self._read_shard, t, s, read, consistency) for s in self._shards(t)]
        return await _gather(calls)

    async def _read_shard(
        self, t: _Target, shard_id: ShardId, read: "_Read[T]", consistency: ReadConsistency
    ) -> T:
        """Ask as many Active replicas as ``consistency`` needs and combine their answers."""
        replicas = t.state.replicas[shard_id]
        states = ", ".join(f"{p}: {s.value}" for p, s in sorted(replicas.items()))
        try:
            plan = plan_read(replicas, self.peer.id, consistency, rng=self._rng,
                             read_fan_out_factor=t.state.config.read_fan_out_factor,
                             read_fan_out_delay_ms=t.state.config.read_fan_out_delay_ms)  # fmt: skip
        except NotEnoughReplicasError as exc:
            raise ShardUnavailableError(
                503, f"Service unavailable: the replica set for shard {shard_id} of `{t.name}` "
                f"does not have enough active replicas for read consistency {_spell(consistency)}"
                f": {exc} (replicas {states}). Retry later or with a lower consistency.",
            ) from None  # fmt: skip
        answers, errors = await self._ask_replicas(t, shard_id, read, plan)
        if len(answers) < plan.required:
            raise ShardUnavailableError(
                503, f"Service unavailable: shard {shard_id} of `{t.name}`: {len(errors)} of "
                f"{len(errors) + len(answers)} read operations failed, {plan.required} answers "
                f"needed for read consistency {_spell(consistency)} (replicas {states}): "
                + "; ".join(errors or ["no active replica"]),
            )  # fmt: skip
        return answers[0] if len(answers) == 1 else read.resolve(answers, plan.condition)

    async def _ask_replicas(
        self, t: _Target, shard_id: ShardId, read: "_Read[T]", plan: ReadPlan
    ) -> tuple[list[T], list[str]]:
        """Ask ``plan.initial_parallel`` replicas at once, the next in ``plan.order`` whenever
        one fails (and once, after ``plan.fan_out_delay_s``, if answers are still missing),
        until ``plan.required`` answered (the rest are cancelled) or none is left.
        The answers come back in the plan's order; the errors say which replica failed how."""
        request = {"kind": "shard_read", "collection": t.name, "incarnation": t.incarnation,
                   "shard_id": shard_id, "read": read.kind, "body": read.body}  # fmt: skip
        waiting = list(enumerate(plan.order))[::-1]  # popped from the end: the plan's order
        answered: list[tuple[int, T]] = []
        errors: list[str] = []
        refused: list[BadRequest] = []

        async def ask(index: int, peer: PeerId) -> None:
            try:
                if peer == self.peer.id:
                    answer = await self._local(t, shard_id).run(read.local)
                else:
                    answer = read.decode(await self._remote(peer, request))
            except (_ReplicaFailedError, StorageError, OSError) as exc:  # this replica only
                errors.append(f"peer {peer}: {exc}")
                if waiting:
                    nursery.start_soon(ask, *waiting.pop())
                if not waiting:
                    hedging.cancel()  # nobody left to hedge with: do not hold the read open
                return
            except (_RemoteBadRequestError, BadRequest) as exc:
                refused.append(_as_bad_request(exc))  # bad everywhere: no use asking others
                nursery.cancel_scope.cancel()
                return
            answered.append((index, answer))
            if len(answered) >= plan.required:
                nursery.cancel_scope.cancel()

        async def hedge(delay_s: float) -> None:
            """Qdrant's ``read_fan_out_delay_ms``: a slow read asks one more replica."""
            with hedging:
                await trio.sleep(delay_s)
                if waiting and len(answered) < plan.required:
                    nursery.start_soon(ask, *waiting.pop())

        hedging = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            for _ in range(plan.initial_parallel):
                nursery.start_soon(ask, *waiting.pop())
            if plan.fan_out_delay_s is not None and waiting:
                nursery.start_soon(hedge, plan.fan_out_delay_s)
        if refused:
            raise refused[0]
        first = sorted(answered[: plan.required], key=lambda pair: pair[0])
        return [answer for _, answer in first], errors

    def _shards(self, t: _Target) -> list[ShardId]:
        return [ShardId(s) for s in range(t.state.config.shard_number)]

    async def count(
        self, name: str, body: object, consistency: ReadConsistency = 1
    ) -> dict[str, Any]:
        """``POST /collections/{name}/points/count``: the sum over every shard."""
        t = self.target(name)
        req = parse_count(body)
        raw = body if body is not None else {}
        read = _Read("count", raw, lambda st: st.count(req.filter), lambda r: int(r["count"]),
                     resolve_count)  # fmt: skip
        return {"count": sum(await self._read_all(t, read, consistency))}

    async def retrieve(
        self, name: str, body: object, consistency: ReadConsistency = 1
    ) -> list[dict[str, Any]]:
        """``POST /collections/{name}/points``: each id from its shard, in request order."""
        t = self.target(name)
        req = parse_retrieve(body)
        assert isinstance(body, dict)
        by_shard: dict[ShardId, list[PointId]] = {}
        for point_id in req.ids:
            by_shard.setdefault(t.ring.shard_for(point_id), []).append(point_id)

        def call(s: ShardId, ids: list[PointId]) -> Callable[[], Awaitable[list[Record]]]:
            sub = {**body, "ids": [id_to_json(p) for p in ids]}
            read = _Read(
                "retrieve", sub, lambda st: st.retrieve(ids, req.with_payload, req.with_vector),
                _decode_records, _resolve_records,
            )  # fmt: skip
            return partial(self._read_shard, t, s, read, consistency)

        answers = await _gather([call(s, ids) for s, ids in sorted(by_shard.items())])
        found = {r.id: r for answer in answers for r in answer}
        out, seen = [], set()
        for point_id in req.ids:
            if point_id in found and point_id not in seen:
                seen.add(point_id)
                out.append(found[point_id].to_json())
        return out

    async def scroll(
        self, name: str, body: object, consistency: ReadConsistency = 1
    ) -> dict[str, Any]:
        """``POST /collections/{name}/points/scroll``: merged pages, ids in order."""
        t = self.target(name)
        req = parse_scroll(body)
        raw = body if body is not None else {}
        read = _Read("scroll", raw, lambda st: st.scroll(req), decode_scroll_page, _resolve_pages)
        pages = await self._read_all(t, read, consistency)
        if req.order_by is not None:
            merged = merge_ordered(pages, req.limit, req.order_by.direction == "desc")
        else:
            merged = merge_scroll(pages, req.limit)
        return merged.to_json()

    async def query(
        self, name: str, body: object, consistency: ReadConsistency = 1
    ) -> dict[str, Any]:
        """``POST /collections/{name}/points/query``: top-k over every shard."""
        t = self.target(name)
        parse_query(body, t.dim)  # check everything before any shard is asked
        assert isinstance(body, dict)
        return {"points": [h.to_json() for h in await self._query(t, body, consistency)]}

    async def query_batch(
        self, name: str, body: object, consistency: ReadConsistency = 1
    ) -> list[dict[str, Any]]:
        """``POST /collections/{name}/points/query/batch``."""
        t = self.target(name)
        parse_query_batch(body, t.dim)
        assert isinstance(body, dict)
        out = []
        for search in body["searches"]:
            hits = await self._query(t, search, consistency)
            out.append({"points": [h.to_json() for h in hits]})
        return out

    async def _query(
        self, t: _Target, body: dict[str, Any], consistency: ReadConsistency
    ) -> list[ScoredRecord]:
        req = parse_query(body, t.dim)
        if req.nearest_id is not None:
            body = await self._by_vector_of(t, body, req.nearest_id, consistency)
            req = parse_query(body, t.dim)
        k = req.offset + req.limit
        shard_body = {**body, "limit": k, "offset": 0}
        local_req = replace(req, limit=k, offset=0)
        read = _Read("query", shard_body, lambda st: st.search(local_req), _decode_hits,
                     _resolve_hits)  # fmt: skip
        answers = await self._read_all(t, read, consistency)
        better = _HIGHER_IS_BETTER[t.state.config.vectors.distance.value]
        return merge_scored(answers, req.limit, req.offset, better)

    async def _by_vector_of(
        self, t: _Target, body: dict[str, Any], point_id: PointId, consistency: ReadConsistency
    ) -> dict[str, Any]:
        """Rewrite a query by point id into a query by that point's vector, without it."""
        shard_id = t.ring.shard_for(point_id)
        sub = {"ids": [id_to_json(point_id)], "with_payload": False, "with_vector": True}
        read = _Read("retrieve", sub, lambda st: st.retrieve([point_id], with_vector=True),
                     _decode_records, _resolve_records)  # fmt: skip
        records = await self._read_shard(t, shard_id, read, consistency)
        if not records or records[0].vector is None:
            raise _not_found(point_id)
        skip = {"must_not": [{"has_id": [id_to_json(point_id)]}]}
        flt = body.get("filter")
        new_filter = skip if flt is None else {"must": [flt], **skip}
        return {**body, "query": list(records[0].vector), "filter": new_filter}

    # ---------------------------------------------------- the receiving side

    async def handle_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer a ``shard_update`` or ``shard_read`` request from a coordinating peer."""
        name, shard_id = body.get("collection"), body.get("shard_id")
        if not isinstance(name, str) or not isinstance(shard_id, int):
            return {"ok": False, "error": "shard request needs collection and shard_id",
                    "retryable": False}  # fmt: skip
        shard = self.shards.get(name, ShardId(shard_id))
        if shard is None or shard.incarnation != body.get("incarnation"):
            return {"ok": False, "retryable": True,
                    "error": f"shard {shard_id} of {name!r} is not open on peer {self.peer.id}"}  # fmt: skip
        try:
            if body.get("kind") == "shard_update":
                return {"ok": True, "result": await self._apply_remote(shard, body)}
            return {"ok": True, "result": await self._read_remote(shard, body)}
        except BadRequest as exc:
            return {"ok": False, "error": str(exc), "status": exc.status_code,
                    "retryable": False}  # fmt: skip
        except (StorageError, OSError) as exc:
            # The coordinator counts this replica as failed; this peer keeps running.
            log.error("peer %d: shard %s/%d failed: %s", self.peer.id, name, shard_id, exc)
            return {"ok": False, "error": f"shard failed on peer {self.peer.id}: {exc}",
                    "retryable": True}  # fmt: skip

    async def _apply_remote(self, shard: LocalShard, body: dict[str, Any]) -> Any:
        op, raw_filter = decode_update(body.get("op"), shard.config.dim)
        typed: UpdateOperation = op if op is not None else DeleteByFilter(parse_filter(raw_filter))
        wait = body.get("wait") is True
        result = await shard.run(lambda s: s.apply(typed, wait=wait))
        return result.to_json()

    async def _read_remote(self, shard: LocalShard, body: dict[str, Any]) -> Any:
        read, raw = body.get("read"), body.get("body")
        dim = shard.config.dim
        if read == "count":
            req_count = parse_count(raw)
            return {"count": await shard.run(lambda s: s.count(req_count.filter))}
        if read == "retrieve":
            req_get = parse_retrieve(raw)
            records = await shard.run(
                lambda s: s.retrieve(req_get.ids, req_get.with_payload, req_get.with_vector)
            )
            return [r.to_json() for r in records]
        if read == "scroll":
            req_scroll = parse_scroll(raw)
            return (await shard.run(lambda s: s.scroll(req_scroll))).to_json()
        if read == "query":
            req_query = parse_query(raw, dim)
            return [h.to_json() for h in await shard.run(lambda s: s.search(req_query))]
        raise BadRequest(f"Bad request: unknown shard read {read!r}")


@dataclass(frozen=True, slots=True)
class _Read(Generic[T]):
    """One read of one shard: its request kind and REST body (for a remote replica), the
    call on a local store, how to decode a remote answer into the same type, and how to
    combine several replicas' answers into one."""

    kind: str
    body: Any
    local: Callable[[ShardStore], T]
    decode: Callable[[Any], T]
    resolve: Callable[[list[T], ResolveCondition], T]


def _decode_records(raw: Any) -> list[Record]:
    return [decode_record(x) for x in raw]


def _decode_hits(raw: Any) -> list[ScoredRecord]:
    return [decode_scored(x) for x in raw]


def _payload_key(payload: Any) -> str:
    """A payload's comparable form; no payload and an empty one agree (as in Qdrant)."""
    return json.dumps(payload or {}, sort_keys=True)


def _record_content(r: Record) -> Any:
    return (r.id, _payload_key(r.payload), r.vector, r.order_value)


def _hit_content(h: ScoredRecord) -> Any:
    # Not the version: each replica numbers its own operations.
    return (h.id, h.score, _payload_key(h.payload), h.vector)


def _resolve_records(answers: list[list[Record]], condition: ResolveCondition) -> list[Record]:
    return resolve_items(answers, condition, lambda r: r.id, _record_content)


def _resolve_hits(
    answers: list[list[ScoredRecord]], condition: ResolveCondition
) -> list[ScoredRecord]:
    return resolve_items(answers, condition, lambda h: h.id, _hit_content)


def _resolve_pages(pages: list[ScrollPage], condition: ResolveCondition) -> ScrollPage:
    """One shard's scroll page from several replicas' pages: the agreed points, and the
    smallest next offset (nothing beyond a page any replica stopped at is skipped)."""
    points = resolve_items([p.points for p in pages], condition, lambda r: r.id, _record_content)
    offsets = [p.next_page_offset for p in pages if p.next_page_offset is not None]
    return ScrollPage(tuple(points), min(offsets, key=id_sort_key) if offsets else None)


def _spell(consistency: ReadConsistency) -> str:
    return str(consistency) if isinstance(consistency, int) else consistency.value


def _as_bad_request(exc: Exception) -> BadRequest:
    if isinstance(exc, BadRequest):
        return exc
    assert isinstance(exc, _RemoteBadRequestError)
    error = BadRequest(exc.message)
    error.status_code = exc.status_code
    return error


class _RemoteBadRequestError(Exception):
    """The replica refused the request as bad input (it would refuse it everywhere)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def _not_found(point_id: PointId) -> BadRequest:
    return point_not_found(id_to_json(point_id))

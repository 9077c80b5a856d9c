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
* **Reads** fan out to every shard, asking one Active replica of each (the local one first,
  then the others by peer id, moving on when one cannot answer), and merge: queries keep the
  best ``offset + limit`` by score, scrolls the first ``limit`` ids, counts add up, retrieves
  keep the request's order.
* A query by point id first fetches that point's vector from the shard that owns it, then
  queries every shard with the vector, leaving the point itself out (as Qdrant).
* Errors: bad input raises :class:`refimpl.points.BadRequest` (4xx); an unknown collection
  :class:`CollectionNotFoundError` (404); a shard that cannot be served
  :class:`ShardUnavailableError` (500/503 with Qdrant's wording).

Theory of operation: :class:`Router` runs on the peer's trio loop; the local store's calls run
in worker threads (:class:`refimpl.peer.shards.LocalShard`); :meth:`Router.handle_request` is
the receiving side of the two request kinds.
"""

import logging
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
    UpdateOperation,
    UpsertPoints,
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
from refimpl.replication import ReplicaEvent, serves_reads, write_outcome, write_targets
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
        """``PUT /collections/{name}/points``."""
        t = self.target(name)
        # Checking every component of a big batch takes a while: off the event loop.
        parts = await trio.to_thread.run_sync(_parse_and_split, body, t)
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
        if not outcome.succeeded:
            detail = "; ".join(errors)
            raise ShardUnavailableError(
                500, f"Service internal error: shard {shard_id} of `{t.name}`: {outcome.reason}"
                + (f" ({detail})" if detail else ""),
            )  # fmt: skip
        if outcome.to_mark_dead:
            await self._mark_dead(t, shard_id, outcome.to_mark_dead)
        return max(op_ids)

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

    async def _read_all(self, t: _Target, read: "_Read[T]") -> list[T]:
        """Ask every shard of the collection, concurrently."""
        return await _gather([partial(self._read_shard, t, s, read) for s in self._shards(t)])

    async def _read_shard(self, t: _Target, shard_id: ShardId, read: "_Read[T]") -> T:
        """Ask one Active replica of the shard: the local one first, then the others."""
        replicas = t.state.replicas[shard_id]
        readable = sorted(p for p, s in replicas.items() if serves_reads(s))
        order = sorted(readable, key=lambda p: (p != self.peer.id, p))
        request = {"kind": "shard_read", "collection": t.name, "incarnation": t.incarnation,
                   "shard_id": shard_id, "read": read.kind, "body": read.body}  # fmt: skip
        errors = []
        for peer in order:
            try:
                if peer == self.peer.id:
                    return await self._local(t, shard_id).run(read.local)
                return read.decode(await self._remote(peer, request))
            except _ReplicaFailedError as exc:
                errors.append(f"peer {peer}: {exc}")
            except _RemoteBadRequestError as exc:
                error = BadRequest(exc.message)
                error.status_code = exc.status_code
                raise error from None
        states = ", ".join(f"{p}: {s.value}" for p, s in sorted(replicas.items()))
        raise ShardUnavailableError(
            503, f"Shard temporarily unavailable: no active replica of shard {shard_id} of "
            f"`{t.name}` could answer (replicas {states}; {'; '.join(errors) or 'none active'})",
        )  # fmt: skip

    def _shards(self, t: _Target) -> list[ShardId]:
        return [ShardId(s) for s in range(t.state.config.shard_number)]

    async def count(self, name: str, body: object) -> dict[str, Any]:
        """``POST /collections/{name}/points/count``: the sum over every shard."""
        t = self.target(name)
        req = parse_count(body)
        raw = body if body is not None else {}
        read = _Read("count", raw, lambda st: st.count(req.filter), lambda r: int(r["count"]))
        return {"count": sum(await self._read_all(t, read))}

    async def retrieve(self, name: str, body: object) -> list[dict[str, Any]]:
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
                _decode_records,
            )  # fmt: skip
            return partial(self._read_shard, t, s, read)

        answers = await _gather([call(s, ids) for s, ids in sorted(by_shard.items())])
        found = {r.id: r for answer in answers for r in answer}
        out, seen = [], set()
        for point_id in req.ids:
            if point_id in found and point_id not in seen:
                seen.add(point_id)
                out.append(found[point_id].to_json())
        return out

    async def scroll(self, name: str, body: object) -> dict[str, Any]:
        """``POST /collections/{name}/points/scroll``: merged pages, ids in order."""
        t = self.target(name)
        req = parse_scroll(body)
        raw = body if body is not None else {}
        read = _Read("scroll", raw, lambda st: st.scroll(req), decode_scroll_page)
        pages = await self._read_all(t, read)
        if req.order_by is not None:
            merged = merge_ordered(pages, req.limit, req.order_by.direction == "desc")
        else:
            merged = merge_scroll(pages, req.limit)
        return merged.to_json()

    async def query(self, name: str, body: object) -> dict[str, Any]:
        """``POST /collections/{name}/points/query``: top-k over every shard."""
        t = self.target(name)
        parse_query(body, t.dim)  # check everything before any shard is asked
        assert isinstance(body, dict)
        return {"points": [h.to_json() for h in await self._query(t, body)]}

    async def query_batch(self, name: str, body: object) -> list[dict[str, Any]]:
        """``POST /collections/{name}/points/query/batch``."""
        t = self.target(name)
        parse_query_batch(body, t.dim)
        assert isinstance(body, dict)
        out = []
        for search in body["searches"]:
            out.append({"points": [h.to_json() for h in await self._query(t, search)]})
        return out

    async def _query(self, t: _Target, body: dict[str, Any]) -> list[ScoredRecord]:
        req = parse_query(body, t.dim)
        if req.nearest_id is not None:
            body = await self._by_vector_of(t, body, req.nearest_id)
            req = parse_query(body, t.dim)
        k = req.offset + req.limit
        shard_body = {**body, "limit": k, "offset": 0}
        local_req = replace(req, limit=k, offset=0)
        read = _Read("query", shard_body, lambda st: st.search(local_req), _decode_hits)
        answers = await self._read_all(t, read)
        better = _HIGHER_IS_BETTER[t.state.config.vectors.distance.value]
        return merge_scored(answers, req.limit, req.offset, better)

    async def _by_vector_of(
        self, t: _Target, body: dict[str, Any], point_id: PointId
    ) -> dict[str, Any]:
        """Rewrite a query by point id into a query by that point's vector, without it."""
        shard_id = t.ring.shard_for(point_id)
        sub = {"ids": [id_to_json(point_id)], "with_payload": False, "with_vector": True}
        read = _Read("retrieve", sub, lambda st: st.retrieve([point_id], with_vector=True),
                     _decode_records)  # fmt: skip
        records = await self._read_shard(t, shard_id, read)
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
    call on a local store, and how to decode a remote answer into the same type."""

    kind: str
    body: Any
    local: Callable[[ShardStore], T]
    decode: Callable[[Any], T]


def _decode_records(raw: Any) -> list[Record]:
    return [decode_record(x) for x in raw]


def _decode_hits(raw: Any) -> list[ScoredRecord]:
    return [decode_scored(x) for x in raw]


class _RemoteBadRequestError(Exception):
    """The replica refused the request as bad input (it would refuse it everywhere)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def _not_found(point_id: PointId) -> BadRequest:
    return point_not_found(id_to_json(point_id))

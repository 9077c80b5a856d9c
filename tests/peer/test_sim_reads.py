"""Reads with a ``consistency`` across replicas, and a write racing a shard move, in the peer
simulation (virtual time, several seeds).

Spec "Consistency guarantees" (reads use a partial fan-out; with write_concern_factor equal to
replication_factor sequential operations read their writes); raft-scenarios G-4 (read after
write with wcf = rf, and its teaching variant: wcf = 1, consistency 1 and a lagging replica give
a stale read); facts §5.2 (Qdrant's read path); issue #7 (a write landing as a move finishes).

Faults are injected on the simulated network only (:class:`_Links`): a link that delays or
holds one kind of request between two peers; the peers run unmodified.
"""

import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from refimpl.consensus import ShardTransfer, StartTransfer, encode_operation
from refimpl.ids import ShardId
from refimpl.peer import router as router_module
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.peer.router import CollectionNotFoundError, ShardUnavailableError
from refimpl.peer.shards import LocalShard
from refimpl.points import BadRequest
from refimpl.replication import ReadConsistency, ReplicaState, parse_read_consistency
from refimpl.storage import ShardStore, StorageError
from refimpl.testing.linearizability import CheckResult, History, KvOp, OpKind, check_history
from tests.peer._sim import replica_states, router_of, seeds, three_voters

DIM = 4
NAME = "c"


@dataclass
class _Rule:
    src: str
    dst: str
    kind: str
    delay_s: float = 0.0
    release: trio.Event | None = None
    arrived: trio.Event = field(default_factory=trio.Event)


class _Links:
    """Requests of one kind from one peer to another are delayed, or held until released;
    every request's (from, to, kind) is recorded."""

    def __init__(self, sim: SimCluster, monkeypatch: pytest.MonkeyPatch) -> None:
        self._inner = sim.network.call
        self.rules: list[_Rule] = []
        self.calls: list[tuple[str, str, str]] = []
        monkeypatch.setattr(sim.network, "call", self._call)

    def delay(self, src: SimPeer, dst: SimPeer, kind: str, delay_s: float) -> _Rule:
        rule = _Rule(src.address, dst.address, kind, delay_s=delay_s)
        self.rules.append(rule)
        return rule

    def hold(self, src: SimPeer, dst: SimPeer, kind: str) -> _Rule:
        rule = _Rule(src.address, dst.address, kind, release=trio.Event())
        self.rules.append(rule)
        return rule

    async def _call(
        self, src: str, dst: str, body: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        kind = str(body.get("kind"))
        self.calls.append((src, dst, kind))
        for rule in self.rules:
            if (rule.src, rule.dst, rule.kind) == (src, dst, kind):
                rule.arrived.set()
                if rule.release is not None:
                    await rule.release.wait()
                await trio.sleep(rule.delay_s)
        return await self._inner(src, dst, body, timeout_s)


def _points(ids: Iterable[int], value: int | None = None) -> dict[str, Any]:
    """Points whose payload ``v`` is the register value (the id itself unless given)."""
    rng = np.random.default_rng(7)
    return {"points": [{"id": i, "vector": rng.normal(size=DIM).tolist(),
                        "payload": {"v": i if value is None else value}} for i in ids]}  # fmt: skip


def _ready(peers: list[SimPeer], shards: int, rf: int) -> bool:
    """Every peer sees every replica Active and has its own replicas open."""
    for p in peers:
        assert p.plane is not None
        for s in range(shards):
            states = replica_states(p, NAME, ShardId(s))
            if len(states) != rf or set(states.values()) != {ReplicaState.Active}:
                return False
            if p.peer_id in states and p.plane.shards.get(NAME, ShardId(s)) is None:
                return False
    return True


async def _cluster(
    nursery: trio.Nursery, seed: int, *, rf: int, wcf: int, shards: int = 1
) -> tuple[SimCluster, list[SimPeer]]:
    sim = SimCluster(nursery, seed=seed, with_data=True)
    peers = await three_voters(sim)
    plane = peers[0].plane
    assert plane is not None
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": shards,
            "replication_factor": rf, "write_consistency_factor": wcf}  # fmt: skip
    await plane.collections.create(NAME, body, 10)
    await sim.wait_until(lambda: _ready(peers, shards, rf))
    return sim, peers


async def _get(
    history: History, process: int, via: SimPeer, ids: list[int], level: ReadConsistency
) -> dict[int, int | None]:
    """Retrieve ``ids`` through ``via``, recorded as one ``get`` per id."""
    ops = {i: history.invoke(process, KvOp(OpKind.GET, str(i))) for i in ids}
    try:
        got = await router_of(via).retrieve(NAME, {"ids": ids, "with_payload": True}, level)
    except ShardUnavailableError:
        for op in ops.values():
            history.fail(op)  # a read that failed observed nothing
        raise
    seen = {int(r["id"]): int(r["payload"]["v"]) for r in got}
    for i, op in ops.items():
        history.ok(op, seen.get(i))
    return {i: seen.get(i) for i in ids}


# ------------------------------------------------------------------------------------ G-4


@pytest.mark.parametrize("seed", seeds(3))
@pytest.mark.parametrize("consistency", ["all", "majority"])
async def test_g4_reads_observe_every_acknowledged_write(
    seed: int, consistency: str, autojump_clock: trio.testing.MockClock
) -> None:
    """rf = 3, wcf = 3: three clients insert new points through the three peers while three
    others read recent ids through the peers with ``consistency`` all / majority. The per-point
    register history is linearizable (a read that starts after an insert was acknowledged sees
    it; once a read saw a point no later read misses it); then sequential updates of one point,
    each read back through another peer, are always seen."""
    async with trio.open_nursery() as nursery:
        _, peers = await _cluster(nursery, seed, rf=3, wcf=3, shards=2)
        level = parse_read_consistency(consistency)
        history, rng = History(), random.Random(seed)
        ids, invoked, acked = itertools.count(1), list[int](), list[int]()
        writing = 3

        async def writer(process: int, via: SimPeer) -> None:
            nonlocal writing
            for _ in range(12):
                pid = next(ids)
                invoked.append(pid)
                op = history.invoke(process, KvOp(OpKind.PUT, str(pid), pid))
                await router_of(via).upsert(NAME, _points([pid]), wait=True)
                history.ok(op)
                acked.append(pid)
            writing -= 1

        async def reader(process: int, via: SimPeer) -> None:
            while writing:
                recent = invoked[-6:]
                if recent:
                    await _get(history, process, via, recent, level)
                await trio.sleep(rng.uniform(0.0, 0.004))

        async with trio.open_nursery() as clients:
            for i, p in enumerate(peers):
                clients.start_soon(writer, i, p)
                clients.start_soon(reader, 3 + i, p)
        verdict = check_history(history)
        assert verdict.result is CheckResult.LINEARIZABLE, verdict.bad_operations
        gets = [e for e in history.events if e.op.kind is OpKind.GET and e.kind.value == "ok"]
        assert sum(e.result is not None for e in gets) > 20, "the readers saw the writes"
        through = router_of(peers[seed % 3])
        assert (await through.count(NAME, {"exact": True}, level))["count"] == len(acked) == 36
        page = await through.scroll(NAME, {"limit": 100}, level)
        assert [p["id"] for p in page["points"]] == sorted(acked)
        for i in range(12):
            writer_peer, reader_peer = peers[i % 3], peers[(i + 1) % 3]
            await router_of(writer_peer).upsert(NAME, _points([5], value=1000 + i), wait=True)
            assert (await _get(History(), 0, reader_peer, [5], level)) == {5: 1000 + i}
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([3]))
@pytest.mark.parametrize(
    ("consistency", "reads"),
    [("1", (7, None)), ("all", (None, None)), ("majority", (7, 7))],
    ids=["1-7-None", "all-None-None", "majority-7-7"],
)
async def test_g4_teaching_variant_a_lagging_replica_serves_stale_reads_at_consistency_1(
    seed: int,
    consistency: str,
    reads: tuple[int | None, int | None],
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """wcf = 1: a write of point 7 has reached the coordinator's and a second replica, while
    its copy to the third replica is still on the wire (slow link: nothing failed, so nothing
    is marked Dead). A read through the second peer, then one through the lagging peer:

    * consistency 1 reads the local replica only: 7, then nothing — a stale read after a read
      that saw the write, which the linearizability checker rejects;
    * ``all`` asks all three; they disagree on point 7, so it is left out of both answers
      (Qdrant's rule) — consistent with the write not having happened yet;
    * ``majority`` asks all three and keeps the copy two of them hold: 7 both times.

    After the acknowledgement every level reads 7 through the lagging peer."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, wcf=1)
        coordinator, fresh, lagging = peers
        _Links(sim, monkeypatch).delay(coordinator, lagging, "shard_update", 2.0)
        level = parse_read_consistency(consistency)
        history, acked = History(), trio.Event()

        async def write() -> None:
            op = history.invoke(0, KvOp(OpKind.PUT, "7", 7))
            await router_of(coordinator).upsert(NAME, _points([7]), wait=True)
            history.ok(op)
            acked.set()

        nursery.start_soon(write)
        await trio.sleep(0.5)
        first, second = reads
        assert (await _get(history, 1, fresh, [7], level)) == {7: first}
        assert (await _get(history, 2, lagging, [7], level)) == {7: second}
        assert not acked.is_set(), "both reads ran while the write was in flight"
        await acked.wait()
        assert (await _get(history, 2, lagging, [7], level)) == {7: 7}
        stale = consistency == "1"
        expected = CheckResult.NOT_LINEARIZABLE if stale else CheckResult.LINEARIZABLE
        assert check_history(history).result is expected
        assert set(replica_states(coordinator, NAME).values()) == {ReplicaState.Active}
        nursery.cancel_scope.cancel()


# -------------------------------------------------------------- too few replicas answer


@pytest.mark.parametrize("seed", seeds([4]))
async def test_all_fails_cleanly_when_a_replica_is_unreachable_and_marks_nobody_dead(
    seed: int,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The reader cannot reach one replica (still Active): ``all`` fails with a 503 naming
    the shard and the failed replica; consistency 1 and ``quorum`` (2 of 3: the next replica
    is asked when one fails) still answer; the unreachable replica stays Active."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, wcf=1)
        reader, cut = peers[0], peers[2]
        await router_of(reader).upsert(NAME, _points(range(10)), wait=True)
        sim.network.partition([reader.address], [cut.address])
        all_ = parse_read_consistency("all")
        for read in (
            router_of(reader).retrieve(NAME, {"ids": [1, 2]}, all_),
            router_of(reader).count(NAME, None, all_),
        ):
            with pytest.raises(ShardUnavailableError) as failure:
                await read
            assert failure.value.status_code == 503
            message = failure.value.message
            assert "shard 0 of `c`: 1 of 3 read operations failed" in message, message
            assert f"peer {cut.peer_id}:" in message and "unreachable" in message, message
        assert (await router_of(reader).count(NAME, None, 1))["count"] == 10
        quorum = parse_read_consistency("quorum")
        for _ in range(6):  # whichever remote replica the shuffle puts first
            got = await router_of(reader).retrieve(NAME, {"ids": [1, 2]}, quorum)
            assert [r["id"] for r in got] == [1, 2]
        await trio.sleep(5.0)
        for p in peers:
            assert set(replica_states(p, NAME).values()) == {ReplicaState.Active}
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([8]))
async def test_a_local_replica_whose_storage_fails_is_skipped_like_an_unreachable_one(
    seed: int, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's own replica raises a storage error: consistency 1 moves on to a remote
    replica and answers; ``all`` fails with a 503 that names the local failure."""
    async with trio.open_nursery() as nursery:
        _, peers = await _cluster(nursery, seed, rf=3, wcf=1)
        reader = peers[0]
        await router_of(reader).upsert(NAME, _points(range(5)), wait=True)
        assert reader.plane is not None
        local = reader.plane.shards.get(NAME, ShardId(0))
        assert local is not None and local.store is not None
        broken = local.store
        for method in ("retrieve", "count"):
            original = getattr(ShardStore, method)

            def failing(store: ShardStore, *args: Any, _original: Any = original) -> Any:
                if store is broken:
                    raise StorageError("segment file is unreadable")
                return _original(store, *args)

            monkeypatch.setattr(ShardStore, method, failing)
        got = await router_of(reader).retrieve(NAME, {"ids": [4]}, 1)
        assert [r["id"] for r in got] == [4]
        with pytest.raises(ShardUnavailableError) as failure:
            await router_of(reader).count(NAME, None, parse_read_consistency("all"))
        assert f"peer {reader.peer_id}: segment file is unreadable" in failure.value.message
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([5]))
async def test_read_fan_out_factor_asks_that_many_extra_replicas_at_once(
    seed: int, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unset, a peer holding a replica reads it alone; ``read_fan_out_factor`` = 2 (set by
    PATCH) makes it ask two more replicas at the same time (the first answer wins)."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, wcf=1)
        links = _Links(sim, monkeypatch)
        reader = peers[1]
        await router_of(reader).upsert(NAME, _points(range(4)), wait=True)

        async def remote_reads(level: ReadConsistency) -> int:
            before = len(links.calls)
            got = await router_of(reader).retrieve(NAME, {"ids": [0, 3]}, level)
            assert [r["id"] for r in got] == [0, 3]
            return sum(1 for src, _, kind in links.calls[before:]
                       if src == reader.address and kind == "shard_read")  # fmt: skip

        assert await remote_reads(1) == 0
        assert await remote_reads(2) == 1
        assert reader.plane is not None
        await reader.plane.collections.update(NAME, {"params": {"read_fan_out_factor": 2}}, 10)
        assert await remote_reads(1) == 2
        assert await remote_reads(2) == 2  # 2 needed + 2 extra, capped at the 3 replicas
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([5]))
async def test_read_fan_out_delay_ms_asks_one_more_replica_when_the_first_is_slow(
    seed: int, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader's own replica takes 5 s to answer. Unset (or 0), a consistency-1 read waits
    for it and asks nobody else; with ``read_fan_out_delay_ms`` = 100 (set by PATCH, shown in
    the collection's params) the read asks one remote replica after 100 ms and answers from
    it. A negative delay is refused."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, wcf=1)
        links = _Links(sim, monkeypatch)
        reader = peers[0]
        await router_of(reader).upsert(NAME, _points(range(4)), wait=True)
        assert reader.plane is not None
        slow = reader.plane.shards.get(NAME, ShardId(0))
        assert slow is not None
        original = LocalShard.run

        async def slow_run(shard: LocalShard, fn: Any) -> Any:
            if shard is slow:
                await trio.sleep(5.0)
            return await original(shard, fn)

        monkeypatch.setattr(LocalShard, "run", slow_run)

        async def timed_read() -> tuple[float, int]:
            """(seconds the read took, remote shard reads it sent)."""
            before, started = len(links.calls), trio.current_time()
            got = await router_of(reader).retrieve(NAME, {"ids": [0, 3]}, 1)
            assert [r["id"] for r in got] == [0, 3]
            remote = sum(1 for src, _, kind in links.calls[before:]
                         if src == reader.address and kind == "shard_read")  # fmt: skip
            return trio.current_time() - started, remote

        took, remote = await timed_read()
        assert took >= 5.0 and remote == 0
        collections = reader.plane.collections
        await collections.update(NAME, {"params": {"read_fan_out_delay_ms": 0}}, 10)
        took, remote = await timed_read()
        assert took >= 5.0 and remote == 0
        await collections.update(NAME, {"params": {"read_fan_out_delay_ms": 100}}, 10)
        assert collections.view.cluster.collections[NAME].config.read_fan_out_delay_ms == 100
        took, remote = await timed_read()
        assert 0.1 <= took < 1.0 and remote == 1, (took, remote)
        with pytest.raises(BadRequest, match="read_fan_out_delay_ms"):
            await collections.update(NAME, {"params": {"read_fan_out_delay_ms": -1}}, 10)
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------- a write racing a move


@pytest.mark.parametrize("seed", seeds([6]))
@pytest.mark.parametrize("attempts", [router_module.WRITE_ATTEMPTS, 1])
async def test_a_write_landing_as_a_move_finishes_is_sent_again_to_the_new_replica(
    seed: int,
    attempts: int,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #7. A coordinator sends a write while shard 0 moves from S to T (T Partial): T
    takes it, S's copy is held on the wire until the move has finished (T Active, S's
    replica gone), then S refuses it. Judged against the replica set it started from, the
    write "was not applied on any Active replica"; consensus has changed that set, so the
    router sends it again, to T, and it is acknowledged — and on T. With a single attempt
    (the old behaviour) the client gets that 500."""
    monkeypatch.setattr(router_module, "WRITE_ATTEMPTS", attempts)
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=1, wcf=1)
        await router_of(peers[0]).upsert(NAME, _points(range(50)), wait=True)
        by_id = {p.peer_id: p for p in peers}
        source = by_id[next(iter(replica_states(peers[0], NAME)))]
        target, coordinator = (p for p in peers if p is not source)
        links = _Links(sim, monkeypatch)
        prepare = links.hold(source, target, "transfer_init")  # the move waits for the write
        late = links.hold(coordinator, source, "shard_update")
        move = StartTransfer(
            NAME, ShardTransfer(ShardId(0), source.peer_id, target.peer_id, sync=False)
        )
        assert source.peer is not None
        assert await source.peer.propose(encode_operation(move)) is True
        await sim.wait_until(
            lambda: replica_states(coordinator, NAME).get(target.peer_id) is not None
        )
        outcome: list[Any] = []

        async def write() -> None:
            try:
                outcome.append(await router_of(coordinator).upsert(NAME, _points([99]), wait=True))
            except ShardUnavailableError as exc:
                outcome.append(exc)

        nursery.start_soon(write)
        await late.arrived.wait()
        assert prepare.release is not None and late.release is not None
        prepare.release.set()
        await sim.wait_until(
            lambda: replica_states(coordinator, NAME) == {target.peer_id: ReplicaState.Active}
        )
        await sim.wait_until(lambda: source.plane is not None
                             and source.plane.shards.get(NAME, ShardId(0)) is None)  # fmt: skip
        late.release.set()
        await sim.wait_until(lambda: bool(outcome))
        got = await router_of(coordinator).retrieve(NAME, {"ids": [99]}, 1)
        if attempts == 1:
            assert isinstance(outcome[0], ShardUnavailableError)
            assert outcome[0].status_code == 500
            assert "was not applied on any Active replica" in outcome[0].message
        else:
            assert outcome == [{"operation_id": outcome[0]["operation_id"], "status": "completed"}]
            assert [r["id"] for r in got] == [99]
        count = await router_of(coordinator).count(NAME, None, 1)
        assert count["count"] == 50 + len(got)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds([9]))
@pytest.mark.parametrize("recreate", [False, True])
async def test_a_write_whose_collection_went_away_meanwhile_fails_clearly(
    seed: int,
    recreate: bool,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The write's copy is held on the wire while the collection is deleted (and created
    again): the replica refuses it, and instead of sending it to the new collection the router
    answers 404 (deleted) or a 500 that says the collection was re-created.

    The copy is let go once the replica's own peer has applied the deletion (and re-creation):
    the coordinator's ``delete`` returns when the coordinator has applied it, and a copy
    reaching a peer still behind that is rightly applied to the old collection, which the
    deletion then drops with it (soak seeds 1, 2, 6, ... of ``False``: a completed write,
    concurrent with the delete, ordered before it)."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=1, wcf=1)
        by_id = {p.peer_id: p for p in peers}
        holder = by_id[next(iter(replica_states(peers[0], NAME)))]
        coordinator = next(p for p in peers if p is not holder)
        late = _Links(sim, monkeypatch).hold(coordinator, holder, "shard_update")
        outcome: list[Any] = []

        async def write() -> None:
            try:
                outcome.append(await router_of(coordinator).upsert(NAME, _points([1]), wait=True))
            except Exception as exc:  # the test inspects whatever comes out
                outcome.append(exc)

        nursery.start_soon(write)
        await late.arrived.wait()
        plane = coordinator.plane
        assert plane is not None and late.release is not None
        before = plane.collections.view.incarnation(NAME)
        await plane.collections.delete(NAME, 10)
        if recreate:
            body = {"vectors": {"size": DIM, "distance": "Dot"}, "replication_factor": 1}
            await plane.collections.create(NAME, body, 10)
            assert plane.collections.view.incarnation(NAME) != before
        after = plane.collections.view.incarnation(NAME)
        assert holder.plane is not None
        holder_plane = holder.plane

        def holder_caught_up() -> bool:
            old = holder_plane.shards.get(NAME, ShardId(0))
            return holder_plane.collections.view.incarnation(NAME) == after and (
                old is None or old.incarnation != before
            )

        await sim.wait_until(holder_caught_up)
        assert not outcome, "the write waits for its held copy"
        late.release.set()
        await sim.wait_until(lambda: bool(outcome))
        (error,) = outcome
        if recreate:
            assert isinstance(error, ShardUnavailableError) and error.status_code == 500
            assert "was deleted and created again while this write was in flight" in str(error)
            assert (await router_of(coordinator).count(NAME, None, 1))["count"] == 0
        else:
            assert isinstance(error, CollectionNotFoundError) and error.status_code == 404
        nursery.cancel_scope.cancel()

"""Group G of the acceptance scenarios (raft-scenarios.md), as peer-level simulations.

Full peers (consensus, router, shards, transfers) run in one process over the in-memory network,
in virtual time, over seeds (one or two each by default, so the file runs in well under a
minute; ``REFIMPL_SIM_SEEDS=20`` runs twenty of each).
Faults are either a crashed peer (the harness cancels it; with :func:`disk_shards` its shard
files survive, as on a real disk) or an injected failure of one peer's ``shard_update``
handler: the peer stays in consensus but its replica fails every write, as a replica with a
broken disk would (G-1 suggests "inject a transient error").

G-4 (reads) is in tests/peer/test_sim_reads.py and G-8 (recovering a replica from an uploaded
shard snapshot) in tests/peer/test_sim_shard_snapshots.py. Here, besides the scenarios, each
transfer method (``stream_records``, ``snapshot``, ``wal_delta``) runs G-6 and G-7, the WAL
delta falls back to streaming when the source's WAL was compacted, and a damaged snapshot
archive is caught by its checksums and sent again.
"""

import base64
import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
import trio
import trio.testing

from refimpl.consensus import ShardTransfer, StartTransfer, TransferMethod, encode_operation
from refimpl.ids import ShardId
from refimpl.peer import transfers
from refimpl.peer.harness import SimCluster, SimPeer
from refimpl.peer.node import ProposalError
from refimpl.peer.router import ShardUnavailableError
from refimpl.peer.transfers import delta_start
from refimpl.replication import ReplicaState
from tests.peer import _sim
from tests.peer._sim import (
    DIM,
    peer_by_id,
    points_body,
    replica_states,
    router_of,
    seeds,
    shard_content,
    shard_store,
    three_peers,
    watch_states,
)

disk_shards = _sim.disk_shards  # the fixture; pytest finds it under this name

NAME = "g"

A, D, P, R = ReplicaState.Active, ReplicaState.Dead, ReplicaState.Partial, ReplicaState.Recovery
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# ----------------------------------------------------------------------------- helpers


def _transfers(p: SimPeer) -> tuple[Any, ...]:
    assert p.plane is not None
    coll = p.plane.collections.view.cluster.collections.get(NAME)
    return () if coll is None else coll.transfers


async def _cluster(
    nursery: trio.Nursery, seed: int, *, rf: int, wcf: int = 1, batches: int = 10
) -> tuple[SimCluster, list[SimPeer]]:
    """Three peers, one collection of one shard, ``batches`` x 10 points written."""
    sim, first = await three_peers(nursery, seed)
    await sim.wait_until(
        lambda: (
            len(sim.running()) == 3
            and all(len(p.node.membership.voters) == 3 for p in sim.running())
            and all(len(p.state.peers()) == 3 for p in sim.running())
        )
    )
    peers = sim.peers
    assert first.plane is not None
    body = {"vectors": {"size": DIM, "distance": "Dot"}, "shard_number": 1,
            "replication_factor": rf, "write_consistency_factor": wcf}  # fmt: skip
    await first.plane.collections.create(NAME, body, 10)
    await sim.wait_until(
        lambda: all(
            len(replica_states(p, NAME)) == rf and set(replica_states(p, NAME).values()) == {A}
            for p in peers
        )
    )
    for b in range(batches):
        await router_of(first).upsert(NAME, points_body(range(10 * b, 10 * b + 10)), wait=True)
    return sim, peers


def _fail_updates(p: SimPeer) -> Callable[[], None]:
    """Make ``p``'s replica fail every write sent to it; return the undo."""
    assert p.peer is not None
    handlers = p.peer.request_handlers
    original = handlers["shard_update"]

    async def broken(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "retryable": True, "error": "injected: the replica's disk failed"}

    handlers["shard_update"] = broken

    def undo() -> None:
        handlers["shard_update"] = original

    return undo


def _spy_reads(p: SimPeer, seen_by: SimPeer) -> list[ReplicaState | None]:
    """Record, for each read ``p`` serves, the state of ``p``'s replica as ``seen_by`` (the
    coordinator) has it when the read arrives: a read routed to a non-Active replica shows."""
    assert p.peer is not None
    original = p.peer.request_handlers["shard_read"]
    states: list[ReplicaState | None] = []

    async def spy(body: dict[str, Any]) -> dict[str, Any]:
        states.append(replica_states(seen_by, NAME).get(p.peer_id))
        return await original(body)

    p.peer.request_handlers["shard_read"] = spy
    return states


async def _count(p: SimPeer) -> int:
    return int((await router_of(p).count(NAME, {"exact": True}))["count"])


# ------------------------------------------------------------------------- G-1 .. G-3


@pytest.mark.parametrize("seed", seeds(2))
async def test_g1_a_failed_replica_is_dead_before_the_write_is_acknowledged(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """G-1: rf = 3, wcf = 1, peer 3's replica fails the update. The upsert succeeds, and when
    the client hears it the coordinator has already applied (so consensus committed) peer 3's
    replica Dead; afterwards no read is routed to peer 3 unless it is Active again."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3)
        coordinator, other, victim = peers
        undo = _fail_updates(victim)
        reads = _spy_reads(victim, coordinator)
        await router_of(coordinator).upsert(NAME, points_body(range(1000, 1010)), wait=True)
        assert replica_states(coordinator, NAME) == {
            coordinator.peer_id: A, other.peer_id: A, victim.peer_id: D}  # fmt: skip
        for _ in range(10):
            assert await _count(coordinator) == 110
            assert await _count(other) == 110
        undo()
        # It recovers by itself (G-5); reads reach it only once it is Active.
        await sim.wait_until(lambda: replica_states(coordinator, NAME).get(victim.peer_id) is A)
        for _ in range(10):
            assert await _count(coordinator) == 110
        assert all(state is A for state in reads), reads
        assert shard_content(victim, NAME) == shard_content(coordinator, NAME)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(1))
async def test_g1_when_consensus_cannot_commit_dead_the_client_gets_an_error(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """G-1, second half: the coordinator is cut off from both other peers. Its own replica
    applies the write (1 >= wcf), but the Dead state of the two others cannot be committed
    without a quorum, so the client gets an error, never a success."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3)
        coordinator, *others = peers
        sim.network.partition([coordinator.address], [p.address for p in others])
        with pytest.raises(ShardUnavailableError) as error:
            await router_of(coordinator).upsert(NAME, points_body(range(1000, 1010)), wait=True)
        assert "not guaranteed" in error.value.message
        for p in others:  # the majority side never saw a Dead replica
            assert set(replica_states(p, NAME).values()) == {A}
        sim.network.heal()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(1))
async def test_g2_too_few_successes_is_an_error_and_marks_nobody_dead(
    seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """G-2: rf = 3, wcf = 2, two replicas fail. The upsert is an error; the failed replicas
    are not marked Dead; the outcome is indefinite (the one replica that succeeded keeps the
    write, no rollback); the client's retry then succeeds everywhere."""
    async with trio.open_nursery() as nursery:
        _, peers = await _cluster(nursery, seed, rf=3, wcf=2)
        coordinator, *victims = peers
        undos = [_fail_updates(v) for v in victims]
        new = range(1000, 1010)
        with pytest.raises(ShardUnavailableError):
            await router_of(coordinator).upsert(NAME, points_body(new), wait=True)
        await trio.sleep(3.0)  # time for any (wrong) Dead proposal to apply
        for p in peers:
            assert set(replica_states(p, NAME).values()) == {A}, replica_states(p, NAME)
        assert set(new) <= set(shard_content(coordinator, NAME)), "the successful replica kept it"
        assert not set(new) & set(shard_content(victims[0], NAME)), "the failed replicas did not"
        for undo in undos:
            undo()
        await router_of(coordinator).upsert(NAME, points_body(new), wait=True)
        assert (
            shard_content(victims[0], NAME)
            == shard_content(victims[1], NAME)
            == shard_content(coordinator, NAME)
        )
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(1))
@pytest.mark.parametrize("wcf", [1, 2, 3])
@pytest.mark.parametrize("k", [0, 1, 2])
async def test_g3_write_consistency_truth_table(
    k: int, wcf: int, seed: int, autojump_clock: trio.testing.MockClock
) -> None:
    """G-3: rf = 3, k replicas failing: the upsert succeeds iff 3 - k >= wcf; a success with
    k > 0 has made exactly the k failed replicas Dead before the ack, and an Active replica
    holds the write; a failure marks nobody Dead. (A failed replica's own peer starts its
    recovery as soon as it sees itself Dead, so by the time the client has its answer that
    replica may already be in Recovery or Partial: soak seed 26, k = 2, wcf = 1.)"""
    async with trio.open_nursery() as nursery:
        _, peers = await _cluster(nursery, seed, rf=3, wcf=wcf, batches=1)
        coordinator, *rest = peers
        failing = rest[:k]
        watched = {p.peer_id: watch_states(nursery, p, coordinator, NAME) for p in rest}
        for p in failing:
            _fail_updates(p)
        try:
            await router_of(coordinator).upsert(NAME, points_body(range(1000, 1005)), wait=True)
        except ShardUnavailableError:
            succeeded = False
        else:
            succeeded = True
        states = replica_states(coordinator, NAME)
        await trio.sleep(0.01)  # the watchers poll every 2 ms
        assert succeeded is (3 - k >= wcf)
        for p in rest:
            if succeeded and p in failing:
                assert D in watched[p.peer_id], watched[p.peer_id]
                assert states[p.peer_id] in (D, R, P), states
            else:
                assert D not in watched[p.peer_id] and states[p.peer_id] is A, states
        assert states[coordinator.peer_id] is A
        expected = {p.peer_id: (D if succeeded and p in failing else A) for p in peers}
        if succeeded:
            assert set(range(1000, 1005)) <= set(shard_content(coordinator, NAME))
        else:
            await trio.sleep(3.0)
            assert replica_states(coordinator, NAME) == expected, (
                "a failed write marked someone Dead"
            )
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------- G-5


@pytest.mark.parametrize("seed", seeds(2))
async def test_g5_a_dead_replica_recovers_by_wal_delta_and_serves_no_reads_meanwhile(
    seed: int, autojump_clock: trio.testing.MockClock, disk_shards: None
) -> None:
    """G-5: peer 3 crashes (its shard files survive); writes during the outage mark its
    replica Dead. Restarted, it pulls a ``wal_delta`` transfer by itself: Dead -> Recovery ->
    Partial -> Active through consensus, receiving exactly the operations it missed (not the
    whole shard); no read is routed to it before it is Active; afterwards its points (ids,
    vectors, payloads) equal the source's and hold every write acknowledged meanwhile."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, batches=30)
        coordinator, other, victim = peers
        sim.kill(victim)
        missed = 5
        for b in range(missed):
            batch = points_body(range(5000 + 10 * b, 5010 + 10 * b))
            await router_of(coordinator).upsert(NAME, batch, wait=True)
        assert replica_states(coordinator, NAME)[victim.peer_id] is D
        seen = watch_states(nursery, victim, coordinator, NAME)
        await sim.restart(victim)
        assert victim.peer is not None
        methods: list[Any] = []
        received: list[int] = []
        handlers = victim.peer.request_handlers
        prepare, ops = handlers["transfer_init"], handlers["transfer_ops"]

        async def spy_prepare(body: dict[str, Any]) -> dict[str, Any]:
            methods.append(body.get("method"))
            return await prepare(body)

        async def spy_ops(body: dict[str, Any]) -> dict[str, Any]:
            received.append(len(body.get("ops", [])))
            return await ops(body)

        handlers["transfer_init"], handlers["transfer_ops"] = spy_prepare, spy_ops
        reads = _spy_reads(victim, coordinator)

        async def reader() -> None:
            while True:
                await _count(coordinator)
                await _count(other)
                await trio.sleep(0.01)

        nursery.start_soon(reader)
        await sim.wait_until(
            lambda: all(replica_states(p, NAME).get(victim.peer_id) is A for p in peers)
            and not any(_transfers(p) for p in peers)
        )  # fmt: skip
        assert seen == [D, R, P, A]
        assert methods == ["wal_delta"] and sum(received) == missed
        assert all(state is A for state in reads), reads
        assert (
            shard_content(victim, NAME)
            == shard_content(coordinator, NAME)
            == shard_content(other, NAME)
        )
        assert len(shard_content(victim, NAME)) == 300 + 10 * missed
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------- G-6


class _Workload:
    """Clients upserting unique points through every peer and deleting acknowledged ones;
    what was acknowledged and what failed (indefinite: may or may not have applied)."""

    def __init__(self, peers: list[SimPeer], seed: int, pause_s: float = 0.01) -> None:
        self.peers = peers
        self.pause_s = pause_s
        self.rng = random.Random(seed)
        self.acked_up: set[int] = set(range(300))
        self.maybe_up: set[int] = set()
        self.acked_del: set[int] = set()
        self.maybe_del: set[int] = set()
        self.stop = trio.Event()

    async def upserts(self, p: SimPeer, base: int) -> None:
        n = base
        while not self.stop.is_set():
            if p.up:
                batch = set(range(n, n + 3))
                try:
                    await router_of(p).upsert(NAME, points_body(batch), wait=True)
                except ShardUnavailableError:
                    self.maybe_up |= batch
                else:
                    self.acked_up |= batch
                n += 3
            await trio.sleep(self.pause_s)

    async def deletes(self, p: SimPeer) -> None:
        while not self.stop.is_set():
            live = sorted(self.acked_up - self.acked_del - self.maybe_del)
            if p.up and live:
                batch = set(self.rng.sample(live, min(2, len(live))))
                try:
                    await router_of(p).delete(NAME, {"points": sorted(batch)}, wait=True)
                except ShardUnavailableError:
                    self.maybe_del |= batch
                else:
                    self.acked_del |= batch
            await trio.sleep(3 * self.pause_s)

    def start(self, nursery: trio.Nursery, coordinators: list[SimPeer]) -> None:
        for i, p in enumerate(coordinators):
            nursery.start_soon(self.upserts, p, 100_000 * (i + 1))
        nursery.start_soon(self.deletes, coordinators[0])

    def check(self, stored: set[int]) -> None:
        """No acknowledged write lost, nothing resurrected, nothing unknown appeared."""
        must = self.acked_up - self.acked_del - self.maybe_del
        may = (self.acked_up | self.maybe_up) - self.acked_del
        assert must <= stored, f"acknowledged points lost: {sorted(must - stored)[:10]}"
        assert stored <= may, f"points that must not be there: {sorted(stored - may)[:10]}"
        assert self.acked_del and len(self.acked_up) > 300, "the workload ran"


async def _settled(sim: SimCluster, peers: list[SimPeer]) -> None:
    """Wait until no transfer runs and every replica is Active, as every peer sees it."""
    await sim.wait_until(
        lambda: all(
            not _transfers(p) and set(replica_states(p, NAME).values()) == {A}
            for p in peers
            if p.up
        ),
        timeout_s=120,
    )


@pytest.mark.parametrize("seed", seeds(1))
@pytest.mark.parametrize("method", [m.value for m in TransferMethod])
@pytest.mark.parametrize("sync", [False, True], ids=["move", "replicate"])
async def test_g6_a_transfer_under_concurrent_upserts_and_deletes_loses_nothing(
    sync: bool,
    method: str,
    seed: int,
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """G-6: move (or replicate) shard 0 from peer 1 to peer 3 with each method, while clients
    upsert unique points through every peer and delete acknowledged ones. During the transfer
    the target is Partial (stream) or Recovery then Partial (snapshot, WAL delta), the source
    stays Active; at the end the target is Active (a move drops the source). Every Active
    replica then holds exactly the acknowledged upserts minus the acknowledged deletes, give or
    take writes that failed (indefinite), and all Active replicas hold the same points. The
    snapshot travels in 4 kB chunks here, so it takes several."""
    monkeypatch.setattr(transfers, "CHUNK_BYTES", 4096)
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=1, batches=30)
        (source_id,) = replica_states(peers[0], NAME)
        source = peer_by_id(peers, source_id)
        target = next(p for p in peers if p is not source)
        assert target.peer is not None
        chunks: list[int] = []
        receive = target.peer.request_handlers["transfer_chunk"]

        async def spy(body: dict[str, Any]) -> dict[str, Any]:
            chunks.append(len(body["data"]))
            return await receive(body)

        target.peer.request_handlers["transfer_chunk"] = spy
        work = _Workload(peers, seed)
        seen = watch_states(nursery, target, source, NAME)
        async with trio.open_nursery() as clients:
            work.start(clients, peers)
            await trio.sleep(0.1)
            t = ShardTransfer(ShardId(0), source.peer_id, target.peer_id, sync,
                              TransferMethod(method))  # fmt: skip
            assert source.peer is not None
            assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
            await _settled(sim, peers)
            await trio.sleep(0.2)
            work.stop.set()
        await trio.sleep(0.5)
        middle = [P] if method == "stream_records" else [R, P]
        assert seen == [None, *middle, A]
        assert (len(chunks) > 3) is (method == "snapshot"), chunks
        holders = [peer_by_id(peers, p) for p in replica_states(source, NAME)]
        assert ({h.peer_id for h in holders} ==
                ({source.peer_id, target.peer_id} if sync else {target.peer_id}))  # fmt: skip
        contents = [shard_content(h, NAME) for h in holders]
        work.check(set(contents[0]))
        assert all(c == contents[0] for c in contents), "Active replicas differ"
        nursery.cancel_scope.cancel()


async def test_g6_wal_delta_falls_back_to_streaming_when_the_wal_was_compacted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A ``wal_delta`` replication to a peer with no copy, from a source whose WAL was
    compacted (it no longer reaches back to the first operation): the delta cannot be
    resolved, so the source streams every record into the target instead, then tails its WAL
    as usual; nothing is lost under concurrent writes."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, 7, rf=1, batches=30)
        (source_id,) = replica_states(peers[0], NAME)
        source = peer_by_id(peers, source_id)
        target = next(p for p in peers if p is not source)
        store = shard_store(source, NAME)
        store.config = replace(store.config, wal_retain_ops=3)
        store.checkpoint()
        assert store.wal.dropped_through > 0
        assert target.peer is not None
        methods: list[Any] = []
        prepare = target.peer.request_handlers["transfer_init"]

        async def spy(body: dict[str, Any]) -> dict[str, Any]:
            methods.append(body.get("method"))
            return await prepare(body)

        target.peer.request_handlers["transfer_init"] = spy
        work = _Workload(peers, 7)
        async with trio.open_nursery() as clients:
            work.start(clients, peers)
            await trio.sleep(0.1)
            t = ShardTransfer(ShardId(0), source.peer_id, target.peer_id, True,
                              TransferMethod.WAL_DELTA)  # fmt: skip
            assert source.peer is not None
            assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
            await _settled(sim, peers)
            await trio.sleep(0.2)
            work.stop.set()
        await trio.sleep(0.5)
        assert methods == ["wal_delta", "stream_records"]
        work.check(set(shard_content(target, NAME)))
        assert shard_content(target, NAME) == shard_content(source, NAME)
        nursery.cancel_scope.cancel()


def test_delta_start_finds_the_first_missing_operation_and_refuses_guesses() -> None:
    """The recovery-point rule (:func:`refimpl.peer.transfers.delta_start`)."""
    source = ["a", "b", "c", "d"]
    assert delta_start(source, True, []) == 0  # nothing there, whole history available
    assert delta_start(source, False, []) is None  # nothing there, history compacted
    assert delta_start(source, False, ["x", "a", "b"]) == 2  # missed c and d
    assert delta_start(source, False, ["a", "b", "c", "d"]) == 4  # up to date
    assert delta_start(source, False, ["a", "b", "z"]) is None  # holds z the source never saw
    assert delta_start(source, True, ["z"]) is None
    assert delta_start(source, False, ["b", "c"]) is None  # lacks a: cannot tell what before
    assert delta_start(source, True, ["b", "c"]) == 0  # whole history there: resend it all
    assert delta_start(source, False, ["a", "c", "b"]) is None  # same operations, other order


def test_delta_start_sends_a_repeated_operation_the_target_missed() -> None:
    """A client sets x=1, x=2, then x=1 again, word for word: the target that missed the last
    write holds an operation with the same digest, yet must still receive it (a lookup by set
    membership sent nothing and left the target at x=2 while the source had x=1)."""
    assert delta_start(["x1", "x2", "x1"], True, ["x1", "x2"]) == 2
    assert delta_start(["x1", "x2", "x1", "x2"], False, ["x1", "x2"]) == 2
    # a doubt resends, never skips: the earliest place the target's last operation lines up
    # (the target's last b also lines up with the source's first b: resend from there)
    assert delta_start(["b", "x", "a", "b", "a"], False, ["b", "x", "a", "b"]) == 1
    assert delta_start(["a", "b", "a", "b", "c"], False, ["a", "b"]) == 2


# ------------------------------------------------------------------------------- G-7


@pytest.mark.parametrize("seed", seeds(1))
@pytest.mark.parametrize("method", [m.value for m in TransferMethod])
async def test_g7_a_target_crash_aborts_the_move_cleanly_and_a_retry_completes(
    method: str, seed: int, autojump_clock: trio.testing.MockClock, disk_shards: None
) -> None:
    """G-7, target side: the target crashes right after the move starts. The source's attempts
    fail, it proposes the abort: the target replica is removed without ever being Active, the
    source stays Active with every acknowledged write. Restarted, the same move completes and
    passes G-6's content check."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=1, batches=30)
        (source_id,) = replica_states(peers[0], NAME)
        source = peer_by_id(peers, source_id)
        target = next(p for p in peers if p is not source)
        third = next(p for p in peers if p not in (source, target))
        seen = watch_states(nursery, target, source, NAME)
        work = _Workload(peers, seed, pause_s=0.05)
        t = ShardTransfer(ShardId(0), source.peer_id, target.peer_id, False,
                          TransferMethod(method))  # fmt: skip
        async with trio.open_nursery() as clients:
            work.start(clients, [source, third])
            assert source.peer is not None  # it returns once the source applied the start
            assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
            sim.kill(target)
            await sim.wait_until(
                lambda: replica_states(source, NAME) == {source.peer_id: A}, timeout_s=120
            )
            assert A not in seen, seen
            await sim.restart(target)
            await sim.wait_until(lambda: sim.leader() is not None and len(sim.running()) == 3)
            await sim.wait_until(lambda: replica_states(target, NAME) == {source.peer_id: A})
            assert source.peer is not None
            assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
            await sim.wait_until(
                lambda: replica_states(source, NAME) == {target.peer_id: A}, timeout_s=120
            )
            await trio.sleep(0.2)
            work.stop.set()
        await _settled(sim, peers)
        work.check(set(shard_content(target, NAME)))
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("seed", seeds(1))
@pytest.mark.parametrize("method", [m.value for m in TransferMethod])
async def test_g7_a_source_crash_leaves_the_target_unreadable_until_the_source_resumes(
    method: str, seed: int, autojump_clock: trio.testing.MockClock, disk_shards: None
) -> None:
    """G-7, source side: the source crashes right after a replication starts. While it is
    down the target stays Partial/Recovery — never Active, never read — and the source's
    replica keeps its state. Restarted (its shard files intact), the source drives the
    transfer again from the start and it completes with every acknowledged write. (Qdrant
    aborts a transfer whose source restarts and the Dead target then recovers itself; here
    the restarted source resumes it — the same end state.)"""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=1, batches=30)
        (source_id,) = replica_states(peers[0], NAME)
        source = peer_by_id(peers, source_id)
        target = next(p for p in peers if p is not source)
        third = next(p for p in peers if p not in (source, target))
        seen = watch_states(nursery, target, third, NAME)
        t = ShardTransfer(ShardId(0), source.peer_id, target.peer_id, True,
                          TransferMethod(method))  # fmt: skip
        # The source crashes when its first transfer message reaches the target: killed any
        # later, it may already have proposed the finish, which then commits without it
        # (soak seeds 18 and 29 of stream_records: the target rightly became Active).
        crashed = trio.Event()
        assert target.peer is not None
        handlers = target.peer.request_handlers
        prepare = handlers["transfer_init"]

        async def prepare_then_crash_the_source(body: dict[str, Any]) -> dict[str, Any]:
            answer = await prepare(body)
            if not crashed.is_set():
                sim.kill(source)
                crashed.set()
            return answer

        handlers["transfer_init"] = prepare_then_crash_the_source
        assert source.peer is not None  # it returns once the source applied the start
        assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
        with trio.fail_after(30):
            await crashed.wait()
        await trio.sleep(5.0)
        assert A not in seen[1:], seen
        assert replica_states(third, NAME)[source.peer_id] is A
        with pytest.raises(ShardUnavailableError):  # only the source may answer a read
            await _count(third)
        await sim.restart(source)
        await _settled(sim, peers)
        await trio.sleep(0.01)  # the watcher polls every 2 ms (soak seed 27 of wal_delta)
        assert seen[-1] is A
        assert shard_content(target, NAME) == shard_content(source, NAME)
        assert set(shard_content(target, NAME)) == set(range(300))
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------- G-9


@pytest.mark.parametrize("seed", seeds(2))
async def test_g9_two_followers_down_no_metadata_no_acked_writes_then_convergence(
    seed: int, autojump_clock: trio.testing.MockClock, disk_shards: None
) -> None:
    """G-9: rf = 3, wcf = 1; both followers crash. Creating a collection fails (no quorum);
    an upsert through the leader applies to its replica but is not acknowledged, since the
    failed replicas cannot be marked Dead without consensus. After both restart, the client's
    retries of its failed writes succeed and all three replicas converge to identical content
    with every acknowledged write."""
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, seed, rf=3, batches=5)
        leader = next(p for p in peers if p.peer is sim.leader())
        followers = [p for p in peers if p is not leader]
        for p in followers:
            sim.kill(p)
        assert leader.plane is not None
        body = {"vectors": {"size": DIM, "distance": "Dot"}}
        with pytest.raises(ProposalError):
            await leader.plane.collections.create("other", body, 2.0)
        failed = []
        for b in range(2):
            batch = range(2000 + 10 * b, 2010 + 10 * b)
            with pytest.raises(ShardUnavailableError):
                await router_of(leader).upsert(NAME, points_body(batch), wait=True)
            failed.append(batch)
        for p in followers:
            await sim.restart(p)
        await sim.wait_until(lambda: sim.leader() is not None and len(sim.running()) == 3)
        for batch in failed:  # the client retries what it could not get acknowledged
            with trio.fail_after(60):
                while True:
                    try:
                        await router_of(leader).upsert(NAME, points_body(batch), wait=True)
                        break
                    except ShardUnavailableError:
                        await trio.sleep(0.5)
        await _settled(sim, peers)
        contents = [shard_content(p, NAME) for p in peers]
        assert contents[0] == contents[1] == contents[2]
        assert set(contents[0]) == set(range(50)) | {i for b in failed for i in b}
        nursery.cancel_scope.cancel()


async def test_a_corrupted_snapshot_is_refused_and_the_next_attempt_completes(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``snapshot`` transfer whose archive is damaged on the way (one bit flipped in one
    chunk): the target's checksums catch it, the replica is not replaced, the attempt fails,
    and the next attempt ships a good archive; the target ends Active with the source's
    points, never having been Active with the damaged one."""
    monkeypatch.setattr(transfers, "CHUNK_BYTES", 4096)
    async with trio.open_nursery() as nursery:
        sim, peers = await _cluster(nursery, 3, rf=1, batches=30)
        (source_id,) = replica_states(peers[0], NAME)
        source = peer_by_id(peers, source_id)
        target = next(p for p in peers if p is not source)
        assert target.peer is not None
        receive = target.peer.request_handlers["transfer_chunk"]
        restores: list[bool] = []
        restore = target.peer.request_handlers["transfer_restore"]

        async def damage_once(body: dict[str, Any]) -> dict[str, Any]:
            if body["offset"] == 8192 and not restores:
                data = bytearray(base64.b64decode(body["data"]))
                data[100] ^= 0x10
                body = {**body, "data": base64.b64encode(bytes(data)).decode("ascii")}
            return await receive(body)

        async def spy_restore(body: dict[str, Any]) -> dict[str, Any]:
            answer = await restore(body)
            restores.append(answer["ok"])
            return answer

        target.peer.request_handlers["transfer_chunk"] = damage_once
        target.peer.request_handlers["transfer_restore"] = spy_restore
        seen = watch_states(nursery, target, source, NAME)
        t = ShardTransfer(ShardId(0), source.peer_id, target.peer_id, True,
                          TransferMethod.SNAPSHOT)  # fmt: skip
        assert source.peer is not None
        assert await source.peer.propose(encode_operation(StartTransfer(NAME, t))) is True
        await _settled(sim, peers)
        assert restores == [False, True]
        assert seen == [None, R, P, A]
        assert shard_content(target, NAME) == shard_content(source, NAME)
        assert len(shard_content(target, NAME)) == 300
        nursery.cancel_scope.cancel()

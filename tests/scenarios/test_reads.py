"""Group F of raft-scenarios.md: reads and client semantics (ReadIndex, Raft thesis §6.3–6.4)."""

from __future__ import annotations

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import NotLeader, Role
from refimpl.sim import Command, SimCluster
from refimpl.testing import CheckResult, History, KvOp, OpKind, check_history
from tests.scenarios.support import ET, applied_everywhere, check_golden, elect, make_cluster, put


def _serve_reads(c: SimCluster, peer: int) -> list[tuple[bytes, LogIndex]]:
    """Collect the ReadStates ``peer`` produces."""
    states: list[tuple[bytes, LogIndex]] = []

    def hook(node: PeerId, ctx: bytes, index: LogIndex) -> None:
        if node == peer:
            states.append((ctx, index))

    c.read_hooks.append(hook)
    return states


def test_f1_no_stale_read_from_a_deposed_leader() -> None:
    """F1: a leader cut off with a minority never confirms a ReadIndex read (Jepsen etcd 2014).

    CheckQuorum is off, so the old leader still believes it leads when the read arrives: only
    ReadIndex's heartbeat round (a quorum must answer) stops it from serving x = 1.
    """
    c = make_cluster(5, seed=51, check_quorum=False)
    h = History()
    old = elect(c)
    w1 = h.invoke(1, KvOp(OpKind.PUT, "x", "1"))
    index = put(c, old, "x", "1", 1)
    assert c.run_until(applied_everywhere(index), 2 * ET)
    h.ok(w1)
    buddy = min(p for p in c.nodes if p != old)
    c.partition([old, buddy])
    majority = [p for p in c.nodes if p not in (old, buddy)]
    assert c.run_until(lambda c: any(c.node(p).role is Role.LEADER for p in majority), 10 * ET)
    new = next(p for p in majority if c.node(p).role is Role.LEADER)
    w2 = h.invoke(2, KvOp(OpKind.PUT, "x", "2"))
    index2 = put(c, new, "x", "2", 2)
    assert c.run_until(lambda c: c.node(new).sm.applied_index >= index2, 2 * ET)
    h.ok(w2)
    # The read starts after x = 2 was acknowledged; the old node may still think it leads.
    r = h.invoke(3, KvOp(OpKind.GET, "x"))
    states = _serve_reads(c, old)
    try:
        c.read_index(old, b"read-1")
    except NotLeader as exc:  # a definite "not leader": the read never happened
        c.transcript.record(c.now, f"n{old} refuses the read: {type(exc).__name__}")
    assert c.node(old).role is Role.LEADER, "the old leader still believes it leads"
    c.run(3 * ET)
    assert states == [], "a deposed leader confirmed a read"
    h.info(r)
    assert check_history(h).ok
    check_golden(c, "f1_no_stale_read")


def test_f1_teaching_a_local_read_is_stale() -> None:
    """F1 (teaching mode): reading the old leader's local state without ReadIndex is stale."""
    c = make_cluster(5, seed=51, check_quorum=False)
    h = History()
    old = elect(c)
    index = put(c, old, "x", "1", 1)
    assert c.run_until(applied_everywhere(index), 2 * ET)
    w = h.invoke(1, KvOp(OpKind.PUT, "x", "1"))
    h.ok(w)
    buddy = min(p for p in c.nodes if p != old)
    c.partition([old, buddy])
    majority = [p for p in c.nodes if p not in (old, buddy)]
    assert c.run_until(lambda c: any(c.node(p).role is Role.LEADER for p in majority), 10 * ET)
    new = next(p for p in majority if c.node(p).role is Role.LEADER)
    w2 = h.invoke(2, KvOp(OpKind.PUT, "x", "2"))
    index2 = put(c, new, "x", "2", 2)
    assert c.run_until(lambda c: c.node(new).sm.applied_index >= index2, 2 * ET)
    h.ok(w2)
    r = h.invoke(3, KvOp(OpKind.GET, "x"))
    h.ok(r, c.node(old).sm.data.get("x"))  # the naive read: whatever the old node holds
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE


def test_f2_new_leader_waits_for_its_first_commit() -> None:
    """F2: a read at a brand-new leader is answered only at or after its own first commit."""
    c = make_cluster(3, seed=52)
    old = elect(c)
    index = put(c, old, "x", "2", 1)
    assert c.run_until(applied_everywhere(index), 2 * ET)
    c.crash(old)
    assert c.run_until(lambda c: c.leader() not in (None, old), 10 * ET)
    new = c.leader()
    assert new is not None
    raft = c.node(new).raft
    assert raft is not None
    noop = raft.last_log_index
    states = _serve_reads(c, new)
    c.read_index(new, b"read-2")
    assert c.run_until(lambda c: bool(states), 2 * ET)
    assert states[0][1] >= noop >= index


def test_f3_retries_are_exactly_once() -> None:
    """F3: a committed command retried after its leader crashed is applied only once."""
    c = make_cluster(3, seed=53)
    old = elect(c)
    cas = Command(7, 1, KvOp(OpKind.CAS, "x", "1", None)).encode()
    index = c.propose(old, cas)
    assert c.run_until(lambda c: c.checker.max_applied >= index, 2 * ET)
    c.crash(old)  # before the client heard back
    assert c.run_until(lambda c: c.leader() not in (None, old), 10 * ET)
    new = c.leader()
    assert new is not None
    retry = c.propose(new, cas)  # the same (client, seq)
    results: list[object] = []
    c.apply_hooks.append(
        lambda p, e, r: results.append(r) if e.index == retry and p == new else None
    )
    assert c.run_until(lambda c: bool(results), 2 * ET)
    assert results == [True], "the retry returns the first result instead of failing the cas"
    other = Command(8, 1, KvOp(OpKind.CAS, "x", "2", None)).encode()
    later = c.propose(new, other)
    assert c.run_until(applied_everywhere(later), 2 * ET)
    assert c.node(new).sm.data["x"] == "1"

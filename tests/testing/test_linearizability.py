"""Tests of the WGL linearizability checker against hand-written and generated histories."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.testing.linearizability import (
    CheckResult,
    EventKind,
    History,
    HistoryEvent,
    KvOp,
    OpKind,
    check_history,
    kv_step,
)


def put(key: str, value: object) -> KvOp:
    return KvOp(OpKind.PUT, key, value)


def get(key: str) -> KvOp:
    return KvOp(OpKind.GET, key)


def cas(key: str, expected: object, value: object) -> KvOp:
    return KvOp(OpKind.CAS, key, value, expected)


def test_sequential_history_is_linearizable() -> None:
    """A history with no overlap is linearizable iff it is legal in the model (Herlihy & Wing)."""
    h = History()
    a = h.invoke(1, put("x", 1))
    h.ok(a)
    b = h.invoke(2, get("x"))
    h.ok(b, 1)
    c = h.invoke(1, cas("x", 1, 2))
    h.ok(c, True)
    d = h.invoke(2, get("x"))
    h.ok(d, 2)
    assert check_history(h).result is CheckResult.LINEARIZABLE


def test_stale_read_after_write_returned_is_not_linearizable() -> None:
    """A read that starts after a write returned must observe it (real-time order)."""
    h = History()
    a = h.invoke(1, put("x", 1))
    h.ok(a)
    b = h.invoke(1, put("x", 2))
    h.ok(b)
    c = h.invoke(2, get("x"))
    h.ok(c, 1)
    result = check_history(h)
    assert result.result is CheckResult.NOT_LINEARIZABLE
    assert result.bad_key == "x"


def test_concurrent_read_may_see_old_or_new_value() -> None:
    """An operation overlapping a write may be ordered before or after it."""
    for seen in (None, 1):
        h = History()
        w = h.invoke(1, put("x", 1))
        r = h.invoke(2, get("x"))
        h.ok(r, seen)
        h.ok(w)
        assert check_history(h).ok, seen


def test_two_reads_cannot_disagree_on_order() -> None:
    """Once a read saw the new value, a later read may not see the old one (Jepsen's classic)."""
    h = History()
    w = h.invoke(1, put("x", 1))
    r1 = h.invoke(2, get("x"))
    h.ok(r1, 1)
    r2 = h.invoke(3, get("x"))
    h.ok(r2, None)
    h.ok(w)
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE


def test_indefinite_write_may_or_may_not_take_effect() -> None:
    """An ``info`` operation is open-ended: either outcome is acceptable."""
    for seen in (None, 1):
        h = History()
        w = h.invoke(1, put("x", 1))
        h.info(w)
        r = h.invoke(2, get("x"))
        h.ok(r, seen)
        assert check_history(h).ok, seen


def test_indefinite_write_cannot_flicker() -> None:
    """An indefinite write takes effect at most once: seen, then unseen, then seen is illegal."""
    h = History()
    w = h.invoke(1, put("x", 1))
    h.info(w)
    for seen in (1, None, 1):
        r = h.invoke(2, get("x"))
        h.ok(r, seen)
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE


def test_failed_write_must_not_be_seen() -> None:
    """A ``fail`` is definite: the operation did not happen."""
    h = History()
    w = h.invoke(1, put("x", 1))
    h.fail(w)
    r = h.invoke(2, get("x"))
    h.ok(r, 1)
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE


def test_cas_results_must_be_consistent() -> None:
    """Two successful cas from the same expected value cannot both swap."""
    h = History()
    a = h.invoke(1, put("x", 0))
    h.ok(a)
    b = h.invoke(1, cas("x", 0, 1))
    c = h.invoke(2, cas("x", 0, 2))
    h.ok(b, True)
    h.ok(c, True)
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE
    h2 = History()
    a = h2.invoke(1, put("x", 0))
    h2.ok(a)
    b = h2.invoke(1, cas("x", 0, 1))
    c = h2.invoke(2, cas("x", 0, 2))
    h2.ok(b, True)
    h2.ok(c, False)
    assert check_history(h2).ok


def test_keys_are_checked_independently() -> None:
    """P-compositionality: a violation on one key is reported for that key."""
    h = History()
    a = h.invoke(1, put("y", 5))
    h.ok(a)
    b = h.invoke(1, put("x", 1))
    h.ok(b)
    c = h.invoke(2, get("x"))
    h.ok(c, None)
    result = check_history(h)
    assert result.result is CheckResult.NOT_LINEARIZABLE
    assert result.bad_key == "x"
    assert {o.op.key for o in result.bad_operations} == {"x"}


def test_unfinished_operations_are_indefinite() -> None:
    """An operation never completed counts as ``info``."""
    events = [
        HistoryEvent(EventKind.INVOKE, 0, 1, put("x", 1)),
        HistoryEvent(EventKind.INVOKE, 1, 2, get("x")),
        HistoryEvent(EventKind.OK, 1, 2, get("x"), 1),
    ]
    assert check_history(events).ok


def test_step_budget_gives_unknown() -> None:
    """Running out of steps is reported as UNKNOWN, never as a verdict."""
    h = History()
    ids = [h.invoke(p, put("x", p)) for p in range(12)]
    r = h.invoke(99, get("x"))
    h.ok(r, "never written")
    for i in ids:
        h.ok(i)
    assert check_history(h, max_steps_per_key=20).result is CheckResult.UNKNOWN
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE


def _random_op(rng: random.Random) -> KvOp:
    key = rng.choice("ab")
    kind = rng.choice(list(OpKind))
    value = rng.randrange(4)
    expected = rng.choice([None, 0, 1, 2, 3])
    return KvOp(kind, key, value if kind is not OpKind.GET else None, expected)


def _concurrent_history(seed: int, n_ops: int) -> tuple[History, list[int]]:
    """Run ops against the model at a random point inside overlapping intervals."""
    rng = random.Random(seed)
    h = History()
    state: dict[str, object] = {}
    pending: list[tuple[int, object]] = []
    results: list[int] = []
    for _ in range(n_ops):
        op = _random_op(rng)
        op_id = h.invoke(rng.randrange(5), op)
        # Linearization point: now, between invoke and the (later) ok.
        _, new_value = kv_step(state.get(op.key), op, None, known=False)
        result: object = None
        if op.kind is OpKind.GET:
            result = state.get(op.key)
        elif op.kind is OpKind.CAS:
            result = state.get(op.key) == op.expected
        state[op.key] = new_value
        pending.append((op_id, result))
        results.append(op_id)
        # Complete some pending operations in random order.
        while pending and rng.random() < 0.5:
            done_id, done_result = pending.pop(rng.randrange(len(pending)))
            h.ok(done_id, done_result)
    for done_id, done_result in pending:
        h.ok(done_id, done_result)
    return h, results


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 30))
def test_histories_from_the_model_are_linearizable(seed: int, n_ops: int) -> None:
    """A history produced by a correct (atomic) implementation is always linearizable."""
    h, _ = _concurrent_history(seed, n_ops)
    assert check_history(h).ok


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 30))
def test_mutated_read_is_not_linearizable(seed: int, n_ops: int) -> None:
    """Changing a read's result to a value never written makes the history non-linearizable."""
    h, _ = _concurrent_history(seed, n_ops)
    reads = [
        i for i, e in enumerate(h.events) if e.kind is EventKind.OK and e.op.kind is OpKind.GET
    ]
    if not reads:
        h.events.append(HistoryEvent(EventKind.INVOKE, 10_000, 7, get("a")))
        h.events.append(HistoryEvent(EventKind.OK, 10_000, 7, get("a"), "bogus"))
    else:
        i = reads[random.Random(seed).randrange(len(reads))]
        e = h.events[i]
        h.events[i] = HistoryEvent(e.kind, e.op_id, e.process, e.op, "bogus")
    assert check_history(h).result is CheckResult.NOT_LINEARIZABLE

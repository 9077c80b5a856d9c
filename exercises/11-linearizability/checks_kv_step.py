"""Checks for exercise 11: the model step of the linearizability checker.

The rule (refimpl/testing/linearizability.py ``kv_step``): apply one operation to one key's
value and say whether the observed result is legal. ``put`` always succeeds and sets the
value; ``get`` is legal if its result equals the value (or the result is unknown); ``cas``
swaps exactly when the value equals ``expected``, and is illegal if a known result disagrees
with whether it swapped. The WGL search of ``check_history`` calls your step for every move, so
graded here are the step itself (every case of a small domain) and whole verdicts on small
concurrent histories, compared with a brute-force search over every order of the operations.
"""

import itertools
from collections.abc import Hashable

from hypothesis import given, note
from hypothesis import strategies as st

from exercises._grading.api import CheckFailedError, Exercise, grading_settings
from refimpl.testing import linearizability as lin
from refimpl.testing.linearizability import CheckResult, History, KvOp, Operation, OpKind

EXERCISE = Exercise(
    marker="kv_step",
    title="A linearizability check of a small history (the model step)",
    book="book/raft_replication.md (Clients and linearizability)",
)

Value = Hashable | None
VALUES: list[Value] = [None, "a", "b"]


def oracle(state: Value, op: KvOp, result: Value, known: bool) -> tuple[bool, Value]:
    """The register model, case by case."""
    if op.kind is OpKind.PUT:
        return True, op.value
    if op.kind is OpKind.GET:
        return (not known or result == state), state
    swapped = state == op.expected
    if known and result != swapped:
        return False, state
    return True, op.value if swapped else state


def all_ops() -> list[KvOp]:
    ops = [KvOp(OpKind.GET, "k")]
    ops += [KvOp(OpKind.PUT, "k", v) for v in ("a", "b")]
    ops += [KvOp(OpKind.CAS, "k", v, e) for v in ("a", "b") for e in VALUES]
    return ops


@EXERCISE.check(points=3)
def every_step_of_a_small_domain() -> None:
    """Every state, operation, result and known flag over values {None, 'a', 'b'} follows the model."""
    for state, op, result, known in itertools.product(
        VALUES, all_ops(), [*VALUES, True, False], [True, False]
    ):
        got = lin.kv_step(state, op, result, known)
        want = oracle(state, op, result, known)
        if tuple(got) != want:
            raise CheckFailedError(
                f"kv_step(state={state!r}, op={op}, result={result!r}, known={known}) returned {got!r}, "
                f"the model gives {want!r}  (legal, new value)"
            )


def brute_force(ops: list[Operation]) -> bool:
    """Is there an order of the completed operations (plus any indefinite ones) that works?"""
    done = [o for o in ops if o.ret is not None]
    maybe = [o for o in ops if o.ret is None]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            chosen = done + list(extra)
            for order in itertools.permutations(chosen):
                if _legal(order):
                    return True
    return False


def _legal(order: tuple[Operation, ...]) -> bool:
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            if b.ret is not None and b.ret < a.call:  # b finished before a started
                return False
    state: Value = None
    for o in order:
        ok, state = oracle(state, o.op, o.result, o.ret is not None)
        if not ok:
            return False
    return True


@st.composite
def histories(draw: st.DrawFn) -> History:
    """Up to 5 operations by 3 clients on one key; results honest (from a register) or random."""
    history = History()
    model: dict[str, Value] = {"value": None}
    open_ops: dict[int, tuple[int, KvOp]] = {}
    started = 0
    for _ in range(12):
        process = draw(st.integers(0, 2))
        if process not in open_ops:
            if started == 5:
                continue
            op = draw(st.sampled_from(all_ops()))
            open_ops[process] = (history.invoke(process, op), op)
            started += 1
            continue
        op_id, op = open_ops.pop(process)
        ending = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        if ending == "fail":
            history.fail(op_id)
        elif ending == "info":
            history.info(op_id)
        elif draw(st.booleans()):  # honest: the register applies the op at its completion
            _, new = oracle(model["value"], op, None, False)
            result = (
                model["value"]
                if op.kind is OpKind.GET
                else (model["value"] == op.expected if op.kind is OpKind.CAS else None)
            )
            model["value"] = new
            history.ok(op_id, result)
        else:
            history.ok(op_id, draw(st.sampled_from([*VALUES, True, False])))
    return history


@EXERCISE.check(points=5, timeout_s=30)
@grading_settings(max_examples=150)
@given(histories())
def verdicts_match_brute_force(history: History) -> None:
    """check_history with your step agrees with trying every order, on small concurrent histories."""
    ops = history.operations()
    note(
        "history:\n"
        + "\n".join(
            f"  {e.kind.value:<6} p{e.process} {e.op}"
            + (f" -> {e.result!r}" if e.kind.value == "ok" else "")
            for e in history.events
        )
    )
    want = brute_force(ops)
    got = lin.check_history(history).result
    if (got is CheckResult.LINEARIZABLE) != want:
        raise CheckFailedError(
            f"check_history says {got.value}, trying every order says "
            f"{'linearizable' if want else 'not linearizable'}"
        )


@EXERCISE.check(points=2)
def classic_histories() -> None:
    """A stale read after a finished write is caught; an unknown cas may or may not have happened."""
    h = History()
    w = h.invoke(0, KvOp(OpKind.PUT, "k", "a"))
    h.ok(w)
    r = h.invoke(1, KvOp(OpKind.GET, "k"))
    h.ok(r, None)  # reads the old value after the write returned: not linearizable
    if lin.check_history(h).result is not CheckResult.NOT_LINEARIZABLE:
        raise CheckFailedError(
            "a read that returned the old value after the write finished passed the check"
        )
    for seen in ("a", "b"):
        h = History()
        h.ok(h.invoke(0, KvOp(OpKind.PUT, "k", "a")))
        c = h.invoke(1, KvOp(OpKind.CAS, "k", "b", "a"))
        h.info(c)  # timed out: did it swap?
        g = h.invoke(2, KvOp(OpKind.GET, "k"))
        h.ok(g, seen)
        if lin.check_history(h).result is not CheckResult.LINEARIZABLE:
            raise CheckFailedError(
                f"after an indefinite cas a->b, a read of {seen!r} must be accepted"
            )

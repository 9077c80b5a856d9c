"""A linearizability checker for key-value client histories (Wing–Gong search, Lowe's cache).

Rules:

* A *history* is a sequence of events as a Jepsen client records them: ``invoke`` when a client
  sends an operation, then exactly one of ``ok`` (it happened, with this result), ``fail`` (it
  definitely did not happen) or ``info`` (indefinite: it may or may not have happened, and if it
  did, at some point after its invocation). An operation never completed counts as ``info``.
* The model is a map from key to value with three operations: ``put(k, v)``, ``get(k)`` returning
  the value or ``None``, and ``cas(k, expected, new)`` returning whether it swapped.
* The history is linearizable iff there is a total order of the ``ok`` operations plus any
  subset of the ``info`` operations, consistent with real time (if A returned before B was
  invoked, A comes first) and legal in the model.

Theory of operation:

* P-compositionality: linearizability is local, so the history is split per key and each key
  is checked on its own (Herlihy & Wing). This keeps each search small.
* Wing & Gong's search walks the events in time order; at each call event it tries to
  linearize that operation now (if the model allows it) and recurses; at a return event whose
  operation is not yet linearized it backtracks. Lowe's improvement memoizes every
  ``(set of linearized operations, model state)`` pair already explored: reaching one again
  cannot lead anywhere new. The set is a Python ``int`` used as a bitset.
* An ``info`` operation gets a return time of +infinity and an unknown result. Linearizing it
  at the very end of the order is always legal and changes nothing that anyone observed, which is
  exactly "it did not take effect"; so the search need not treat it specially.
* The search has a step budget; exhausting it yields ``UNKNOWN`` rather than a wrong answer.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CheckResult",
    "EventKind",
    "History",
    "HistoryEvent",
    "KvOp",
    "LinearizabilityResult",
    "OpKind",
    "Operation",
    "check_history",
    "check_operations",
    "kv_step",
]

Value = Hashable | None
"""A register value; ``None`` means the key is absent."""


class OpKind(enum.Enum):
    """The three operations of the key-value model."""

    PUT = "put"
    GET = "get"
    CAS = "cas"


@dataclass(frozen=True, slots=True)
class KvOp:
    """An operation a client asks for: ``put(key, value)``, ``get(key)``, ``cas(key, expected, value)``."""

    kind: OpKind
    key: str
    value: Value = None
    expected: Value = None

    def __str__(self) -> str:
        match self.kind:
            case OpKind.PUT:
                return f"put({self.key}, {self.value!r})"
            case OpKind.GET:
                return f"get({self.key})"
            case OpKind.CAS:
                return f"cas({self.key}, {self.expected!r}→{self.value!r})"


class EventKind(enum.Enum):
    """Jepsen's event types."""

    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One line of a history; ``op_id`` ties a completion to its invocation."""

    kind: EventKind
    op_id: int
    process: int
    op: KvOp
    result: Value = None


@dataclass(frozen=True, slots=True)
class Operation:
    """An operation with its interval: ``call < ret`` positions; ``ret is None`` if indefinite."""

    op_id: int
    process: int
    op: KvOp
    call: int
    ret: int | None
    result: Value = None


class CheckResult(enum.Enum):
    """Outcome of a check; ``UNKNOWN`` means the step budget ran out."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict, with the first failing key and its operations for a readable report."""

    result: CheckResult
    bad_key: str | None = None
    bad_operations: tuple[Operation, ...] = ()
    steps: int = 0

    @property
    def ok(self) -> bool:
        """True iff the history is linearizable."""
        return self.result is CheckResult.LINEARIZABLE


@dataclass
class History:
    """A recorder for client histories; positions in ``events`` are the (virtual) times."""

    events: list[HistoryEvent] = field(default_factory=list)
    _open: dict[int, HistoryEvent] = field(default_factory=dict)
    _next_id: int = 0

    def invoke(self, process: int, op: KvOp) -> int:
        """Record an invocation; returns the id to complete it with."""
        op_id = self._next_id
        self._next_id += 1
        event = HistoryEvent(EventKind.INVOKE, op_id, process, op)
        self._open[op_id] = event
        self.events.append(event)
        return op_id

    def _complete(self, kind: EventKind, op_id: int, result: Value) -> None:
        invoke = self._open.pop(op_id, None)
        if invoke is None:
            raise ValueError(f"operation {op_id} is not open (completed twice or never invoked)")
        self.events.append(HistoryEvent(kind, op_id, invoke.process, invoke.op, result))

    def ok(self, op_id: int, result: Value = None) -> None:
        """The operation took effect with ``result`` (get: the value; cas: swapped?)."""
        self._complete(EventKind.OK, op_id, result)

    def fail(self, op_id: int) -> None:
        """The operation definitely did not and will not take effect."""
        self._complete(EventKind.FAIL, op_id, None)

    def info(self, op_id: int) -> None:
        """The outcome is unknown (timeout, leader lost after append)."""
        self._complete(EventKind.INFO, op_id, None)

    def is_open(self, op_id: int) -> bool:
        """True while ``op_id`` has no completion."""
        return op_id in self._open

    def operations(self) -> list[Operation]:
        """Pair invocations with completions; failed operations are dropped."""
        return operations_of(self.events)


def operations_of(events: Iterable[HistoryEvent]) -> list[Operation]:
    """Turn events into intervals; an operation without completion is indefinite."""
    calls: dict[int, tuple[int, HistoryEvent]] = {}
    ops: list[Operation] = []
    for position, event in enumerate(events):
        if event.kind is EventKind.INVOKE:
            calls[event.op_id] = (position, event)
            continue
        call_position, invoke = calls.pop(event.op_id)
        if event.kind is EventKind.OK:
            ops.append(
                Operation(
                    event.op_id, invoke.process, invoke.op, call_position, position, event.result
                )
            )
        elif event.kind is EventKind.INFO:
            ops.append(Operation(event.op_id, invoke.process, invoke.op, call_position, None))
    for call_position, invoke in calls.values():
        ops.append(Operation(invoke.op_id, invoke.process, invoke.op, call_position, None))
    return ops


def kv_step(state: Value, op: KvOp, result: Value, known: bool) -> tuple[bool, Value]:
    """Apply ``op`` to one key's value; returns (legal, new value).

    ``known`` is False for indefinite operations, whose result was never observed: any result
    the model produces is then acceptable.
    """
    # [exercise: kv_step] begin
    match op.kind:
        case OpKind.PUT:
            return True, op.value
        case OpKind.GET:
            return (not known or result == state), state
        case OpKind.CAS:
            swapped = state == op.expected
            if known and result != swapped:
                return False, state
            return True, (op.value if swapped else state)
    # [exercise: kv_step] end


def _check_key(ops: Sequence[Operation], max_steps: int) -> tuple[CheckResult, int]:
    """WGL search over one key's operations; returns the verdict and the steps taken."""
    # Events in time order: (time, is_return, op index). Indefinite returns go last.
    infinity = 1 << 62
    events = sorted(
        [(o.call, 0, i) for i, o in enumerate(ops)]
        + [(infinity if o.ret is None else o.ret, 1, i) for i, o in enumerate(ops)]
    )
    n = len(events)
    # A doubly linked list over event slots 1..n with a head sentinel 0; lifting an operation
    # unlinks its call and return events, unlifting relinks them (dancing links).
    nxt = list(range(1, n + 2))
    prv = list(range(-1, n + 1))
    call_slot = [0] * len(ops)
    ret_slot = [0] * len(ops)
    for slot, (_, is_ret, i) in enumerate(events, start=1):
        (ret_slot if is_ret else call_slot)[i] = slot

    def unlink(slot: int) -> None:
        nxt[prv[slot]] = nxt[slot]
        prv[nxt[slot]] = prv[slot]

    def relink(slot: int) -> None:
        nxt[prv[slot]] = slot
        prv[nxt[slot]] = slot

    state: Value = None
    linearized = 0
    seen: set[tuple[int, Value]] = set()
    stack: list[tuple[int, Value]] = []  # (op index, state before it)
    slot = nxt[0]
    steps = 0
    while nxt[0] <= n:
        steps += 1
        if steps > max_steps:
            return CheckResult.UNKNOWN, steps
        _, is_ret, i = events[slot - 1]
        if not is_ret:
            o = ops[i]
            legal, new_state = kv_step(state, o.op, o.result, o.ret is not None)
            candidate = (linearized | (1 << i), new_state)
            if legal and candidate not in seen:
                seen.add(candidate)
                stack.append((i, state))
                linearized, state = candidate
                unlink(call_slot[i])
                unlink(ret_slot[i])
                slot = nxt[0]
                continue
            slot = nxt[slot]
            continue
        # A return event whose operation is not linearized yet: backtrack.
        if not stack:
            return CheckResult.NOT_LINEARIZABLE, steps
        i, state = stack.pop()
        linearized &= ~(1 << i)
        relink(ret_slot[i])
        relink(call_slot[i])
        slot = nxt[call_slot[i]]
    return CheckResult.LINEARIZABLE, steps


def check_operations(
    ops: Iterable[Operation], max_steps_per_key: int = 2_000_000
) -> LinearizabilityResult:
    """Check operations (already paired) key by key."""
    by_key: dict[str, list[Operation]] = {}
    for o in ops:
        by_key.setdefault(o.op.key, []).append(o)
    total_steps = 0
    unknown: tuple[str, list[Operation]] | None = None
    for key in sorted(by_key):
        verdict, steps = _check_key(by_key[key], max_steps_per_key)
        total_steps += steps
        if verdict is CheckResult.NOT_LINEARIZABLE:
            return LinearizabilityResult(verdict, key, tuple(by_key[key]), total_steps)
        if verdict is CheckResult.UNKNOWN and unknown is None:
            unknown = (key, by_key[key])
    if unknown is not None:
        return LinearizabilityResult(
            CheckResult.UNKNOWN, unknown[0], tuple(unknown[1]), total_steps
        )
    return LinearizabilityResult(CheckResult.LINEARIZABLE, steps=total_steps)


def check_history(
    history: History | Iterable[HistoryEvent], max_steps_per_key: int = 2_000_000
) -> LinearizabilityResult:
    """Check a recorded history (see the module docstring for the semantics)."""
    events = history.events if isinstance(history, History) else list(history)
    return check_operations(operations_of(events), max_steps_per_key)

"""The public test kit: invariant checkers, a linearizability checker, transcript helpers.

Rules: nothing here imports trio; everything is deterministic given its inputs. Other parts of
the project add their own modules (conformance checks, oracles) and extend ``__all__`` below,
one block per module.
"""

from refimpl.testing.golden import REWRITE_ENV, GoldenMismatchError, assert_golden
from refimpl.testing.index_conformance import IndexFactory, check_vector_index
from refimpl.testing.invariants import (
    DurableView,
    InvariantViolationError,
    RaftInvariants,
    Violation,
)
from refimpl.testing.linearizability import (
    CheckResult,
    EventKind,
    History,
    HistoryEvent,
    KvOp,
    LinearizabilityResult,
    Operation,
    OpKind,
    check_history,
    check_operations,
    kv_step,
)
from refimpl.testing.ring_conformance import check_hash_ring

__all__ = [
    "REWRITE_ENV",
    "CheckResult",
    "DurableView",
    "EventKind",
    "GoldenMismatchError",
    "History",
    "HistoryEvent",
    "IndexFactory",
    "InvariantViolationError",
    "KvOp",
    "LinearizabilityResult",
    "OpKind",
    "Operation",
    "RaftInvariants",
    "Violation",
    "assert_golden",
    "check_hash_ring",
    "check_history",
    "check_operations",
    "check_vector_index",
    "kv_step",
]

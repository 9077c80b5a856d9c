"""RaftLog (stable storage + unstable tail) behaves like one plain list (Raft §5.3 log model)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import Entry, EntryKind, Membership, MemoryStorage
from refimpl.raft.log import RaftLog

I = LogIndex  # noqa: E741


def _entry(index: int, term: int) -> Entry:
    return Entry(Term(term), I(index), EntryKind.NORMAL, f"{index}@{term}".encode())


ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 12), st.integers(1, 4), st.integers(1, 3)),
        st.tuples(st.just("persist"), st.just(0), st.just(0), st.just(0)),
    ),
    max_size=25,
)


@given(ops)
def test_raft_log_equals_list_oracle(operations: list[tuple[str, int, int, int]]) -> None:
    """Appending, truncating at a conflict and persisting in any interleaving keeps
    RaftLog's view (entries, term_at, last_index) equal to a list with the same edits."""
    storage = MemoryStorage()
    log = RaftLog(storage, I(0))
    oracle: list[Entry] = []
    for op, at, count, term in operations:
        if op == "persist":
            storage.append(log.unstable)
            if log.unstable:
                log.stable_to(log.unstable[-1].index, log.unstable[-1].term)
            assert log.unstable == []
        else:
            start = min(at, len(oracle)) + 1
            new = [_entry(start + k, term + k) for k in range(count)]
            log.truncate_and_append(new)
            oracle = oracle[: start - 1] + new
        assert log.last_index() == len(oracle)
        assert log.entries(I(1), I(len(oracle) + 1), 1000) == oracle
        for e in oracle:
            assert log.term_at(e.index) == e.term
        assert log.term_at(I(len(oracle) + 1)) is None
    storage.append(log.unstable)
    assert storage.entries(I(1), I(storage.last_index() + 1)) == oracle


def test_raft_log_entries_respect_max_count_and_stable_to_ignores_superseded_term() -> None:
    """Limits apply to every read; a persisted report for a since-truncated entry is ignored."""
    storage = MemoryStorage()
    log = RaftLog(storage, I(0))
    log.truncate_and_append([_entry(1, 1), _entry(2, 1), _entry(3, 1)])
    assert [e.index for e in log.entries(I(1), I(4), 2)] == [1, 2]
    log.truncate_and_append([_entry(2, 2)])
    log.stable_to(I(2), Term(1))  # the driver persisted the old entry 2: no longer ours
    assert [e.term for e in log.unstable] == [1, 2]


def test_raft_log_restore_replaces_everything_with_the_snapshot() -> None:
    """A restored snapshot answers term_at for its last index and hides older entries."""
    from refimpl.raft import Snapshot, SnapshotMeta

    storage = MemoryStorage()
    log = RaftLog(storage, I(0))
    log.truncate_and_append([_entry(1, 1), _entry(2, 1)])
    membership = Membership(frozenset({PeerId(1)}))
    log.restore(Snapshot(SnapshotMeta(I(5), Term(3), membership), b"s"))
    assert (log.first_index(), log.last_index(), log.committed) == (6, 5, 5)
    assert log.term_at(I(5)) == 3
    assert log.term_at(I(2)) is None

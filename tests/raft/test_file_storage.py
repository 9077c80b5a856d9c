"""FileStorage: atomic hard state and snapshot, CRC-checked append-only log, torn-tail and
bit-flip detection on open (Raft Figure 2 "persistent state"; spec "Node Failure Recovery")."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import (
    Entry,
    EntryKind,
    FileStorage,
    HardState,
    Membership,
    RaftConfig,
    RaftNode,
    Role,
    Snapshot,
    SnapshotMeta,
    StorageError,
)
from refimpl.raft.file_storage import decode_records

P = PeerId
MEMBERS = Membership(frozenset({P(1), P(2), P(3)}), frozenset({P(4)}))


def _entries(first: int, count: int, term: int, tag: str = "") -> list[Entry]:
    return [
        Entry(Term(term), LogIndex(first + k), EntryKind.NORMAL, f"{tag}{first + k}".encode())
        for k in range(count)
    ]


def _all(storage: FileStorage) -> list[Entry]:
    return storage.entries(storage.first_index(), LogIndex(storage.last_index() + 1))


def test_round_trip_survives_reopen(tmp_path: Path) -> None:
    """Everything written and synced is read back identically after reopening."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 5, 1))
        storage.set_hard_state(HardState(Term(3), P(2), LogIndex(4)))
        storage.sync()
        written = _all(storage)
    with FileStorage(tmp_path) as reopened:
        assert reopened.recovery_warnings == []
        assert _all(reopened) == written
        assert reopened.initial_state() == (HardState(Term(3), P(2), LogIndex(4)), MEMBERS)
        assert reopened.term(LogIndex(1)) == 0  # the genesis snapshot
        assert (reopened.first_index(), reopened.last_index()) == (2, 6)


def test_bootstrap_refuses_a_directory_with_state(tmp_path: Path) -> None:
    """Bootstrapping twice would silently forget the first cluster; it raises instead."""
    FileStorage.bootstrap(tmp_path, MEMBERS).close()
    with pytest.raises(StorageError):
        FileStorage.bootstrap(tmp_path, MEMBERS)


def test_conflicting_suffix_is_truncated_in_the_file(tmp_path: Path) -> None:
    """append() from inside the log drops the old suffix on disk too."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 9, 1, "old"))
        storage.append(_entries(6, 2, 2, "new"))
        storage.sync()
    with FileStorage(tmp_path) as reopened:
        assert _all(reopened) == _entries(2, 4, 1, "old") + _entries(6, 2, 2, "new")


def test_torn_tail_is_truncated_and_reported(tmp_path: Path) -> None:
    """A record cut short by a crash is detected, truncated and reported, never applied."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 4, 1))
        storage.sync()
    log = tmp_path / "log"
    log.write_bytes(log.read_bytes()[:-3])
    with FileStorage(tmp_path) as reopened:
        assert reopened.last_index() == 4
        assert len(reopened.recovery_warnings) == 1
        assert "torn" in reopened.recovery_warnings[0]
        reopened.append(_entries(5, 1, 2))
        reopened.sync()
    with FileStorage(tmp_path) as again:
        assert again.recovery_warnings == []
        assert _all(again) == _entries(2, 3, 1) + _entries(5, 1, 2)


def test_bit_flip_in_the_last_record_is_cut_as_a_torn_tail(tmp_path: Path) -> None:
    """A flipped bit in the last record fails its CRC32: that record goes, with a warning."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 6, 1))
        storage.sync()
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    data[-1] ^= 0x10
    log.write_bytes(bytes(data))
    with FileStorage(tmp_path) as reopened:
        assert reopened.last_index() == 6
        assert _all(reopened) == _entries(2, 5, 1)
        assert any("checksum" in w for w in reopened.recovery_warnings)


def test_bit_flip_inside_the_log_refuses_to_start(tmp_path: Path) -> None:
    """Damage followed by intact records is corruption, not a torn write: opening raises a
    clear StorageError instead of silently dropping acknowledged entries (issue: disk faults)."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 6, 1))
        storage.set_hard_state(HardState(Term(1), None, LogIndex(6)))
        storage.sync()
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    records, problem = decode_records(bytes(data))
    assert problem is None and len(records) == 6
    data[records[2][0] - 1] ^= 0x10  # the last payload byte of the second record
    log.write_bytes(bytes(data))
    with pytest.raises(StorageError, match="intact record follows"):
        FileStorage(tmp_path).close()


def test_commit_beyond_the_durable_log_is_clamped_and_reported(tmp_path: Path) -> None:
    """Scenario C5: a hard state pointing past the log end is clamped to the last index."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 3, 1))
        storage.set_hard_state(HardState(Term(1), None, LogIndex(4)))
        storage.sync()
    log = tmp_path / "log"
    log.write_bytes(log.read_bytes()[:-2])
    with FileStorage(tmp_path) as reopened:
        assert reopened.hard_state() == HardState(Term(1), None, LogIndex(3))
        assert len(reopened.recovery_warnings) == 2


def test_corrupt_hard_state_raises(tmp_path: Path) -> None:
    """A damaged hard state cannot be repaired safely (a vote could be forgotten): it raises."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.set_hard_state(HardState(Term(5), P(1), LogIndex(1)))
    path = tmp_path / "hardstate"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError):
        FileStorage(tmp_path)


def test_leftover_temp_file_is_ignored(tmp_path: Path) -> None:
    """A crash during an atomic write leaves NAME.tmp; the old NAME is still the truth."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.set_hard_state(HardState(Term(2), None, LogIndex(1)))
    (tmp_path / "hardstate.tmp").write_bytes(b"\x00\x00garbage")
    with FileStorage(tmp_path) as reopened:
        assert reopened.hard_state() == HardState(Term(2), None, LogIndex(1))
    assert not (tmp_path / "hardstate.tmp").exists()


def test_compaction_persists_snapshot_and_drops_prefix(tmp_path: Path) -> None:
    """compact() saves the snapshot atomically and rewrites the log without the prefix."""
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, 8, 1))
        snap = Snapshot(SnapshotMeta(LogIndex(6), Term(1), MEMBERS), b"state")
        storage.compact(LogIndex(6), snap)
        storage.sync()
    with FileStorage(tmp_path) as reopened:
        assert reopened.snapshot() == snap
        assert reopened.first_index() == 7
        assert _all(reopened) == _entries(7, 3, 1)
        assert reopened.term(LogIndex(6)) == 1


def test_installed_snapshot_keeps_matching_suffix_only(tmp_path: Path) -> None:
    """apply_snapshot keeps the log after the snapshot index only if the terms match there."""
    with FileStorage.bootstrap(tmp_path / "a", MEMBERS) as storage:
        storage.append(_entries(2, 8, 1))
        storage.apply_snapshot(Snapshot(SnapshotMeta(LogIndex(5), Term(1), MEMBERS), b""))
        assert _all(storage) == _entries(6, 4, 1)
    with FileStorage.bootstrap(tmp_path / "b", MEMBERS) as storage:
        storage.append(_entries(2, 8, 1))
        storage.apply_snapshot(Snapshot(SnapshotMeta(LogIndex(5), Term(2), MEMBERS), b""))
        assert _all(storage) == []
    with FileStorage(tmp_path / "b") as reopened:
        assert (reopened.first_index(), reopened.last_index()) == (6, 5)


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(st.integers(0, 15), st.integers(1, 4), st.booleans()), min_size=1, max_size=8
    )
)
def test_file_log_matches_list_oracle_across_reopens(
    writes: list[tuple[int, int, bool]],
) -> None:
    """Any sequence of appends (with truncation) and reopens reads back like a list."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        storage = FileStorage.bootstrap(tmp, MEMBERS)
        oracle: list[Entry] = []
        for term, (at, count, reopen) in enumerate(writes, start=1):
            first = min(at, len(oracle)) + 2
            new = _entries(first, count, term, f"t{term}-")
            storage.append(new)
            oracle = oracle[: first - 2] + new
            if reopen:
                storage.sync()
                storage.close()
                storage = FileStorage(tmp)
                assert storage.recovery_warnings == []
            assert _all(storage) == oracle
        storage.close()


def test_single_node_restarts_from_file_storage(tmp_path: Path) -> None:
    """A node driven over FileStorage recovers term, vote, log and commit after a restart."""

    def drive(node: RaftNode, storage: FileStorage) -> list[Entry]:
        applied: list[Entry] = []
        while node.has_ready():
            rd = node.ready()
            storage.append(rd.entries)
            if rd.hard_state is not None:
                storage.set_hard_state(rd.hard_state)
            if rd.must_sync:
                storage.sync()
            applied.extend(rd.committed_entries)
            node.advance(rd)
        return applied

    storage = FileStorage.bootstrap(tmp_path, Membership(frozenset({P(1)})))
    node = RaftNode(RaftConfig(id=P(1)), storage, random.Random(1))
    while node.role is not Role.LEADER:
        node.tick()
    drive(node, storage)
    node.propose(b"durable")
    applied = drive(node, storage)
    assert [e.data for e in applied if e.kind is EntryKind.NORMAL] == [b"durable"]
    term, commit = node.term, node.commit_index
    storage.close()
    with FileStorage(tmp_path) as reopened:
        again = RaftNode(RaftConfig(id=P(1)), reopened, random.Random(2))
        assert (again.term, again.voted_for, again.commit_index) == (term, P(1), commit)
        replayed = drive(again, reopened)
        assert [e.data for e in replayed if e.kind is EntryKind.NORMAL] == [b"durable"]

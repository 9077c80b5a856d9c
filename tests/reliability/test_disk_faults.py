"""Disk faults through both storage layers: a torn tail is cut with a logged warning, damage
inside the shard WAL stops the shard (issue 10 "Disk faults"; spec "Raft" durability).

What ``tests/raft/test_file_storage.py`` and ``tests/storage/test_wal.py`` already check is not
repeated here; these tests add the log record itself (what an operator sees) and the real-file
path of the shard store.
"""

import gc
import logging
import warnings
from pathlib import Path

import numpy as np
import pytest

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.points import UpsertPoints
from refimpl.raft import Entry, EntryKind, FileStorage, HardState, Membership
from refimpl.storage import ShardConfig, ShardStore, WalCorruptedError

MEMBERS = Membership(frozenset({PeerId(1), PeerId(2), PeerId(3)}), frozenset())
RAFT_LOGGER = "refimpl.raft.file_storage"


def _entries(first: int, count: int, term: int) -> list[Entry]:
    return [
        Entry(Term(term), LogIndex(i), EntryKind.NORMAL, f"op-{i}".encode())
        for i in range(first, first + count)
    ]


def _raft_log(tmp_path: Path, entries: int, commit: int) -> Path:
    with FileStorage.bootstrap(tmp_path, MEMBERS) as storage:
        storage.append(_entries(2, entries, 1))
        storage.set_hard_state(HardState(Term(1), None, LogIndex(commit)))
        storage.sync()
    return tmp_path / "log"


@pytest.mark.parametrize("cut_bytes", [1, 5, 11])
def test_raft_torn_tail_is_cut_with_a_logged_warning(
    tmp_path: Path, cut_bytes: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A record cut by a crash (beyond the commit index) is dropped and a WARNING names it."""
    log = _raft_log(tmp_path, entries=4, commit=3)
    log.write_bytes(log.read_bytes()[:-cut_bytes])
    with caplog.at_level(logging.WARNING, logger=RAFT_LOGGER), FileStorage(tmp_path) as reopened:
        assert reopened.last_index() == 4  # entries 2..4 stay, 5 was torn
        assert reopened.hard_state().commit == 3
    records = [r for r in caplog.records if r.name == RAFT_LOGGER]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert str(tmp_path) in records[0].getMessage()
    assert "torn record" in records[0].getMessage()
    assert "dropped everything after entry 4" in records[0].getMessage()


def test_raft_flipped_bit_in_the_tail_is_caught_by_the_checksum(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bit flip in the last (uncommitted) record fails its CRC: cut, with a warning."""
    log = _raft_log(tmp_path, entries=4, commit=4)
    data = bytearray(log.read_bytes())
    data[-2] ^= 0x40
    log.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger=RAFT_LOGGER), FileStorage(tmp_path) as reopened:
        assert reopened.last_index() == 4
        kept = [e.data for e in reopened.entries(LogIndex(2), LogIndex(5))]
        assert kept == [b"op-2", b"op-3", b"op-4"]
    assert "checksum mismatch" in caplog.text


def _upsert(first: int) -> UpsertPoints:
    ids = (first, first + 1)
    vectors = np.full((2, 3), float(first), dtype=np.float32)
    return UpsertPoints(ids, vectors, ({"n": first}, {"n": first + 1}))


def test_shard_wal_damage_inside_the_log_stops_the_shard_on_disk(tmp_path: Path) -> None:
    """A flipped byte in an acknowledged record followed by intact ones: opening refuses with a
    clear error, and nothing is served from the damaged log (no partial shard)."""
    store = ShardStore.open(tmp_path / "s", ShardConfig(dim=3))
    for first in (0, 10, 20):
        store.apply(_upsert(first), wait=True)
    wal_path = tmp_path / "s" / "wal.log"
    data = bytearray(wal_path.read_bytes())
    data[len(data) // 3] ^= 0x08  # inside the first records, well before the tail
    wal_path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        # Known leak, reported: ShardStore.open does not close the WAL file when it refuses.
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(WalCorruptedError, match="intact record follows"):
            ShardStore.open(tmp_path / "s", ShardConfig(dim=3))
        gc.collect()
    store.close()


def test_shard_wal_torn_tail_on_disk_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real-file shard store logs the torn tail it cuts (what an operator sees)."""
    store = ShardStore.open(tmp_path / "s", ShardConfig(dim=3))
    store.apply(_upsert(0), wait=True)
    store.apply(_upsert(10), wait=True)
    wal_path = tmp_path / "s" / "wal.log"
    wal_path.write_bytes(wal_path.read_bytes()[:-9])
    with caplog.at_level(logging.WARNING, logger="refimpl.storage.wal"):
        again = ShardStore.open(tmp_path / "s", ShardConfig(dim=3))
    assert sorted(again.matching_ids(None)) == [0, 1]
    assert [r.levelno for r in caplog.records if r.name == "refimpl.storage.wal"] == [
        logging.WARNING
    ]
    assert "torn tail" in caplog.text
    again.close()
    store.close()

"""The shard WAL survives crashes: acknowledged records are recovered, a torn tail is cut
with a warning, and damage inside the log stops the shard (issue 6 "Shard storage", issue 10
"Disk faults")."""

import logging
import random
from pathlib import Path

import numpy as np
import pytest

from refimpl.points import DeletePoints, UpsertPoints
from refimpl.storage import (
    MemoryMedium,
    ShardConfig,
    ShardStore,
    Wal,
    WalCorruptedError,
    WalRecord,
    encode_record,
)
from refimpl.storage.media import MemoryLogFile

CONFIG = ShardConfig(dim=3)


def _upsert(first: int, count: int = 2) -> UpsertPoints:
    ids = tuple(range(first, first + count))
    vectors = np.arange(count * 3, dtype=np.float32).reshape(count, 3) + first
    return UpsertPoints(ids, vectors, tuple({"n": i} for i in ids))


def _log_of(records: list[WalRecord]) -> tuple[bytes, list[int]]:
    """The bytes of a log holding ``records`` and the offset where each record starts."""
    data, starts = b"", []
    for record in records:
        starts.append(len(data))
        data += encode_record(record)
    return data, starts


RECORDS = [WalRecord(1, _upsert(0)), WalRecord(2, DeletePoints((1,))), WalRecord(3, _upsert(5))]


def test_records_round_trip() -> None:
    """What is appended is what is read back, ids, vectors and payloads exactly."""
    data, _ = _log_of(RECORDS)
    wal = Wal(MemoryLogFile(data))
    assert [r.op_num for r in wal.records] == [1, 2, 3]
    first = wal.records[0].op
    assert isinstance(first, UpsertPoints)
    assert first.ids == (0, 1) and first.payloads == ({"n": 0}, {"n": 1})
    assert np.array_equal(first.vectors, _upsert(0).vectors)
    assert wal.records[1].op == DeletePoints((1,))


@pytest.mark.parametrize("cut", range(1, 40, 3))
def test_torn_tail_is_truncated_with_a_warning(cut: int, caplog: pytest.LogCaptureFixture) -> None:
    """A last record cut anywhere is dropped, the earlier records stay, a warning is logged."""
    data, starts = _log_of(RECORDS)
    log = MemoryLogFile(data[: len(data) - cut])
    with caplog.at_level(logging.WARNING, logger="refimpl.storage.wal"):
        wal = Wal(log)
    assert [r.op_num for r in wal.records] == [1, 2]
    assert log.size() == starts[2]
    assert "torn tail" in caplog.text


def test_bit_flip_inside_the_log_stops_the_shard() -> None:
    """A damaged record followed by intact ones is corruption, not a torn write: refuse."""
    data, starts = _log_of(RECORDS)
    for offset in (starts[0] + 5, starts[0] + 30, starts[1] + 14):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        with pytest.raises(WalCorruptedError, match="intact record follows"):
            Wal(MemoryLogFile(bytes(damaged)))


def test_bit_flip_in_the_last_record_counts_as_a_torn_tail() -> None:
    """Damage in the final record cannot be told from a torn write: it is cut (known limit)."""
    data, starts = _log_of(RECORDS)
    damaged = bytearray(data)
    damaged[starts[2] + 20] ^= 0x01
    wal = Wal(MemoryLogFile(bytes(damaged)))
    assert [r.op_num for r in wal.records] == [1, 2]


def test_crash_without_close_recovers_every_acknowledged_write(tmp_path: Path) -> None:
    """Write with wait=true, never close, reopen from the files: every point is there."""
    store = ShardStore.open(tmp_path / "s", CONFIG)
    for i in range(20):
        store.apply(_upsert(3 * i, 3), wait=True)
    store.apply(DeletePoints((0, 1)), wait=True)
    # No close(): the open handle is simply abandoned, as after SIGKILL.
    again = ShardStore.open(tmp_path / "s", CONFIG)
    assert len(again) == 58 and again.last_op_num == 21
    assert 0 not in again and 59 in again
    assert again.retrieve([5])[0].payload == {"n": 5}
    again.close()
    store.close()  # only now, so the files were reopened exactly as a crash left them


def test_disk_torn_tail_keeps_the_acknowledged_prefix(tmp_path: Path) -> None:
    """Bytes of an unacknowledged last write cut off on disk are dropped; the rest recovers."""
    store = ShardStore.open(tmp_path / "s", CONFIG)
    store.apply(_upsert(0), wait=True)
    store.apply(_upsert(10), wait=True)
    wal_path = tmp_path / "s" / "wal.log"
    size = wal_path.stat().st_size
    with wal_path.open("r+b") as handle:
        handle.truncate(size - 7)
    again = ShardStore.open(tmp_path / "s", CONFIG)
    assert sorted(again.matching_ids(None)) == [0, 1] and again.last_op_num == 1
    assert wal_path.stat().st_size < size - 7  # the torn record was cut away
    again.close()
    store.close()


@pytest.mark.parametrize("seed", range(20))
def test_memory_crash_keeps_synced_and_loses_at_most_unsynced(seed: int) -> None:
    """With a torn crash, every wait=true write survives; later ones survive as a prefix."""
    rng = random.Random(seed)
    medium = MemoryMedium()
    store = ShardStore.in_memory(CONFIG, medium)
    acked = 0
    for op in range(1, 31):
        wait = rng.random() < 0.5
        store.apply(_upsert(2 * op), wait=wait)
        if wait:
            acked = op
    medium.crash(rng)
    again = ShardStore.in_memory(CONFIG, medium)
    assert again.last_op_num >= acked
    expected = {p for op in range(1, again.last_op_num + 1) for p in (2 * op, 2 * op + 1)}
    assert set(again.matching_ids(None)) == expected

"""The write-ahead log of one shard: checksummed, length-prefixed records of operations.

Rules:

* Every update is appended to the log **before** it changes the shard; a ``wait=true`` update
  is acknowledged only after the log is fsynced. Each record carries the shard's operation
  number (Qdrant's ``operation_id``), strictly increasing through the log.
* Frame: ``MAGIC (4 bytes) | length (u32) | crc32 (u32) | body``, little-endian, with the CRC
  over the length bytes and the body. Body: ``op_num (u64) | header length (u32) | header
  (JSON: kind, ids, payloads) | vectors (float32, row-major)``.
* On open the log is read front to back. A record that is cut short or fails its checksum is
  either a **torn tail** (no valid record follows it: the last write was interrupted by a
  crash) — the log is truncated there and a warning logged — or **corruption inside the
  log** (a valid record follows), which raises :class:`WalCorruptedError`: the shard stops
  rather than serve data with a hole in it.
* The log is compacted after a checkpoint: records up to a chosen operation number are
  dropped, the most recent ones kept, so a lagging replica can still be sent the operations it
  missed (:meth:`Wal.ops_since`).

Theory of operation: a torn write can only damage the end of an append-only file, so "is there
any valid frame after the bad one?" tells a crash from corruption. The search looks for the
magic bytes and checks each candidate's CRC; it only runs when something is already wrong.
Known limit: a bit flip in the very last record looks like a torn tail and that record is
dropped (with a warning); a replica then gets it back from its peers.
"""

import json
import logging
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from refimpl.points import BadRequest, DeletePoints, UpsertPoints, id_from_json, id_to_json
from refimpl.storage.errors import WalCorruptedError
from refimpl.storage.media import LogFile

logger = logging.getLogger(__name__)

MAGIC = b"\xabWAL"
_FRAME = struct.Struct("<4sII")
_BODY = struct.Struct("<QI")
RECORD_BYTES_MAX = 1 << 30
"""A frame claiming to be longer than this is damaged (no request is that large)."""


@dataclass(frozen=True, slots=True, eq=False)
class WalRecord:
    """One logged operation with its operation number."""

    op_num: int
    op: UpsertPoints | DeletePoints


def encode_record(record: WalRecord) -> bytes:
    """The framed bytes of ``record``; raises :class:`BadRequest` if a payload is not JSON."""
    op = record.op
    header: dict[str, object] = {"ids": [id_to_json(p) for p in op.ids]}
    vectors = b""
    if isinstance(op, UpsertPoints):
        header.update(kind="upsert", dim=int(op.vectors.shape[1]), payloads=list(op.payloads))
        vectors = np.ascontiguousarray(op.vectors, dtype="<f4").tobytes()
    else:
        header["kind"] = "delete"
    try:
        text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as error:
        raise BadRequest(f"Wrong input: payload is not valid JSON ({error})") from error
    body = _BODY.pack(record.op_num, len(text)) + text + vectors
    length = struct.pack("<I", len(body))
    return _FRAME.pack(MAGIC, len(body), zlib.crc32(length + body)) + body


def _decode_body(body: bytes) -> WalRecord:
    op_num, header_len = _BODY.unpack_from(body)
    header = json.loads(body[_BODY.size : _BODY.size + header_len])
    ids = tuple(id_from_json(p) for p in header["ids"])
    if header["kind"] == "delete":
        return WalRecord(op_num, DeletePoints(ids))
    raw = body[_BODY.size + header_len :]
    vectors = np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(len(ids), header["dim"])
    return WalRecord(op_num, UpsertPoints(ids, vectors, tuple(header["payloads"])))


def read_frame(data: bytes, pos: int) -> tuple[WalRecord, int] | None:
    """The record at ``pos`` and the position after it, or ``None`` if it is not intact."""
    if pos + _FRAME.size > len(data):
        return None
    magic, length, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + length
    if magic != MAGIC or length > RECORD_BYTES_MAX or end > len(data):
        return None
    body = data[pos + _FRAME.size : end]
    if zlib.crc32(struct.pack("<I", length) + body) != crc:
        return None
    try:
        return _decode_body(body), end
    except (ValueError, KeyError, TypeError, struct.error, BadRequest):
        return None  # a matching CRC over garbage: treat as damage like any other


def _intact_frame_after(data: bytes, pos: int) -> int | None:
    """Offset of the first intact frame starting after ``pos``, if any."""
    at = data.find(MAGIC, pos + 1)
    while at != -1:
        if read_frame(data, at) is not None:
            return at
        at = data.find(MAGIC, at + 1)
    return None


def scan(data: bytes, where: str = "WAL") -> tuple[list[WalRecord], int]:
    """Every intact record of ``data`` and the length of the intact prefix.

    Raises :class:`WalCorruptedError` when a damaged record has intact ones after it, or
    when operation numbers do not increase."""
    records: list[WalRecord] = []
    pos = 0
    while pos < len(data):
        found = read_frame(data, pos)
        if found is None:
            later = _intact_frame_after(data, pos)
            if later is not None:
                raise WalCorruptedError(
                    f"{where}: the record at byte {pos} is damaged (bad checksum or length) "
                    f"but an intact record follows at byte {later}: the log is corrupt inside, "
                    "not torn at its end. Refusing to start this shard; restore it from a "
                    "replica or a snapshot."
                )
            break
        record, pos = found
        if records and record.op_num <= records[-1].op_num:
            raise WalCorruptedError(
                f"{where}: operation {record.op_num} follows operation {records[-1].op_num}; "
                "operation numbers must increase"
            )
        records.append(record)
    return records, pos


def _frame_sizes(data: bytes, count: int) -> list[int]:
    """Byte length of each of the first ``count`` frames of ``data`` (already validated)."""
    sizes, pos = [], 0
    for _ in range(count):
        length = _FRAME.unpack_from(data, pos)[1]
        sizes.append(_FRAME.size + length)
        pos += _FRAME.size + length
    return sizes


class Wal:
    """The log of one shard, with the intact records kept in memory for replay and deltas."""

    def __init__(self, log: LogFile, where: str = "WAL") -> None:
        self.log = log
        data = log.read()
        self.records, intact = scan(data, where)
        self.sizes = _frame_sizes(data, len(self.records))
        if intact < len(data):
            logger.warning(
                "%s: torn tail of %d bytes after byte %d (an interrupted write); truncating",
                where, len(data) - intact, intact,
            )  # fmt: skip
            log.truncate(intact)
        self.torn_bytes = len(data) - intact
        self.size_bytes = intact
        self.unsynced = False
        # Operations at or below this number may have been dropped by compaction.
        self.dropped_through = self.records[0].op_num - 1 if self.records else 0

    @property
    def last_op_num(self) -> int:
        """The newest logged operation number (0 for an empty log)."""
        return self.records[-1].op_num if self.records else self.dropped_through

    def append(self, record: WalRecord, encoded: bytes, *, sync: bool) -> None:
        """Append an encoded record (see :func:`encode_record`); fsync if ``sync``."""
        assert record.op_num > self.last_op_num, "operation numbers increase"
        self.log.append(encoded)
        self.records.append(record)
        self.sizes.append(len(encoded))
        self.size_bytes += len(encoded)
        self.unsynced = True
        if sync:
            self.sync()

    def sync(self) -> None:
        """fsync everything appended so far."""
        if self.unsynced:
            self.log.sync()
            self.unsynced = False

    def compact(self, drop_through: int) -> None:
        """Drop the records with ``op_num <= drop_through`` (atomic rewrite of the log)."""
        first = next((i for i, r in enumerate(self.records) if r.op_num > drop_through), None)
        first = len(self.records) if first is None else first
        if first == 0:
            return
        kept = self.records[first:]
        self.log.replace(b"".join(encode_record(r) for r in kept))
        self.records, self.sizes = kept, self.sizes[first:]
        self.size_bytes = sum(self.sizes)
        self.unsynced = False
        self.dropped_through = max(self.dropped_through, drop_through)

    def ops_since(self, op_num: int) -> Sequence[WalRecord] | None:
        """The records after ``op_num``, or ``None`` if some were compacted away (the caller
        then needs a full transfer instead of a delta)."""
        if op_num < self.dropped_through:
            return None
        return [r for r in self.records if r.op_num > op_num]

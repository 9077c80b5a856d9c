"""A directory-backed :class:`~refimpl.raft.storage.Storage`: the only file-touching code in
:mod:`refimpl.raft`.

Layout of the directory::

    hardstate   one record: term, voted_for, commit      (replaced atomically)
    snapshot    one record: metadata + membership + data (replaced atomically)
    log         a sequence of records, one per entry      (append-only, truncatable)

Record format (every file): ``length (u32, big endian) | crc32(payload) (u32) | payload``.

Rules:

* "atomically" means: write ``NAME.tmp``, fsync it, rename over ``NAME``, fsync the
  directory. A crash leaves either the old or the new file, never a mix.
* the log is append-only; ``append`` starting inside the log truncates the file at
  the first replaced record (the core only does so after proving a conflict).
  Appends reach the disk at :meth:`FileStorage.sync` (the driver's durability point).
* on open, the log is read record by record; the first record that is short (a
  torn write), fails its CRC (a bit flip) or breaks index continuity ends the log:
  the file is truncated there and the loss is reported in ``recovery_warnings``
  and via :mod:`logging` -- never silently applied. A corrupt hard state or
  snapshot cannot be repaired safely and raises :class:`StorageError`.
* entries covered by the snapshot are dropped on open (a crash between writing a
  snapshot and rewriting the log leaves them behind).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft.messages import (
    EMPTY_MEMBERSHIP,
    Entry,
    EntryKind,
    HardState,
    Membership,
    Snapshot,
    SnapshotMeta,
)
from refimpl.raft.storage import (
    GENESIS_INDEX,
    GENESIS_TERM,
    LogUnavailableError,
    StorageError,
    genesis_snapshot,
)

_LOG = logging.getLogger(__name__)
_HEADER = struct.Struct(">II")  # payload length, crc32(payload)
_ENTRY = struct.Struct(">QQB")  # term, index, kind
_HARD_STATE = struct.Struct(">QQQ")  # term, voted_for (0 = none), commit
_SNAPSHOT = struct.Struct(">QQII")  # last index, last term, #voters, #learners
_PEER = struct.Struct(">Q")
MAX_RECORD_BYTES = 1 << 30
"""A length field above this is treated as corruption, not as a request for 1 GiB+."""


def encode_record(payload: bytes) -> bytes:
    """Frame ``payload`` with its length and CRC32."""
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[tuple[int, bytes]], str | None]:
    """Split ``data`` into ``(offset, payload)`` records; stop at the first bad one.

    Returns the good records and, if the data did not end cleanly, why.
    """
    records: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            return records, f"torn record header at byte {offset}"
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            return records, f"torn record at byte {offset} (length {length})"
        payload = data[start : start + length]
        if zlib.crc32(payload) != crc:
            if _intact_record_at(data, start + length):
                raise StorageError(
                    f"log corrupted: checksum mismatch in record at byte {offset} and an intact "
                    "record follows, so this is damage inside the log, not a torn tail; "
                    "refusing to start rather than serve a log with a hole (restore this "
                    "peer's storage, or remove the peer and let it rejoin empty)"
                )
            return records, f"checksum mismatch in record at byte {offset}"
        records.append((offset, payload))
        offset = start + length
    return records, None


def _intact_record_at(data: bytes, offset: int) -> bool:
    """True when a complete record with a matching CRC starts at ``offset``."""
    if len(data) - offset < _HEADER.size:
        return False
    length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if length > MAX_RECORD_BYTES or start + length > len(data):
        return False
    return bool(zlib.crc32(data[start : start + length]) == crc)


def encode_entry(entry: Entry) -> bytes:
    return _ENTRY.pack(entry.term, entry.index, entry.kind.value) + entry.data


def decode_entry(payload: bytes) -> Entry:
    term, index, kind = _ENTRY.unpack_from(payload)
    return Entry(Term(term), LogIndex(index), EntryKind(kind), bytes(payload[_ENTRY.size :]))


def encode_hard_state(hs: HardState) -> bytes:
    return _HARD_STATE.pack(hs.term, hs.voted_for or 0, hs.commit)


def decode_hard_state(payload: bytes) -> HardState:
    term, voted_for, commit = _HARD_STATE.unpack(payload)
    return HardState(Term(term), PeerId(voted_for) if voted_for else None, LogIndex(commit))


def encode_snapshot(snap: Snapshot) -> bytes:
    meta = snap.meta
    voters = sorted(meta.membership.voters)
    learners = sorted(meta.membership.learners)
    head = _SNAPSHOT.pack(meta.last_index, meta.last_term, len(voters), len(learners))
    peers = b"".join(_PEER.pack(p) for p in [*voters, *learners])
    return head + peers + snap.data


def decode_snapshot(payload: bytes) -> Snapshot:
    last_index, last_term, n_voters, n_learners = _SNAPSHOT.unpack_from(payload)
    offset = _SNAPSHOT.size
    peers = [
        PeerId(_PEER.unpack_from(payload, offset + i * _PEER.size)[0])
        for i in range(n_voters + n_learners)
    ]
    offset += (n_voters + n_learners) * _PEER.size
    membership = Membership(frozenset(peers[:n_voters]), frozenset(peers[n_voters:]))
    meta = SnapshotMeta(LogIndex(last_index), Term(last_term), membership)
    return Snapshot(meta, bytes(payload[offset:]))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(directory: Path, name: str, content: bytes) -> None:
    """Replace ``directory/name`` by ``content``: temp file, fsync, rename, fsync dir."""
    tmp = directory / f"{name}.tmp"
    with open(tmp, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / name)
    _fsync_dir(directory)


class FileStorage:
    """Raft storage in a directory; see the module docstring for the format and rules."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self.recovery_warnings: list[str] = []
        """What opening had to repair (torn or corrupt log tail, leftovers)."""
        self._handle: BinaryIO | None = None
        for leftover in sorted(self._dir.glob("*.tmp")):
            leftover.unlink()  # an interrupted atomic write: the old file is still valid
        self._hard_state = self._load_hard_state()
        self._snapshot = self._load_snapshot()
        self._entries: list[Entry] = []
        self._offsets: list[int] = []  # byte offset of each entry's record in the log file
        self._load_log()
        self._open_log()
        if self._hard_state.commit > self.last_index():
            # The hard state reached the disk but the log tail it covers did not (or was torn):
            # only what is in the log can be committed here; the leader will resend the rest.
            hs = self._hard_state
            self._warn(f"commit {hs.commit} beyond last durable index {self.last_index()}: clamped")
            self._hard_state = HardState(hs.term, hs.voted_for, self.last_index())

    # --------------------------------------------------------------- opening

    @classmethod
    def bootstrap(cls, directory: str | os.PathLike[str], membership: Membership) -> FileStorage:
        """Create the storage of a new cluster member holding the genesis snapshot."""
        storage = cls(directory)
        if storage._snapshot is not None or storage._entries or storage._hard_state.term:
            storage.close()
            raise StorageError(f"{directory} already holds Raft state")
        storage.apply_snapshot(genesis_snapshot(membership))
        storage.set_hard_state(HardState(GENESIS_TERM, None, GENESIS_INDEX))
        storage.sync()
        return storage

    def _warn(self, message: str) -> None:
        self.recovery_warnings.append(message)
        _LOG.warning("%s: %s", self._dir, message)

    def _read_single_record(self, name: str) -> bytes | None:
        path = self._dir / name
        if not path.exists():
            return None
        records, problem = decode_records(path.read_bytes())
        if problem is not None or len(records) != 1:
            raise StorageError(f"{path} is corrupt ({problem or 'wrong record count'})")
        return records[0][1]

    def _load_hard_state(self) -> HardState:
        payload = self._read_single_record("hardstate")
        if payload is None:
            return HardState(Term(0), None, LogIndex(0))
        return decode_hard_state(payload)

    def _load_snapshot(self) -> Snapshot | None:
        payload = self._read_single_record("snapshot")
        return decode_snapshot(payload) if payload is not None else None

    def _load_log(self) -> None:
        path = self._dir / "log"
        if not path.exists():
            path.touch()
            _fsync_dir(self._dir)
        data = path.read_bytes()
        records, problem = decode_records(data)
        snap_index = self._snapshot_index()
        rewrite = False
        for offset, payload in records:
            entry = decode_entry(payload)
            if entry.index <= snap_index:
                # Left behind by a compaction or snapshot install that crashed before the
                # log rewrite. If the snapshot replaced a divergent log, nothing after it fits.
                rewrite = True
                snap = self._snapshot
                if (
                    snap is not None
                    and entry.index == snap_index
                    and entry.term != snap.meta.last_term
                ):
                    break
                continue
            expected = self._entries[-1].index + 1 if self._entries else snap_index + 1
            if entry.index != expected:
                problem = f"entry {entry.index} at byte {offset} where {expected} was expected"
                break
            self._entries.append(entry)
            self._offsets.append(offset)
        if problem is not None:
            self._warn(
                f"log truncated: {problem}; dropped everything after entry {self.last_index()}"
            )
            rewrite = True
        if rewrite:
            self._rewrite_log_file(self._entries)

    # --------------------------------------------------------------- reading

    def _snapshot_index(self) -> LogIndex:
        return self._snapshot.meta.last_index if self._snapshot is not None else LogIndex(0)

    def initial_state(self) -> tuple[HardState, Membership]:
        if self._snapshot is None:
            return self._hard_state, EMPTY_MEMBERSHIP
        return self._hard_state, self._snapshot.meta.membership

    def hard_state(self) -> HardState:
        """The last hard state written."""
        return self._hard_state

    def first_index(self) -> LogIndex:
        return LogIndex(self._snapshot_index() + 1)

    def last_index(self) -> LogIndex:
        return self._entries[-1].index if self._entries else self._snapshot_index()

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def term(self, index: LogIndex) -> Term:
        snap_index = self._snapshot_index()
        if index == snap_index:
            return self._snapshot.meta.last_term if self._snapshot is not None else Term(0)
        if index < snap_index or index > self.last_index():
            raise LogUnavailableError(f"term({index}) outside [{snap_index}, {self.last_index()}]")
        return self._entries[index - snap_index - 1].term

    def entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        first = self.first_index()
        if lo > hi or lo < first or hi > self.last_index() + 1:
            raise LogUnavailableError(
                f"entries[{lo}, {hi}) outside [{first}, {self.last_index() + 1})"
            )
        return self._entries[lo - first : hi - first]

    # --------------------------------------------------------------- writing

    def _open_log(self) -> None:
        if self._handle is not None:
            self._handle.close()
        # Unbuffered: every write reaches the OS at once, so fsync in sync() covers it.
        self._handle = open(self._dir / "log", "r+b", buffering=0)  # noqa: SIM115
        self._handle.seek(0, os.SEEK_END)

    def _log_file(self) -> BinaryIO:
        if self._handle is None:
            raise StorageError(f"{self._dir}: storage is closed")
        return self._handle

    def _rewrite_log_file(self, entries: list[Entry]) -> None:
        """Replace the log file atomically by exactly ``entries``."""
        chunks: list[bytes] = []
        offsets: list[int] = []
        position = 0
        for entry in entries:
            record = encode_record(encode_entry(entry))
            offsets.append(position)
            chunks.append(record)
            position += len(record)
        write_atomically(self._dir, "log", b"".join(chunks))
        self._entries = list(entries)
        self._offsets = offsets
        if self._handle is not None:
            self._open_log()

    def append(self, entries: Sequence[Entry]) -> None:
        snap_index = self._snapshot_index()
        fresh = [e for e in entries if e.index > snap_index]
        if not fresh:
            return
        first = fresh[0].index
        if first > self.last_index() + 1:
            raise StorageError(f"append at {first} leaves a gap after {self.last_index()}")
        f = self._log_file()
        if first <= self.last_index():
            cut = first - snap_index - 1
            f.truncate(self._offsets[cut])  # drop the conflicting suffix from the file
            del self._entries[cut:]
            del self._offsets[cut:]
        f.seek(0, os.SEEK_END)
        position = f.tell()
        chunks: list[bytes] = []
        for entry in fresh:
            assert entry.index == self.last_index() + 1, "appended entries must be contiguous"
            record = encode_record(encode_entry(entry))
            self._entries.append(entry)
            self._offsets.append(position)
            chunks.append(record)
            position += len(record)
        f.write(b"".join(chunks))

    def set_hard_state(self, hs: HardState) -> None:
        if hs == self._hard_state:
            return
        write_atomically(self._dir, "hardstate", encode_record(encode_hard_state(hs)))
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        index = snap.meta.last_index
        if self._snapshot is not None and index <= self._snapshot_index():
            return  # older than what we have
        keep: list[Entry] = []
        if (
            self.first_index() <= index <= self.last_index()
            and self.term(index) == snap.meta.last_term
        ):
            keep = self._entries[index - self._snapshot_index() :]
        write_atomically(self._dir, "snapshot", encode_record(encode_snapshot(snap)))
        self._snapshot = snap
        self._rewrite_log_file(keep)

    def compact(self, index: LogIndex, snapshot: Snapshot) -> None:
        if snapshot.meta.last_index != index:
            raise StorageError(f"snapshot ends at {snapshot.meta.last_index}, not {index}")
        if index <= self._snapshot_index():
            return
        if index > self.last_index():
            raise StorageError(f"cannot compact to {index} past last index {self.last_index()}")
        keep = self._entries[index - self._snapshot_index() :]
        write_atomically(self._dir, "snapshot", encode_record(encode_snapshot(snapshot)))
        self._snapshot = snapshot
        self._rewrite_log_file(keep)

    def sync(self) -> None:
        os.fsync(self._log_file().fileno())

    def close(self) -> None:
        """Close the log file (idempotent)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileStorage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

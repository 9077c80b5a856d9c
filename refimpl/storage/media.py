"""Where a shard's bytes live: on disk, or in memory for tests and the simulator.

Rules:

* A shard owns two things: an append-only **log** (the WAL) and a **checkpoint**, a small set
  of named files replaced as a whole.
* Log: :meth:`~LogFile.append` makes bytes visible; only :meth:`~LogFile.sync` (fsync) makes
  them durable. :meth:`~LogFile.replace` swaps the whole content atomically (write a temporary
  file, fsync it, rename it over the log, fsync the directory).
* Checkpoint: :meth:`~ShardMedium.write_checkpoint` is atomic and durable on return: after a
  crash the old set or the new set is there, never a mix (new directory, fsync, rename the
  old away, rename the new in, fsync the parent; on open a half-finished swap is undone).
* Replacing everything (a snapshot restored over a live shard) is atomic too:
  :meth:`~ShardMedium.replace_all` leaves, after any crash, either the old checkpoint and log
  or the new checkpoint with an empty log. On disk a marker file, written once the new set is
  complete, says the old log is void; whoever opens the directory next finishes the job.
* :class:`MemoryMedium` models a disk with a write-back cache: :meth:`MemoryMedium.crash`
  keeps only what was synced, optionally plus a prefix of the unsynced tail (a *torn* write).

Theory of operation: the shard store (:mod:`.shard`) talks only to these two small
interfaces, so the same store runs on real files and in the simulator.
"""

import os
import random
import shutil
from pathlib import Path
from typing import Protocol

Files = dict[str, bytes]


class LogFile(Protocol):
    """An append-only byte log with explicit durability."""

    def read(self) -> bytes:
        """The whole log as it is visible now."""
        ...

    def append(self, data: bytes) -> None:
        """Add ``data`` at the end (visible at once, durable after :meth:`sync`)."""
        ...

    def sync(self) -> None:
        """Make everything appended so far durable (fsync)."""
        ...

    def truncate(self, size: int) -> None:
        """Cut the log to ``size`` bytes, durably."""
        ...

    def replace(self, data: bytes) -> None:
        """Atomically and durably replace the whole log by ``data``."""
        ...

    def size(self) -> int:
        """Current length in bytes."""
        ...


class ShardMedium(Protocol):
    """The log plus the checkpoint files of one shard."""

    @property
    def log(self) -> LogFile:
        """The WAL."""
        ...

    def write_checkpoint(self, files: Files) -> None:
        """Atomically and durably replace the checkpoint by ``files``."""
        ...

    def read_checkpoint(self) -> Files | None:
        """The checkpoint files, or ``None`` if no checkpoint was ever written."""
        ...

    def replace_all(self, files: Files) -> None:
        """Atomically and durably make the checkpoint ``files`` and the log empty."""
        ...

    def destroy(self) -> None:
        """Remove everything this shard stored."""
        ...


RESTORE_MARKER = "restore.pending"
"""A file in a shard directory: the complete ``checkpoint.next/`` replaces the checkpoint and
the log is void (:meth:`DiskMedium.replace_all` was interrupted)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class DiskLogFile:
    """The WAL as one file, kept open for appending."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch(exist_ok=True)
        self._handle = path.open("ab")

    def read(self) -> bytes:
        """Read the file from the start."""
        self._handle.flush()
        return self.path.read_bytes()

    def append(self, data: bytes) -> None:
        """Write through Python's buffer to the OS (visible to readers, not yet durable)."""
        self._handle.write(data)
        self._handle.flush()

    def sync(self) -> None:
        """fsync the file."""
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def truncate(self, size: int) -> None:
        """Cut the file and fsync it."""
        self._handle.flush()
        self._handle.truncate(size)
        os.fsync(self._handle.fileno())

    def replace(self, data: bytes) -> None:
        """Write a temporary file, rename it over the log, fsync the directory."""
        partial = self.path.with_name(self.path.name + ".partial")
        _write_durably(partial, data)
        self._handle.close()
        partial.replace(self.path)
        _fsync_dir(self.path.parent)
        self._handle = self.path.open("ab")

    def size(self) -> int:
        """Length of the file."""
        self._handle.flush()
        return self.path.stat().st_size

    def close(self) -> None:
        """Close the handle (data already appended stays in the OS cache)."""
        self._handle.close()


class DiskMedium:
    """A shard directory: ``wal.log`` and ``checkpoint/`` (swapped via ``checkpoint.next/``
    and ``checkpoint.old/``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        if created:  # make the new directory's entry durable before anything is acknowledged
            _fsync_dir(directory.parent)
        self._log = DiskLogFile(directory / "wal.log")
        if (directory / RESTORE_MARKER).exists():
            self._complete_replacement()
        self._finish_swap()
        if created:
            _fsync_dir(directory)

    @property
    def log(self) -> DiskLogFile:
        """The WAL file."""
        return self._log

    def _dirs(self) -> tuple[Path, Path, Path]:
        d = self.directory
        return d / "checkpoint", d / "checkpoint.next", d / "checkpoint.old"

    def _finish_swap(self) -> None:
        """Undo or complete a checkpoint swap a crash interrupted."""
        current, new, old = self._dirs()
        if new.exists() and not current.exists() and old.exists():
            new.rename(current)  # ``new`` was complete before ``old`` was moved aside
        if new.exists():
            shutil.rmtree(new)  # an unfinished ``new``: the current checkpoint stands
        if old.exists():
            shutil.rmtree(old)
        _fsync_dir(self.directory)

    def _write_next(self, files: Files) -> None:
        """``files`` as a complete, durable ``checkpoint.next/`` (not yet swapped in)."""
        new = self._dirs()[1]
        if new.exists():
            shutil.rmtree(new)
        new.mkdir()
        for name, data in files.items():
            _write_durably(new / name, data)
        _fsync_dir(new)

    def write_checkpoint(self, files: Files) -> None:
        """Write the new set beside the old one, then swap them by renames."""
        self._write_next(files)
        current, new, old = self._dirs()
        if current.exists():
            current.rename(old)
        new.rename(current)
        _fsync_dir(self.directory)
        if old.exists():
            shutil.rmtree(old)

    def replace_all(self, files: Files) -> None:
        """Write the new set beside the old one, mark it as the winner, then swap it in and
        empty the log (a crash after the mark is finished by the next open)."""
        self._write_next(files)
        _write_durably(self.directory / RESTORE_MARKER, b"")
        _fsync_dir(self.directory)
        self._complete_replacement()

    def _complete_replacement(self) -> None:
        """The marked ``checkpoint.next/`` in, the log emptied, the marker gone; each step may
        already be done (a crash in here is finished by the next open)."""
        current, new, old = self._dirs()
        if new.exists():
            if current.exists():
                if old.exists():
                    shutil.rmtree(old)
                current.rename(old)
            new.rename(current)
            _fsync_dir(self.directory)
        self._log.replace(b"")
        (self.directory / RESTORE_MARKER).unlink()
        _fsync_dir(self.directory)
        if old.exists():
            shutil.rmtree(old)

    def read_checkpoint(self) -> Files | None:
        """Read every file of ``checkpoint/``."""
        current = self._dirs()[0]
        if not current.exists():
            return None
        return {p.name: p.read_bytes() for p in sorted(current.iterdir()) if p.is_file()}

    def destroy(self) -> None:
        """Close the log and remove the directory."""
        self._log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self) -> None:
        """Close the log file handle."""
        self._log.close()


class MemoryLogFile:
    """A log in memory that remembers which bytes a crash would keep."""

    def __init__(self, durable: bytes = b"") -> None:
        self.durable = bytearray(durable)
        self.pending = bytearray()

    def read(self) -> bytes:
        """Durable bytes followed by the unsynced ones."""
        return bytes(self.durable + self.pending)

    def append(self, data: bytes) -> None:
        """Buffer ``data`` until the next sync."""
        self.pending += data

    def sync(self) -> None:
        """Make the buffered bytes durable."""
        self.durable += self.pending
        self.pending.clear()

    def truncate(self, size: int) -> None:
        """Cut the log, durably."""
        whole = self.read()[:size]
        self.durable, self.pending = bytearray(whole), bytearray()

    def replace(self, data: bytes) -> None:
        """Swap the content, durably."""
        self.durable, self.pending = bytearray(data), bytearray()

    def size(self) -> int:
        """Visible length."""
        return len(self.durable) + len(self.pending)


class MemoryMedium:
    """A shard's storage in memory, with crash and corruption helpers for tests and the sim."""

    def __init__(self) -> None:
        self._log = MemoryLogFile()
        self.checkpoint: Files | None = None
        self.destroyed = False

    @property
    def log(self) -> MemoryLogFile:
        """The WAL."""
        return self._log

    def write_checkpoint(self, files: Files) -> None:
        """Replace the checkpoint (atomic and durable, as the disk version)."""
        self.checkpoint = dict(files)

    def read_checkpoint(self) -> Files | None:
        """A copy of the checkpoint files."""
        return None if self.checkpoint is None else dict(self.checkpoint)

    def replace_all(self, files: Files) -> None:
        """The checkpoint ``files`` and an empty log, in one step (atomic and durable)."""
        self.checkpoint = dict(files)
        self._log.replace(b"")

    def destroy(self) -> None:
        """Forget everything."""
        self._log = MemoryLogFile()
        self.checkpoint = None
        self.destroyed = True

    def crash(self, rng: random.Random | None = None) -> None:
        """Lose every unsynced byte; with ``rng``, keep a random prefix of them (a torn
        write: the last record may be cut anywhere)."""
        kept = b""
        if rng is not None and self._log.pending:
            kept = bytes(self._log.pending[: rng.randrange(len(self._log.pending) + 1)])
        self._log = MemoryLogFile(bytes(self._log.durable) + kept)

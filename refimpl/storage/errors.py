"""Typed errors of the shard store.

Rule: bad input from a client is :class:`refimpl.points.BadRequest` (raised before anything is
written); damage found on disk is a :class:`StorageError`, which the peer treats as fatal for
that shard: it stops serving it rather than answer from data it cannot trust.
"""


class StorageError(Exception):
    """The shard's files cannot be used as they are."""


class WalCorruptedError(StorageError):
    """A WAL record inside the log (not at its tail) fails its checksum."""


class CheckpointCorruptedError(StorageError):
    """A checkpoint file is missing or does not match the checksum its manifest records."""


class SnapshotError(StorageError):
    """A snapshot archive is corrupt, truncated, or not a snapshot of this format."""

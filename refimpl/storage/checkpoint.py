"""A shard's checkpoint: its points and index as plain files, with checksums.

Rules:

* Files: ``points.npz`` (ids as kind/high/low columns, vectors, versions), ``payloads.json``
  (one payload per point, same order), ``index.npz`` (the vector index's own arrays) and
  ``meta.json`` (format version, the operation number the checkpoint includes, the shape of
  the data, and the SHA-256 of every other file).
* Loading checks every checksum first and refuses a damaged checkpoint with
  :class:`CheckpointCorruptedError`; arrays are read with ``allow_pickle=False``.
"""

import hashlib
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from refimpl.ids import PointId
from refimpl.index import ArrayStore, MemoryArrayStore
from refimpl.storage.errors import CheckpointCorruptedError
from refimpl.storage.media import Files

FORMAT_VERSION = 1
_U64 = (1 << 64) - 1


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def npz_bytes(arrays: dict[str, npt.NDArray[Any]]) -> bytes:
    """Arrays as the bytes of an uncompressed ``.npz``."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def npz_arrays(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """Read arrays written by :func:`npz_bytes`, refusing pickled objects."""
    with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
        return {name: loaded[name] for name in loaded.files}


def ids_to_columns(ids: Sequence[PointId]) -> dict[str, npt.NDArray[Any]]:
    """Point ids as three numeric columns (kind 0 = int, 1 = UUID)."""
    kinds = np.array([isinstance(p, uuid.UUID) for p in ids], dtype=np.uint8)
    high = np.array([p.int >> 64 if isinstance(p, uuid.UUID) else 0 for p in ids], dtype=np.uint64)
    low = np.array([p.int & _U64 if isinstance(p, uuid.UUID) else p for p in ids], dtype=np.uint64)
    return {"id_kind": kinds, "id_high": high, "id_low": low}


def ids_from_columns(arrays: dict[str, npt.NDArray[Any]]) -> list[PointId]:
    """Inverse of :func:`ids_to_columns`."""
    return [
        uuid.UUID(int=(int(h) << 64) | int(lo)) if k else int(lo)
        for k, h, lo in zip(arrays["id_kind"], arrays["id_high"], arrays["id_low"], strict=True)
    ]


@dataclass(frozen=True, slots=True, eq=False)
class CheckpointData:
    """What a checkpoint holds, decoded."""

    op_num: int
    ids: list[PointId]
    vectors: npt.NDArray[np.float32]
    versions: npt.NDArray[np.int64]
    payloads: list[dict[str, Any] | None]
    index_kind: str
    index: ArrayStore
    meta: dict[str, Any]


def encode_checkpoint(data: CheckpointData) -> Files:
    """The files of a checkpoint, ``meta.json`` last (it lists the others' checksums)."""
    points = {**ids_to_columns(data.ids), "vectors": data.vectors, "versions": data.versions}
    files: Files = {
        "points.npz": npz_bytes(points),
        "payloads.json": json.dumps(data.payloads, separators=(",", ":")).encode(),
        "index.npz": npz_bytes(data.index.read_arrays()),
    }
    meta = {
        **data.meta,
        "format": FORMAT_VERSION,
        "op_num": data.op_num,
        "points": len(data.ids),
        "index": data.index_kind,
        "sha256": {name: sha256(blob) for name, blob in files.items()},
    }
    files["meta.json"] = json.dumps(meta, indent=1, sort_keys=True).encode()
    return files


def decode_checkpoint(files: Files, where: str) -> CheckpointData:
    """Check and decode checkpoint files; raise :class:`CheckpointCorruptedError`."""
    try:
        meta = json.loads(files["meta.json"])
        if meta.get("format") != FORMAT_VERSION:
            raise CheckpointCorruptedError(
                f"{where}: checkpoint format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        for name, digest in meta["sha256"].items():
            if name not in files or sha256(files[name]) != digest:
                raise CheckpointCorruptedError(
                    f"{where}: checkpoint file {name} is missing or fails its SHA-256 check"
                )
        points = npz_arrays(files["points.npz"])
        index = MemoryArrayStore()
        index.write_arrays(npz_arrays(files["index.npz"]))
        return CheckpointData(
            op_num=int(meta["op_num"]),
            ids=ids_from_columns(points),
            vectors=np.asarray(points["vectors"], dtype=np.float32),
            versions=np.asarray(points["versions"], dtype=np.int64),
            payloads=json.loads(files["payloads.json"]),
            index_kind=str(meta["index"]),
            index=index,
            meta=meta,
        )
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise CheckpointCorruptedError(f"{where}: unreadable checkpoint ({error!r})") from error

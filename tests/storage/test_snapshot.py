"""Collection snapshot archives round-trip, and a corrupt or truncated archive is refused
with a clear error without changing anything (issue 7 "Snapshots and recovery")."""

import hashlib
import io
import json
import random
import tarfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from refimpl.ids import ShardId
from refimpl.index import Distance
from refimpl.points import UpsertPoints, parse_query
from refimpl.storage import (
    MemoryMedium,
    ShardConfig,
    ShardStore,
    SnapshotError,
    create_snapshot,
    parse_snapshot,
    read_snapshot,
    restore_snapshot,
    snapshot_name,
)

CONFIG = ShardConfig(4, Distance.EUCLID)
COLLECTION = {"params": {"vectors": {"size": 4, "distance": "Euclid"}, "shard_number": 3}}


def _shards() -> dict[ShardId, ShardStore]:
    rng = np.random.default_rng(0)
    shards = {}
    for shard_id in (0, 1, 2):
        store = ShardStore.in_memory(CONFIG)
        ids = tuple(range(shard_id * 100, shard_id * 100 + 40))
        store.apply(UpsertPoints(ids, rng.normal(size=(40, 4)).astype(np.float32),
                                 tuple({"shard": shard_id, "i": i} for i in ids)))  # fmt: skip
        shards[ShardId(shard_id)] = store
    return shards


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[ShardId, ShardStore]]:
    shards = _shards()
    path = tmp_path_factory.mktemp("snap") / snapshot_name("c", 7, datetime(2024, 5, 1, 12, 0, 3))
    info = create_snapshot(shards, COLLECTION, path, collection="c")
    assert info.path.name == "c-7-2024-05-01-12-00-03.snapshot"
    assert info.size == path.stat().st_size and len(info.checksum) == 64
    return path, shards


def test_round_trip_restores_every_point(archive: tuple[Path, dict[ShardId, ShardStore]]) -> None:
    """Create, read, restore into empty shards: same points, payloads and answers."""
    path, shards = archive
    snapshot = read_snapshot(path)
    assert (snapshot.collection, snapshot.config) == ("c", COLLECTION)
    assert [e["points"] for e in snapshot.manifest["shards"]] == [40, 40, 40]
    restored = restore_snapshot(snapshot, {s: MemoryMedium() for s in shards}, CONFIG)
    query = parse_query({"query": [0.5, 0.1, -0.3, 1.0], "limit": 5, "with_payload": True}, 4)
    for shard_id, store in shards.items():
        assert restored[shard_id].search(query) == store.search(query)
        assert restored[shard_id].last_op_num == store.last_op_num


def test_the_same_data_gives_the_same_archive(tmp_path: Path) -> None:
    """Archives are deterministic (fixed member times and owners)."""
    a = create_snapshot(_shards(), COLLECTION, tmp_path / "a.snapshot")
    b = create_snapshot(_shards(), COLLECTION, tmp_path / "b.snapshot")
    assert a.checksum == b.checksum


def test_any_bit_flip_is_refused_or_harmless(
    archive: tuple[Path, dict[ShardId, ShardStore]],
) -> None:
    """A flipped bit anywhere either raises SnapshotError or leaves the content identical
    (tar padding); altered data is never accepted."""
    path, _ = archive
    data = path.read_bytes()
    original = parse_snapshot(data)
    rng = random.Random(0)
    refused = 0
    for offset in rng.sample(range(len(data)), 300):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << rng.randrange(8)
        try:
            again = parse_snapshot(bytes(damaged))
        except SnapshotError:
            refused += 1
            continue
        assert again.shards == original.shards and again.manifest == original.manifest
    assert refused > 30


@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.3, 0.5, 0.9, 0.99, 1.0])
def test_truncated_archive_is_refused(
    archive: tuple[Path, dict[ShardId, ShardStore]], fraction: float
) -> None:
    """An archive cut anywhere before the end of its last member is refused."""
    data = archive[0].read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        last = tar.getmembers()[-1]
        content_end = last.offset_data + last.size  # after it: only tar padding
    with pytest.raises(SnapshotError, match="snapshot"):
        parse_snapshot(data[: int((content_end - 1) * fraction)])


def _rebuild(data: bytes, edit: dict[str, bytes | None]) -> bytes:
    """Rewrite an archive with members replaced (or dropped when None) or added."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        names = [m.name for m in src.getmembers()]
        for name in [*names, *(n for n in edit if n not in names)]:
            blob = edit.get(name, b"") if name in edit else src.extractfile(name).read()  # type: ignore[union-attr]
            if blob is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            dst.addfile(info, io.BytesIO(blob))
    return out.getvalue()


def test_manifest_problems_are_named(archive: tuple[Path, dict[ShardId, ShardStore]]) -> None:
    """Missing, extra and mismatched members and foreign formats get specific messages."""
    data = archive[0].read_bytes()
    manifest = parse_snapshot(data).manifest

    def with_manifest(changed: dict[str, object]) -> dict[str, bytes | None]:
        blob = json.dumps(changed).encode()
        return {"manifest.json": blob, "manifest.sha256": hashlib.sha256(blob).hexdigest().encode()}

    cases: dict[str, dict[str, bytes | None]] = {
        "member shards/1/points.npz listed in the manifest is missing":
            {"shards/1/points.npz": None},
        "members not in the manifest: shards/1/extra.bin": {"shards/1/extra.bin": b"x"},
        "version 2 is not supported": with_manifest({**manifest, "version": 2}),
        "manifest.json fails its SHA-256 check": {"manifest.json": b"{}"},
        "holds 40 points, the manifest says 41": with_manifest(
            {**manifest, "shards": [{**manifest["shards"][0], "points": 41},
                                    *manifest["shards"][1:]]}),
    }  # fmt: skip
    for message, edit in cases.items():
        with pytest.raises(SnapshotError, match=message):
            parse_snapshot(_rebuild(data, edit))


def test_restore_refuses_non_empty_or_mismatched_targets_and_changes_nothing(
    archive: tuple[Path, dict[ShardId, ShardStore]],
) -> None:
    """Restore checks every target first: one busy shard means no shard is written."""
    snapshot = read_snapshot(archive[0])
    media = {ShardId(s): MemoryMedium() for s in (0, 1, 2)}
    busy = ShardStore.in_memory(CONFIG, media[ShardId(2)])
    busy.apply(UpsertPoints((1,), np.zeros((1, 4), dtype=np.float32), (None,)))
    with pytest.raises(SnapshotError, match="shard 2 is not empty"):
        restore_snapshot(snapshot, media, CONFIG)
    assert media[ShardId(0)].checkpoint is None and media[ShardId(1)].checkpoint is None
    with pytest.raises(SnapshotError, match="they must be the same"):
        restore_snapshot(snapshot, {ShardId(0): MemoryMedium()}, CONFIG)


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    """A file that is not a tar at all, or not there, gets a clear error."""
    junk = tmp_path / "junk.snapshot"
    junk.write_bytes(b"hello" * 300)
    with pytest.raises(SnapshotError, match=r"not a readable snapshot archive|must be the first"):
        read_snapshot(junk)
    with pytest.raises(SnapshotError, match=r"cannot read snapshot missing\.snapshot"):
        read_snapshot(tmp_path / "missing.snapshot")

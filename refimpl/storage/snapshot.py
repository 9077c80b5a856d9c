"""Collection snapshot archives: a documented, checksummed tar of shard checkpoints.

Format (version 1). An uncompressed POSIX tar whose **first** member is ``manifest.json``,
the second ``manifest.sha256`` (the hex SHA-256 of the manifest's bytes, so the manifest is
as protected as the data it describes), followed by each shard's checkpoint files under
``shards/<shard_id>/``::

    manifest.json  manifest.sha256
    shards/0/index.npz  shards/0/meta.json  shards/0/payloads.json  shards/0/points.npz
    shards/3/...

``manifest.json``::

    {"format": "refimpl-collection-snapshot", "version": 1,
     "collection": "<name>", "config": {<collection config as the REST API shows it>},
     "shards": [{"shard_id": 0, "points": 1200, "op_num": 57,
                 "files": {"meta.json": {"size": 412, "sha256": "<hex>"}, ...}}, ...]}

Rules:

* Writing is atomic: the archive is written to ``<path>.partial``, fsynced, then renamed.
  Members carry fixed times and owners, so the same data gives the same bytes.
* Reading verifies everything before anyone may use it: the tar structure, the manifest
  (format, version, shard entries), that the members are exactly the ones the manifest lists,
  each member's size and SHA-256, and each shard checkpoint's own checksums and point count.
  Any failure — a truncated file, a flipped bit, a missing or extra member — raises
  :class:`SnapshotError` with a message naming the problem, and nothing has been changed.
* Members are read into memory, never extracted, so names like ``../x`` cannot escape.
* Restoring needs empty shard stores; all of them are checked before the first is written.
"""

import io
import json
import os
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from refimpl.ids import ShardId
from refimpl.storage.checkpoint import decode_checkpoint, sha256
from refimpl.storage.errors import SnapshotError, StorageError
from refimpl.storage.media import Files, ShardMedium
from refimpl.storage.shard import ShardConfig, ShardStore

FORMAT = "refimpl-collection-snapshot"
VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_SUM = "manifest.sha256"
_MEMBER = re.compile(r"shards/(\d+)/([A-Za-z0-9_.-]+)")


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """Qdrant's ``SnapshotDescription`` fields for a written archive."""

    path: Path
    size: int
    checksum: str

    def to_json(self, creation_time: str | None = None) -> dict[str, Any]:
        """``{"name", "creation_time", "size", "checksum"}``."""
        return {"name": self.path.name, "creation_time": creation_time, "size": self.size,
                "checksum": self.checksum}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified archive: the collection's name and config, and each shard's files."""

    collection: str
    config: dict[str, Any]
    shards: dict[ShardId, Files]
    manifest: dict[str, Any]


def snapshot_name(collection: str, peer_id: int, when: datetime) -> str:
    """Qdrant's file name: ``{collection}-{peer_id}-YYYY-MM-DD-HH-MM-SS.snapshot``."""
    return f"{collection}-{peer_id}-{when:%Y-%m-%d-%H-%M-%S}.snapshot"


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def create_snapshot(
    shards: Mapping[ShardId, ShardStore], config: Mapping[str, Any], path: Path,
    collection: str = "",
) -> SnapshotInfo:  # fmt: skip
    """Checkpoint every shard and write their files into one archive at ``path``."""
    files = {shard_id: store.snapshot_files() for shard_id, store in sorted(shards.items())}
    data = archive_bytes(files, config, collection)
    write_archive(path, data)
    return SnapshotInfo(path, len(data), sha256(data))


def write_archive(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a ``.partial`` file, fsynced, then renamed."""
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)


def archive_bytes(
    files: Mapping[ShardId, Files], config: Mapping[str, Any], collection: str = ""
) -> bytes:
    """The archive of shards' checkpoint files, in memory (a ``snapshot`` shard transfer
    ships these bytes to another peer instead of writing a file)."""
    entries = []
    for shard_id, shard_files in sorted(files.items()):
        meta = json.loads(shard_files["meta.json"])
        entries.append({
            "shard_id": int(shard_id), "points": meta["points"], "op_num": meta["op_num"],
            "files": {name: {"size": len(blob), "sha256": sha256(blob)}
                      for name, blob in sorted(shard_files.items())},
        })  # fmt: skip
    manifest = {"format": FORMAT, "version": VERSION, "collection": collection,
                "config": dict(config), "shards": entries}  # fmt: skip
    buffer = io.BytesIO()
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add(archive, MANIFEST, manifest_bytes)
        _add(archive, MANIFEST_SUM, sha256(manifest_bytes).encode())
        for shard_id, shard_files in sorted(files.items()):
            for name, blob in sorted(shard_files.items()):
                _add(archive, f"shards/{shard_id}/{name}", blob)
    return buffer.getvalue()


def read_snapshot(path: Path) -> Snapshot:
    """Read and fully verify the archive at ``path`` (see the module rules)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SnapshotError(f"cannot read snapshot {path.name}: {error.strerror}") from error
    return parse_snapshot(data, f"snapshot {path.name}")


def parse_snapshot(data: bytes, label: str = "snapshot") -> Snapshot:
    """Verify archive bytes and return their content; raise :class:`SnapshotError`."""
    members = _members(data, label)
    manifest = _manifest(members, label)
    try:
        shards, listed = _shard_files(manifest, members, label)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SnapshotError(f"{label}: malformed manifest entry ({error!r})") from error
    extra = sorted(set(members) - listed)
    if extra:
        raise SnapshotError(f"{label}: members not in the manifest: {', '.join(extra)}")
    return Snapshot(manifest["collection"], manifest["config"], shards, manifest)


def _shard_files(
    manifest: Mapping[str, Any], members: Mapping[str, bytes], label: str
) -> tuple[dict[ShardId, Files], set[str]]:
    """Each shard's verified files, and every member name the manifest accounts for."""
    shards: dict[ShardId, Files] = {}
    listed = {MANIFEST, MANIFEST_SUM}
    for entry in manifest["shards"]:
        shard_id = ShardId(entry["shard_id"])
        files: Files = {}
        for name, expected in entry["files"].items():
            member = f"shards/{shard_id}/{name}"
            listed.add(member)
            blob = members.get(member)
            if blob is None:
                raise SnapshotError(f"{label}: member {member} listed in the manifest is missing")
            if len(blob) != expected["size"] or sha256(blob) != expected["sha256"]:
                raise SnapshotError(
                    f"{label}: member {member} fails its size or SHA-256 check; "
                    "the archive is corrupt"
                )
            files[name] = blob
        _check_shard(files, entry, label)
        shards[shard_id] = files
    return shards, listed


def _members(data: bytes, label: str) -> dict[str, bytes]:
    """Every regular member's bytes, in archive order; the manifest must come first."""
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for info in archive:
                if not info.isfile() or info.name in members:
                    raise SnapshotError(f"{label}: unexpected member {info.name!r}")
                if info.name not in (MANIFEST, MANIFEST_SUM) and not _MEMBER.fullmatch(info.name):
                    raise SnapshotError(f"{label}: unexpected member name {info.name!r}")
                handle = archive.extractfile(info)
                blob = handle.read() if handle is not None else b""
                if len(blob) != info.size:
                    raise SnapshotError(f"{label}: member {info.name} is truncated")
                members[info.name] = blob
    except (tarfile.TarError, EOFError, OSError) as error:
        raise SnapshotError(
            f"{label} is not a readable snapshot archive (truncated or corrupt: {error})"
        ) from error
    if not members or next(iter(members)) != MANIFEST:
        raise SnapshotError(f"{label}: {MANIFEST} must be the first member of the archive")
    return members


def _manifest(members: Mapping[str, bytes], label: str) -> dict[str, Any]:
    if members.get(MANIFEST_SUM, b"").decode(errors="replace") != sha256(members[MANIFEST]):
        raise SnapshotError(f"{label}: {MANIFEST} fails its SHA-256 check; the archive is corrupt")
    try:
        manifest = json.loads(members[MANIFEST])
        if not isinstance(manifest, dict):
            raise SnapshotError(f"{label}: the manifest is not a JSON object")
        if manifest.get("format") != FORMAT:
            raise SnapshotError(f"{label}: not a {FORMAT} archive")
        if manifest.get("version") != VERSION:
            raise SnapshotError(
                f"{label}: snapshot format version {manifest.get('version')!r} is not "
                f"supported; this build reads version {VERSION}"
            )
        ids = [int(e["shard_id"]) for e in manifest["shards"]]
        if len(set(ids)) != len(ids) or not all(isinstance(e["files"], dict)
                                                for e in manifest["shards"]):  # fmt: skip
            raise SnapshotError(f"{label}: the manifest's shard list is malformed")
        if not isinstance(manifest["config"], dict):
            raise SnapshotError(f"{label}: the manifest's collection config is not an object")
        return dict(manifest)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise SnapshotError(f"{label}: unreadable manifest ({error!r})") from error


def _check_shard(files: Files, entry: Mapping[str, Any], label: str) -> None:
    try:
        data = decode_checkpoint(files, f"{label}, shard {entry['shard_id']}")
    except StorageError as error:
        raise SnapshotError(str(error)) from error
    if len(data.ids) != entry["points"]:
        raise SnapshotError(
            f"{label}: shard {entry['shard_id']} holds {len(data.ids)} points, "
            f"the manifest says {entry['points']}"
        )


def restore_snapshot(
    snapshot: Snapshot, media: Mapping[ShardId, ShardMedium], config: ShardConfig
) -> dict[ShardId, ShardStore]:
    """Restore every shard of a verified snapshot into empty media (one per shard id)."""
    if set(media) != set(snapshot.shards):
        raise SnapshotError(
            f"the snapshot holds shards {sorted(snapshot.shards)}, "
            f"the target has shards {sorted(media)}; they must be the same"
        )
    for shard_id, medium in media.items():
        if medium.read_checkpoint() is not None or medium.log.size() > 0:
            raise SnapshotError(f"shard {shard_id} is not empty; restore into empty shards")
    return {
        shard_id: ShardStore.restore(media[shard_id], files, config)
        for shard_id, files in sorted(snapshot.shards.items())
    }

"""Collection snapshots over REST, in Qdrant's shapes (facts §7.7).

Routes: ``POST|GET /collections/{name}/snapshots`` (create, list),
``GET|DELETE /collections/{name}/snapshots/{snapshot_name}`` (download, delete) and
``PUT /collections/{name}/snapshots/recover`` (body ``{"location": "file:///…" | "http://…",
"checksum"?, "priority"?}``).

Rules:

* A snapshot holds the shards **local to the peer that made it** (as Qdrant: a peer without
  local shards makes an almost empty one). It is the checksummed archive of
  :mod:`refimpl.storage.snapshot`, written atomically under ``<storage>/snapshots/<name>/`` as
  ``{collection}-{peer_id}-YYYY-MM-DD-HH-MM-SS.snapshot``, with its SHA-256 beside it in
  ``<file>.checksum``. While a shard is being checkpointed into it, its updates wait (the
  shard's lock), so each shard in the archive is a consistent cut.
* Recovery reads the whole archive and verifies it — checksums, manifest, ``checksum`` from
  the body if given — and checks that it fits (same vector size, distance and shard count,
  every shard of the archive held by this peer, or lost everywhere) **before** touching
  anything: a corrupt or unfitting archive is refused with 400 and the collection is unchanged.
* A shard of the archive with no Active replica left anywhere and none on this peer (every
  copy was lost, e.g. its only peer was removed with ``force``) is re-created here: a replica
  in Recovery through consensus, filled from the archive, then Active.
* Then each shard of the archive replaces the content of the local replica (under the shard's
  lock). With priority ``snapshot`` (the default, as Qdrant) the other Active replicas of those
  shards are marked Dead through consensus, so they pull a transfer from the recovered copy
  (:mod:`refimpl.peer.transfers`); ``no_sync`` leaves them alone. ``replica`` is refused.
* A location is a ``file://`` path on this peer or an ``http(s)://`` URL (another peer's
  download route). Snapshot names cannot contain a path separator.

Theory of operation: create = open every local store, hold all their locks, checkpoint and
archive in a worker thread; recover = restore the archive's shard files into an in-memory
store and stream its points into the live replica.
"""

import contextlib
import hashlib
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import trio
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from refimpl.api.app import ApiContext, ApiError, _json_body, endpoint, error
from refimpl.consensus import CreateRecoveryReplica, SetReplicaState, encode_operation
from refimpl.ids import PeerId, ShardId
from refimpl.peer.collections import collection_info_json
from refimpl.peer.data_plane import DataPlane
from refimpl.peer.shards import LocalShard
from refimpl.points import DeletePoints, id_sort_key
from refimpl.replication import ReplicaEvent, ReplicaState
from refimpl.storage import (
    MemoryMedium,
    ShardStore,
    SnapshotError,
    create_snapshot,
    parse_snapshot,
    snapshot_name,
)

__all__ = ["snapshot_routes"]

SUFFIX = ".snapshot"
DOWNLOAD_TIMEOUT_S = 120.0
SNAPSHOT_BYTES_MAX = 4 << 30
RECREATE_WAIT_S = 10.0


def _plane(ctx: ApiContext) -> DataPlane:
    assert ctx.plane is not None, "snapshot routes are only built with a data plane"
    return ctx.plane


def _directory(plane: DataPlane, name: str) -> Path:
    root = plane.shards.root
    if root is None:
        raise ApiError(400, "Bad request: this peer keeps its shards in memory; no snapshots")
    return root / "snapshots" / name


def _collection(plane: DataPlane, name: str) -> Any:
    coll = plane.collections.view.cluster.collections.get(name)
    if coll is None:
        raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
    return coll


def _description(path: Path) -> dict[str, Any]:
    stat = path.stat()
    checksum_file = path.with_name(path.name + ".checksum")
    checksum = checksum_file.read_text().strip() if checksum_file.exists() else None
    when = datetime.fromtimestamp(stat.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {"name": path.name, "creation_time": when, "size": stat.st_size, "checksum": checksum}


async def create(request: Request, ctx: ApiContext) -> Any:
    """``POST /collections/{name}/snapshots``: archive this peer's shards of the collection."""
    plane, name = _plane(ctx), str(request.path_params["name"])
    coll = _collection(plane, name)
    directory = _directory(plane, name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / snapshot_name(name, plane.peer.id, datetime.now(UTC))
    local = plane.shards.of_collection(name)
    for shard in local:
        await shard.run(lambda s: None)  # open every store first
    config = collection_info_json(coll, None, 0, len(local))["config"]
    async with contextlib.AsyncExitStack() as stack:
        for shard in local:
            await stack.enter_async_context(shard.lock)
        stores = {shard.shard_id: _store(shard) for shard in local}
        info = await trio.to_thread.run_sync(
            lambda: create_snapshot(stores, config, path, collection=name)
        )
    path.with_name(path.name + ".checksum").write_text(info.checksum + "\n")
    return _description(path)


def _store(shard: LocalShard) -> ShardStore:
    assert shard.store is not None, "opened just before"
    return shard.store


async def list_snapshots(request: Request, ctx: ApiContext) -> Any:
    """``GET /collections/{name}/snapshots``."""
    plane, name = _plane(ctx), str(request.path_params["name"])
    _collection(plane, name)
    directory = _directory(plane, name)
    if not directory.is_dir():
        return []
    return [_description(p) for p in sorted(directory.glob("*" + SUFFIX))]


def _snapshot_path(request: Request, ctx: ApiContext) -> Path:
    plane, name = _plane(ctx), str(request.path_params["name"])
    file_name = str(request.path_params["snapshot_name"])
    if "/" in file_name or "\\" in file_name or not file_name.endswith(SUFFIX):
        raise ApiError(400, f"Bad request: {file_name!r} is not a snapshot name")
    path = _directory(plane, name) / file_name
    if not path.is_file():
        raise ApiError(404, f"Not found: Snapshot {file_name} of collection {name} not found")
    return path


async def delete(request: Request, ctx: ApiContext) -> Any:
    """``DELETE /collections/{name}/snapshots/{snapshot_name}``."""
    path = _snapshot_path(request, ctx)
    path.unlink()
    path.with_name(path.name + ".checksum").unlink(missing_ok=True)
    return True


async def _fetch(location: str) -> bytes:
    parsed = urlparse(location)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        try:
            return await trio.to_thread.run_sync(path.read_bytes)
        except OSError as exc:
            raise ApiError(400, f"Bad request: cannot read {location}: {exc.strerror}") from None
    if parsed.scheme in ("http", "https"):
        try:
            async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S) as client:
                response = await client.get(location)
        except httpx.HTTPError as exc:
            raise ApiError(400, f"Bad request: cannot download {location}: {exc}") from None
        if response.status_code != 200:
            raise ApiError(400, f"Bad request: downloading {location} answered "
                           f"{response.status_code}")  # fmt: skip
        return response.content
    raise ApiError(400, "Bad request: `location` must be a file:// path or an http(s) URL")


def _check_fits(coll: Any, manifest: dict[str, Any], held: set[ShardId]) -> list[ShardId]:
    """Refuse an archive that does not fit; return the shards to re-create here (no replica
    on this peer and no Active replica anywhere: every copy was lost)."""
    params = manifest.get("config", {}).get("params", {})
    c = coll.config
    want = {"size": c.vectors.size, "distance": c.vectors.distance.value}
    if params.get("vectors") != want or params.get("shard_number") != c.shard_number:
        raise ApiError(400, "Bad request: the snapshot's vectors or shard_number "
                       f"({params.get('vectors')}, {params.get('shard_number')}) differ from the "
                       f"collection's ({want}, {c.shard_number})")  # fmt: skip
    shards = {ShardId(int(e["shard_id"])) for e in manifest.get("shards", [])}
    lost = [
        s for s in sorted(shards - held) if ReplicaState.Active not in coll.replicas[s].values()
    ]
    missing = sorted(shards - held - set(lost))
    if missing:
        raise ApiError(400, f"Bad request: this peer holds no replica of shard(s) {missing} of "
                       "the snapshot; recover on a peer that does")  # fmt: skip
    return lost


async def _recreate(plane: DataPlane, name: str, shard_id: ShardId, files: Any) -> None:
    """A shard with no copy left: a replica in Recovery here (through consensus), filled from
    the archive, then Active (spec "Node Failure Recovery": recover from a snapshot)."""
    me = plane.peer.id
    await _propose(plane, CreateRecoveryReplica(name, shard_id, me))
    with trio.move_on_after(RECREATE_WAIT_S):
        while (shard := plane.shards.get(name, shard_id)) is None:
            await trio.sleep(0.02)
    if shard is None:
        raise ApiError(500, f"Service internal error: shard {shard_id} did not open here")
    source = ShardStore.restore(MemoryMedium(), files, shard.config)
    await shard.run(partial(_replace_points, source=source))
    done = SetReplicaState(name, shard_id, me, ReplicaEvent.RECOVERED, ReplicaState.Recovery)
    await _propose(plane, done)


async def _propose(plane: DataPlane, operation: Any) -> None:
    result = await plane.peer.propose(encode_operation(operation))
    if result is not True:
        raise ApiError(500, f"Service internal error: recovery step refused: {result}")


def _replace_points(store: ShardStore, source: ShardStore) -> int:
    """Make ``store`` hold exactly ``source``'s points; return how many."""
    ids = tuple(sorted(store.matching_ids(None), key=id_sort_key))
    if ids:
        store.apply(DeletePoints(ids), wait=False)
    for batch in source.export_batches():
        store.apply(batch, wait=False)
    store.sync()
    return len(source)


async def recover(request: Request, ctx: ApiContext) -> Any:
    """``PUT /collections/{name}/snapshots/recover``."""
    plane, name = _plane(ctx), str(request.path_params["name"])
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("location"), str):
        raise ApiError(400, 'Bad request: body must be {"location": "file:///…" or URL}')
    priority = body.get("priority", "snapshot")
    if priority not in ("snapshot", "no_sync"):
        raise ApiError(400, "Bad request: `priority` must be snapshot or no_sync here")
    coll = _collection(plane, name)
    data = await _fetch(body["location"])
    if len(data) > SNAPSHOT_BYTES_MAX:
        raise ApiError(400, "Bad request: snapshot is too large")
    expected = body.get("checksum")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ApiError(400, "Bad request: the snapshot's SHA-256 differs from `checksum`")
    try:
        snapshot = await trio.to_thread.run_sync(parse_snapshot, data)
    except SnapshotError as exc:
        raise ApiError(400, f"Bad request: snapshot refused, nothing changed: {exc}") from None
    local = {s.shard_id: s for s in plane.shards.of_collection(name)}
    lost = _check_fits(coll, snapshot.manifest, set(local))
    for shard_id, files in sorted(snapshot.shards.items()):
        if shard_id in lost:
            await _recreate(plane, name, shard_id, files)
            continue
        shard = local[shard_id]
        source = ShardStore.restore(MemoryMedium(), files, shard.config)
        await shard.run(partial(_replace_points, source=source))
    if priority == "snapshot":
        await _resync_others(plane, name, sorted(snapshot.shards))
    return True


async def _resync_others(plane: DataPlane, name: str, shard_ids: list[ShardId]) -> None:
    """Other Active replicas become Dead, so they pull the recovered content (facts §7.7)."""
    coll = plane.collections.view.cluster.collections[name]
    for shard_id in shard_ids:
        for peer, state in sorted(coll.replicas[shard_id].items()):
            if peer != plane.peer.id and state is ReplicaState.Active:
                op = SetReplicaState(name, shard_id, PeerId(peer), ReplicaEvent.UPDATE_FAILED,
                                     from_state=ReplicaState.Active)  # fmt: skip
                await plane.peer.propose(encode_operation(op))


def snapshot_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The snapshot routes, bound to ``ctx``."""
    base = "/collections/{name}/snapshots"
    return [
        Route(base + "/recover", endpoint(recover, ctx), methods=["PUT"]),
        Route(base, endpoint(create, ctx), methods=["POST"]),
        Route(base, endpoint(list_snapshots, ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", _download_endpoint(ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", endpoint(delete, ctx), methods=["DELETE"]),
    ]


def _download_endpoint(ctx: ApiContext) -> Any:
    async def serve(request: Request) -> Response:
        try:
            path = _snapshot_path(request, ctx)
        except ApiError as exc:
            return error(exc.status_code, exc.message, 0.0)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    return serve

"""Shard snapshots over REST, in Qdrant's shapes (facts §7.7).

Routes (``{base}`` is ``/collections/{name}/shards/{shard_id}/snapshots``):
``POST|GET {base}`` (create, list), ``GET|DELETE {base}/{snapshot_name}`` (download, delete),
``PUT {base}/recover`` (body ``{"location": "file:///…" | "http://…", "priority"?,
"checksum"?, "api_key"?}``; the key is sent with a download),
``POST {base}/upload?priority=&checksum=`` (multipart field ``snapshot``) and
``GET /collections/{name}/shards/{shard_id}/snapshot`` (a fresh archive, streamed, not kept).

Rules:

* A shard snapshot is the collection snapshot's archive (:mod:`refimpl.storage.snapshot`)
  holding exactly one shard: this peer's replica of ``shard_id``, checkpointed under the
  shard's lock (a consistent cut). It is made only where the shard has a replica, and is
  written atomically under ``<storage>/snapshots/<name>/shards/<shard_id>/`` as
  ``{collection}-shard-{shard_id}-{peer_id}-YYYY-MM-DD-HH-MM-SS.snapshot`` with its SHA-256
  in ``<file>.checksum``.
* Recovery verifies the whole archive first (size, ``checksum``, every member's checksum),
  then that it fits: same vectors and shard count as the collection, exactly one shard and
  that shard is ``shard_id``. Anything wrong is a 400 (an unknown collection or shard id a
  404) and nothing changed. It then restores this peer's replica with
  :func:`refimpl.api.snapshots.restore_replica` — Recovery meanwhile, then ``priority``
  (``snapshot`` by default, ``no_sync``, ``replica``) as for collection snapshots. A shard
  with no replica left anywhere and none here is re-created here, as a collection recovery
  does.

Theory of operation: the functions :func:`shard_archive` and :func:`recover_shard` do the work
on a :class:`refimpl.peer.data_plane.DataPlane` (so the peer simulation can drive them
without HTTP); the route handlers only read parameters, files and uploads.
"""

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from refimpl.api.app import ApiContext, ApiError, _json_body, endpoint, error
from refimpl.api.snapshots import (
    SUFFIX,
    _collection,
    _description,
    _directory,
    _fetch,
    _plane,
    active_replicas,
    check_config,
    check_recoverable,
    download_endpoint,
    parse_priority,
    read_archive,
    recreate_replica,
    restore_replica,
    uploaded,
)
from refimpl.ids import ShardId
from refimpl.peer.collections import collection_info_json
from refimpl.peer.data_plane import DataPlane
from refimpl.storage.snapshot import archive_bytes, write_archive

__all__ = ["recover_shard", "shard_archive", "shard_snapshot_name", "shard_snapshot_routes"]


def shard_snapshot_name(collection: str, shard_id: int, peer_id: int, when: datetime) -> str:
    """``{collection}-shard-{shard_id}-{peer_id}-YYYY-MM-DD-HH-MM-SS.snapshot``."""
    return f"{collection}-shard-{shard_id}-{peer_id}-{when:%Y-%m-%d-%H-%M-%S}{SUFFIX}"


def _shard_id(request: Request, plane: DataPlane) -> tuple[str, ShardId]:
    """The collection name and the shard id of the path: 400 if not a number, 404 if the
    collection has no such shard."""
    name, raw = str(request.path_params["name"]), str(request.path_params["shard_id"])
    coll = _collection(plane, name)
    try:
        shard_id = ShardId(int(raw))
    except ValueError:
        raise ApiError(400, f"Bad request: shard_id must be an integer, got {raw!r}") from None
    if shard_id not in coll.replicas:
        raise ApiError(404, f"Not found: collection {name} has no shard {shard_id} "
                       f"(its shards are 0..{coll.config.shard_number - 1})")  # fmt: skip
    return name, shard_id


def _local_shard(plane: DataPlane, name: str, shard_id: ShardId) -> Any:
    shard = plane.shards.get(name, shard_id)
    if shard is None:
        holders = sorted(_collection(plane, name).replicas[shard_id])
        raise ApiError(400, f"Bad request: shard {shard_id} of {name} has no replica on peer "
                       f"{plane.peer.id}; ask a peer that holds one: {holders}")  # fmt: skip
    return shard


async def shard_archive(plane: DataPlane, name: str, shard_id: ShardId) -> bytes:
    """The archive of this peer's replica of ``shard_id`` (checkpointed under its lock)."""
    shard = _local_shard(plane, name, shard_id)
    config = collection_info_json(_collection(plane, name), None, 0, 1)["config"]
    files = await shard.run(lambda s: dict(s.snapshot_files()))
    if plane.shards.threaded:
        return await trio.to_thread.run_sync(archive_bytes, {shard_id: files}, config, name)
    return archive_bytes({shard_id: files}, config, name)


async def recover_shard(
    plane: DataPlane, name: str, shard_id: ShardId, data: bytes, priority: str, *,
    checksum: object = None,
) -> bool:  # fmt: skip
    """Recover this peer's replica of ``shard_id`` from archive ``data`` (module rules)."""
    coll = _collection(plane, name)
    snapshot = await read_archive(data, checksum)
    check_config(coll, snapshot.manifest)
    held = sorted(snapshot.shards)
    if held != [shard_id]:
        raise ApiError(400, f"Bad request: the snapshot holds shard(s) {held}, not shard "
                       f"{shard_id}; recover it into the shard it was made of")  # fmt: skip
    files = snapshot.shards[shard_id]
    if plane.shards.get(name, shard_id) is None and not active_replicas(coll, shard_id):
        await recreate_replica(plane, name, shard_id, files)
        return True
    _local_shard(plane, name, shard_id)
    check_recoverable(coll, [shard_id], plane.peer.id)
    await restore_replica(plane, name, shard_id, files, priority)
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    write_archive(path, data)
    path.with_name(path.name + ".checksum").write_text(hashlib.sha256(data).hexdigest() + "\n")


def _shard_directory(plane: DataPlane, name: str, shard_id: ShardId) -> Path:
    return _directory(plane, name) / "shards" / str(shard_id)


async def create(request: Request, ctx: ApiContext) -> Any:
    """``POST …/shards/{shard_id}/snapshots``: archive this peer's replica of the shard."""
    plane = _plane(ctx)
    name, shard_id = _shard_id(request, plane)
    directory = _shard_directory(plane, name, shard_id)
    data = await shard_archive(plane, name, shard_id)
    path = directory / shard_snapshot_name(name, shard_id, plane.peer.id, datetime.now(UTC))
    directory.mkdir(parents=True, exist_ok=True)
    await trio.to_thread.run_sync(_write_atomic, path, data)
    return _description(path)


async def list_snapshots(request: Request, ctx: ApiContext) -> Any:
    """``GET …/shards/{shard_id}/snapshots``."""
    plane = _plane(ctx)
    name, shard_id = _shard_id(request, plane)
    directory = _shard_directory(plane, name, shard_id)
    if not directory.is_dir():
        return []
    return [_description(p) for p in sorted(directory.glob("*" + SUFFIX))]


def _snapshot_path(request: Request, ctx: ApiContext) -> Path:
    plane = _plane(ctx)
    name, shard_id = _shard_id(request, plane)
    file_name = str(request.path_params["snapshot_name"])
    if "/" in file_name or "\\" in file_name or not file_name.endswith(SUFFIX):
        raise ApiError(400, f"Bad request: {file_name!r} is not a snapshot name")
    path = _shard_directory(plane, name, shard_id) / file_name
    if not path.is_file():
        raise ApiError(404, f"Not found: Snapshot {file_name} of shard {shard_id} of "
                       f"collection {name} not found")  # fmt: skip
    return path


def _stream_endpoint(ctx: ApiContext) -> Callable[[Request], Awaitable[Response]]:
    """``GET …/shards/{shard_id}/snapshot``: a fresh snapshot of the replica, not kept."""

    async def serve(request: Request) -> Response:
        try:
            plane = _plane(ctx)
            name, shard_id = _shard_id(request, plane)
            data = await shard_archive(plane, name, shard_id)
        except ApiError as exc:
            return error(exc.status_code, exc.message, 0.0)
        file_name = shard_snapshot_name(name, shard_id, plane.peer.id, datetime.now(UTC))
        headers = {"Content-Disposition": f'attachment; filename="{file_name}"'}
        return Response(data, media_type="application/octet-stream", headers=headers)

    return serve


async def delete(request: Request, ctx: ApiContext) -> Any:
    """``DELETE …/shards/{shard_id}/snapshots/{snapshot_name}``."""
    path = _snapshot_path(request, ctx)
    path.unlink()
    path.with_name(path.name + ".checksum").unlink(missing_ok=True)
    return True


async def recover(request: Request, ctx: ApiContext) -> Any:
    """``PUT …/shards/{shard_id}/snapshots/recover``."""
    plane = _plane(ctx)
    name, shard_id = _shard_id(request, plane)
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("location"), str):
        raise ApiError(400, 'Bad request: body must be {"location": "file:///…" or URL}')
    priority = parse_priority(body.get("priority"))
    data = await _fetch(body["location"], body.get("api_key"))
    return await recover_shard(plane, name, shard_id, data, priority, checksum=body.get("checksum"))


async def upload(request: Request, ctx: ApiContext) -> Any:
    """``POST …/shards/{shard_id}/snapshots/upload?priority=&checksum=``."""
    plane = _plane(ctx)
    name, shard_id = _shard_id(request, plane)
    priority = parse_priority(request.query_params.get("priority"))
    data = await uploaded(request)
    checksum = request.query_params.get("checksum")
    return await recover_shard(plane, name, shard_id, data, priority, checksum=checksum)


def shard_snapshot_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The shard snapshot routes, bound to ``ctx``."""
    base = "/collections/{name}/shards/{shard_id}/snapshots"
    return [
        Route(base + "/recover", endpoint(recover, ctx), methods=["PUT"]),
        Route(base + "/upload", endpoint(upload, ctx), methods=["POST"]),
        Route(base, endpoint(create, ctx), methods=["POST"]),
        Route(base, endpoint(list_snapshots, ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", download_endpoint(_snapshot_path, ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", endpoint(delete, ctx), methods=["DELETE"]),
        Route(base.removesuffix("s"), _stream_endpoint(ctx), methods=["GET"]),
    ]

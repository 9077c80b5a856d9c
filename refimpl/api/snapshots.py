"""Collection snapshots over REST, in Qdrant's shapes (facts §7.7), and the recovery of one
replica from a snapshot, which shard snapshots (:mod:`refimpl.api.shard_snapshots`) share.

Routes: ``POST|GET /collections/{name}/snapshots`` (create, list),
``GET|DELETE /collections/{name}/snapshots/{snapshot_name}`` (download, delete),
``PUT /collections/{name}/snapshots/recover`` (body ``{"location": "file:///…" | "http://…",
"checksum"?, "priority"?, "api_key"?}``; the key is sent with a download) and
``POST /collections/{name}/snapshots/upload?priority=&checksum=`` (the archive as the
multipart field ``snapshot``).

Rules:

* A snapshot holds the shards **local to the peer that made it** (as Qdrant: a peer without
  local shards makes an almost empty one). It is the checksummed archive of
  :mod:`refimpl.storage.snapshot`, written atomically under ``<storage>/snapshots/<name>/`` as
  ``{collection}-{peer_id}-YYYY-MM-DD-HH-MM-SS.snapshot``, with its SHA-256 beside it in
  ``<file>.checksum``. While a shard is being checkpointed into it, its updates wait (the
  shard's lock), so each shard in the archive is a consistent cut.
* Recovery reads the whole archive and verifies it — checksums, manifest, ``checksum`` from
  the body if given — and checks that it fits (same vector size, distance and shard count,
  every shard of the archive held by this peer, or lost everywhere; no local replica of them
  being created, Partial or in a transfer) **before** touching anything: a corrupt or
  unfitting archive is refused with 400 and the collection is unchanged.
* A shard of the archive with no Active replica left anywhere and none on this peer (every
  copy was lost, e.g. its only peer was removed with ``force``) is re-created here: a replica
  in Recovery through consensus, filled from the archive, then Active.
* Each other shard of the archive goes through :func:`restore_replica`: this peer's replica
  leaves the readable states through consensus (``snapshot_recovery_started``: Active or Dead
  -> Recovery), its store is replaced by the archive's checkpoint, and then, by ``priority``
  (Qdrant's ``SnapshotPriority``; ``snapshot`` is the default, as Qdrant):

  - ``snapshot``: Recovery -> Active; the other Active replicas of the shard are marked Dead
    through consensus, so they pull a transfer from the recovered copy
    (:mod:`refimpl.peer.transfers`): the snapshot becomes the truth;
  - ``no_sync``: Recovery -> Active, nothing else;
  - ``replica``: the restored copy is handed over as Dead (``recovery_failed``, the table's way
    out of Recovery that is not Active) and a replicating ``wal_delta`` transfer from an
    Active replica elsewhere is requested, so it ends equal to that source.

  When no other replica of the shard is Active, priorities make no difference: the replica
  ends Active with the archive's content. A replica in Recovery serves no reads and takes no
  writes; a recovery that stops half-way (crash, timeout) leaves it in Recovery — never Active
  with half the data — and the same request, repeated, completes it.
* A location is a ``file://`` path on this peer or an ``http(s)://`` URL (another peer's
  download route). Snapshot names cannot contain a path separator.

Theory of operation: create = open every local store, hold all their locks, checkpoint and
archive in a worker thread; recover = verify everything, then per shard: state change through
consensus, wait (bounded) until the other peers see it, swap the store for one restored from the
archive (:meth:`refimpl.peer.shards.LocalShard.restore`, under the shard's lock), state change.
Limits: the only Active replica of a shard cannot leave Active (a shard keeps one source of
truth), so it is replaced in place under its lock: no reader sees half of it, but a crash in the
middle of the swap is not covered by a state; an update a coordinator sent before it learnt of
Recovery may still land after the swap.
"""

import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import trio
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Route

from refimpl.api.app import RETRY_AFTER_S, ApiContext, ApiError, _json_body, endpoint, error
from refimpl.consensus import (
    CreateRecoveryReplica,
    SetReplicaState,
    ShardTransfer,
    StartTransfer,
    TransferMethod,
    encode_operation,
)
from refimpl.ids import PeerId, ShardId
from refimpl.peer.collections import collection_info_json
from refimpl.peer.data_plane import DataPlane
from refimpl.peer.shards import LocalShard
from refimpl.peer.transport import TransportError
from refimpl.replication import ReplicaEvent, ReplicaState
from refimpl.storage import (
    ShardStore,
    Snapshot,
    SnapshotError,
    StorageError,
    create_snapshot,
    parse_snapshot,
    snapshot_name,
)

__all__ = [
    "PRIORITIES",
    "RECOVERABLE",
    "check_config",
    "check_recoverable",
    "download_endpoint",
    "parse_priority",
    "read_archive",
    "recover_collection",
    "restore_replica",
    "snapshot_routes",
]

SUFFIX = ".snapshot"
DOWNLOAD_TIMEOUT_S = 120.0
SNAPSHOT_BYTES_MAX = 4 << 30
RECREATE_WAIT_S = 10.0
SYNC_WAIT_S = 5.0
"""How long a recovery waits for one peer to see the replica in Recovery before going on."""
PRIORITIES = ("snapshot", "no_sync", "replica")
"""Qdrant's ``SnapshotPriority`` values we take; the first is the default."""


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


async def _fetch(location: str, api_key: object = None) -> bytes:
    """The archive at ``location``: a regular file on this peer or an http(s) download (with
    ``api_key`` as its ``api-key`` header, for a peer that asks for one), at most
    :data:`SNAPSHOT_BYTES_MAX` bytes (a device or a huge answer is refused unread)."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return await trio.to_thread.run_sync(_read_file, Path(unquote(parsed.path)), location)
    if parsed.scheme in ("http", "https"):
        try:
            return await _download(location, api_key)
        except httpx.HTTPError as exc:
            raise ApiError(400, f"Bad request: cannot download {location}: {exc}") from None
    raise ApiError(400, "Bad request: `location` must be a file:// path or an http(s) URL")


def _read_file(path: Path, location: str) -> bytes:
    try:
        if not path.is_file():
            raise ApiError(400, f"Bad request: cannot read {location}: not a regular file")
        if path.stat().st_size > SNAPSHOT_BYTES_MAX:
            raise ApiError(400, f"Bad request: {location} is too large for a snapshot")
        return path.read_bytes()
    except OSError as exc:
        raise ApiError(400, f"Bad request: cannot read {location}: {exc.strerror}") from None


async def _download(location: str, api_key: object) -> bytes:
    if api_key is not None and not isinstance(api_key, str):
        raise ApiError(400, "Bad request: `api_key` must be a string")
    headers = {"api-key": api_key} if api_key else {}
    data = bytearray()
    async with (
        httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_S) as client,
        client.stream("GET", location, headers=headers) as response,
    ):
        if response.status_code != 200:
            raise ApiError(400, f"Bad request: downloading {location} answered "
                           f"{response.status_code}")  # fmt: skip
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > SNAPSHOT_BYTES_MAX:
                raise ApiError(400, f"Bad request: {location} is too large for a snapshot")
    return bytes(data)


def check_config(coll: Any, manifest: dict[str, Any]) -> None:
    """Refuse an archive made for another vector size, distance or shard count."""
    params = manifest.get("config", {}).get("params", {})
    c = coll.config
    want = {"size": c.vectors.size, "distance": c.vectors.distance.value}
    if params.get("vectors") != want or params.get("shard_number") != c.shard_number:
        raise ApiError(400, "Bad request: the snapshot's vectors or shard_number "
                       f"({params.get('vectors')}, {params.get('shard_number')}) differ from the "
                       f"collection's ({want}, {c.shard_number})")  # fmt: skip


def _check_fits(coll: Any, manifest: dict[str, Any], held: set[ShardId]) -> list[ShardId]:
    """Refuse an archive that does not fit; return the shards to re-create here (no replica
    on this peer and no Active replica anywhere: every copy was lost)."""
    check_config(coll, manifest)
    shards = {ShardId(int(e["shard_id"])) for e in manifest.get("shards", [])}
    lost = [s for s in sorted(shards - held) if not active_replicas(coll, s)]
    missing = sorted(shards - held - set(lost))
    if missing:
        raise ApiError(400, f"Bad request: this peer holds no replica of shard(s) {missing} of "
                       "the snapshot; recover on a peer that does")  # fmt: skip
    return lost


RECOVERABLE = frozenset({ReplicaState.Active, ReplicaState.Dead, ReplicaState.Recovery})
"""States a replica may be recovered from a snapshot in (Recovery: a recovery to repeat)."""


def check_recoverable(coll: Any, shard_ids: Any, me: PeerId) -> None:
    """Refuse, before anything changes, a replica that is being created or in a transfer."""
    for shard_id in sorted(shard_ids):
        state = coll.replicas.get(shard_id, {}).get(me)
        busy = any(t.shard_id == shard_id and me in (t.from_peer, t.to_peer)
                   for t in coll.transfers)  # fmt: skip
        if state is not None and (state not in RECOVERABLE or busy):
            also = " and in a transfer" if busy else ""
            raise ApiError(400, f"Bad request: the replica of shard {shard_id} on peer {me} is "
                           f"{state.value}{also}; recover it once the transfer or its creation "
                           "is over (or abort the transfer)")  # fmt: skip


def active_replicas(coll: Any, shard_id: ShardId) -> list[PeerId]:
    """The peers whose replica of ``shard_id`` is Active, lowest id first."""
    replicas = coll.replicas.get(shard_id, {})
    return sorted(PeerId(p) for p, s in replicas.items() if s is ReplicaState.Active)


async def recreate_replica(plane: DataPlane, name: str, shard_id: ShardId, files: Any) -> None:
    """A shard with no copy left: a replica in Recovery here (through consensus), filled from
    the archive, then Active (spec "Node Failure Recovery": recover from a snapshot)."""
    await propose_step(plane, CreateRecoveryReplica(name, shard_id, plane.peer.id))
    with trio.move_on_after(RECREATE_WAIT_S):
        while plane.shards.get(name, shard_id) is None:
            await trio.sleep(0.02)
    if plane.shards.get(name, shard_id) is None:
        raise ApiError(503, f"Service unavailable: shard {shard_id} did not open here yet; "
                       "repeat the recovery", RETRY_AFTER_S)  # fmt: skip
    await restore_replica(plane, name, shard_id, files, "snapshot")


async def propose_step(plane: DataPlane, operation: Any) -> None:
    """Propose one step of a recovery; a refusal is the client's 4xx with the reason."""
    result = await plane.peer.propose(encode_operation(operation))
    if result is not True:
        status = result.get("status", 400) if isinstance(result, dict) else 400
        reason = result.get("error") if isinstance(result, dict) else result
        prefix = "Not found: " if status == 404 else "Bad request: "
        raise ApiError(status, f"{prefix}recovery step refused: {reason}")


def parse_priority(raw: object) -> str:
    """``snapshot`` (default), ``no_sync`` or ``replica``; anything else is a 400."""
    if raw is None:
        return "snapshot"
    if raw not in PRIORITIES:
        raise ApiError(400, f"Bad request: `priority` must be one of {', '.join(PRIORITIES)}, "
                       f"got {raw!r}")  # fmt: skip
    return str(raw)


def _state(plane: DataPlane, name: str, shard_id: ShardId) -> ReplicaState | None:
    coll = plane.collections.view.cluster.collections.get(name)
    return None if coll is None else coll.replicas.get(shard_id, {}).get(plane.peer.id)


async def restore_replica(
    plane: DataPlane, name: str, shard_id: ShardId, files: Any, priority: str
) -> None:
    """Replace this peer's replica of ``shard_id`` by a snapshot's ``files``; the replica is
    in Recovery (no reads) meanwhile, then ``priority`` decides (see the module rules)."""
    me, shard = plane.peer.id, plane.shards.get(name, shard_id)
    if shard is None:
        raise ApiError(400, f"Bad request: shard {shard_id} of {name} has no replica on peer {me}")
    coll = _collection(plane, name)
    sources = [p for p in active_replicas(coll, shard_id) if p != me]
    state = _state(plane, name, shard_id)
    await shard.run(lambda s: None)  # open the store: the swap replaces its files in place
    if state is ReplicaState.Active and not sources:
        await shard.restore(files)  # the only source of truth: swapped in place, under its lock
        return
    if state is not ReplicaState.Recovery:
        started = ReplicaEvent.SNAPSHOT_RECOVERY_STARTED
        await propose_step(plane, SetReplicaState(name, shard_id, me, started, from_state=state))
        await _peers_see(plane, name, shard_id, ReplicaState.Recovery)
    try:
        await shard.restore(files)
    except StorageError as exc:  # the archive was verified: this peer's disk failed
        raise ApiError(500, f"Service internal error: restoring shard {shard_id} failed: {exc}; "
                       "the replica stays in Recovery, repeat the recovery") from None  # fmt: skip
    if priority == "replica" and sources:
        handed = SetReplicaState(name, shard_id, me, ReplicaEvent.RECOVERY_FAILED,
                                 from_state=ReplicaState.Recovery)  # fmt: skip
        await propose_step(plane, handed)
        await _request_sync(plane, name, shard_id, sources[0])
        return
    # With priority ``snapshot`` the other replicas turn Dead in the same operation (to pull
    # this content): a crash between two operations would leave Active replicas that differ.
    done = SetReplicaState(name, shard_id, me, ReplicaEvent.RECOVERED, ReplicaState.Recovery,
                           resync_others=priority == "snapshot")  # fmt: skip
    await propose_step(plane, done)


async def _peers_see(plane: DataPlane, name: str, shard_id: ShardId, state: ReplicaState) -> None:
    """Wait (at most :data:`SYNC_WAIT_S` per peer) until every other peer sees this replica in
    ``state``: a coordinator that does not know yet could still send it an update."""
    body = {"kind": "transfer_state", "collection": name, "shard_id": shard_id,
            "peer_id": plane.peer.id}  # fmt: skip

    async def ask(uri: str) -> None:
        with trio.move_on_after(SYNC_WAIT_S):
            while True:
                try:
                    answer = await plane.peer.transport.request(uri, body, SYNC_WAIT_S)
                    if answer.get("result") == state.value:
                        return
                except TransportError:
                    pass
                await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        for peer, uri in sorted(plane.peer.addresses().items()):
            if peer != plane.peer.id:
                nursery.start_soon(ask, uri)


async def _request_sync(plane: DataPlane, name: str, shard_id: ShardId, source: PeerId) -> None:
    """Ask for a replicating transfer from ``source`` into this peer's (Dead) replica. The
    peer's own recovery of Dead replicas may have asked first: that transfer does the same."""
    t = ShardTransfer(shard_id, source, plane.peer.id, sync=True, method=TransferMethod.WAL_DELTA)
    result = await plane.peer.propose(encode_operation(StartTransfer(name, t)))
    coll = _collection(plane, name)
    # Refused because the peer's own recovery got there first: its transfer may still run, or
    # may already have moved the replica on (Recovery, Partial, even Active again).
    underway = any(x.to_peer == plane.peer.id and x.shard_id == shard_id for x in coll.transfers)
    moved_on = coll.replicas.get(shard_id, {}).get(plane.peer.id) in {
        ReplicaState.Recovery,
        ReplicaState.Partial,
        ReplicaState.Active,
    }
    if result is not True and not underway and not moved_on:
        reason = result.get("error") if isinstance(result, dict) else result
        raise ApiError(400, f"Bad request: the replica of shard {shard_id} is restored but no "
                       f"sync transfer could start ({reason}); it recovers by itself when a "
                       "source is Active")  # fmt: skip


async def read_archive(data: bytes, expected: object) -> Snapshot:
    """Verify an uploaded or fetched archive (size, ``checksum``, content); 400 otherwise."""
    if len(data) > SNAPSHOT_BYTES_MAX:
        raise ApiError(400, "Bad request: snapshot is too large")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ApiError(400, "Bad request: the snapshot's SHA-256 differs from `checksum`")
    try:
        return await trio.to_thread.run_sync(parse_snapshot, data)
    except SnapshotError as exc:
        raise ApiError(400, f"Bad request: snapshot refused, nothing changed: {exc}") from None


async def recover_collection(
    plane: DataPlane, name: str, data: bytes, priority: str, checksum: object = None
) -> bool:
    """Recover this peer's replicas of collection ``name`` from archive ``data``."""
    coll = _collection(plane, name)
    snapshot = await read_archive(data, checksum)
    local = {s.shard_id for s in plane.shards.of_collection(name)}
    lost = _check_fits(coll, snapshot.manifest, local)
    check_recoverable(coll, snapshot.shards, plane.peer.id)
    for shard_id, files in sorted(snapshot.shards.items()):
        if shard_id in lost:
            await recreate_replica(plane, name, shard_id, files)
        else:
            await restore_replica(plane, name, shard_id, files, priority)
    return True


async def recover(request: Request, ctx: ApiContext) -> Any:
    """``PUT /collections/{name}/snapshots/recover``."""
    plane, name = _plane(ctx), str(request.path_params["name"])
    body = await _json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("location"), str):
        raise ApiError(400, 'Bad request: body must be {"location": "file:///…" or URL}')
    priority = parse_priority(body.get("priority"))
    _collection(plane, name)
    data = await _fetch(body["location"], body.get("api_key"))
    return await recover_collection(plane, name, data, priority, body.get("checksum"))


async def uploaded(request: Request) -> bytes:
    """The multipart field ``snapshot`` of an upload (Qdrant's upload routes)."""
    try:
        form = await request.form(max_files=1, max_fields=0)
    except HTTPException as exc:
        raise ApiError(
            400, f"Bad request: the upload is not valid multipart: {exc.detail}"
        ) from None
    try:
        field = form.get("snapshot")
        if not isinstance(field, UploadFile):
            raise ApiError(400, "Bad request: upload the archive as the multipart file field "
                           "`snapshot`")  # fmt: skip
        if field.size is not None and field.size > SNAPSHOT_BYTES_MAX:
            raise ApiError(400, "Bad request: the uploaded snapshot is too large")
        return await field.read()
    finally:
        await form.close()


async def upload(request: Request, ctx: ApiContext) -> Any:
    """``POST /collections/{name}/snapshots/upload?priority=&checksum=``."""
    plane, name = _plane(ctx), str(request.path_params["name"])
    priority = parse_priority(request.query_params.get("priority"))
    _collection(plane, name)
    data = await uploaded(request)
    checksum = request.query_params.get("checksum")
    return await recover_collection(plane, name, data, priority, checksum)


def snapshot_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The snapshot routes, bound to ``ctx``."""
    base = "/collections/{name}/snapshots"
    return [
        Route(base + "/recover", endpoint(recover, ctx), methods=["PUT"]),
        Route(base + "/upload", endpoint(upload, ctx), methods=["POST"]),
        Route(base, endpoint(create, ctx), methods=["POST"]),
        Route(base, endpoint(list_snapshots, ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", download_endpoint(_snapshot_path, ctx), methods=["GET"]),
        Route(base + "/{snapshot_name}", endpoint(delete, ctx), methods=["DELETE"]),
    ]


def download_endpoint(
    locate: Callable[[Request, ApiContext], Path], ctx: ApiContext
) -> Callable[[Request], Awaitable[Response]]:
    """A route serving the file ``locate`` finds (or its error envelope)."""

    async def serve(request: Request) -> Response:
        try:
            path = locate(request, ctx)
        except ApiError as exc:
            return error(exc.status_code, exc.message, 0.0)
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    return serve

"""REST routes for collections and points, in Qdrant's shapes (what ``qdrant-client`` calls).

Rules:

* Routes: ``GET /collections``; ``PUT|PATCH|GET|DELETE /collections/{name}``;
  ``GET /collections/{name}/exists``; ``GET /collections/{name}/cluster``;
  ``PUT /collections/{name}/points`` (upsert); ``POST /collections/{name}/points`` (retrieve);
  ``POST …/points/delete|count|scroll|query|query/batch|search``.
* Query parameters: ``wait`` (``true``/``false``, default false as in Qdrant), ``timeout``
  (seconds), ``ordering`` (checked and accepted: every write is sent to every replica) and, on
  the reads (retrieve, scroll, count, query, query/batch, search), ``consistency``: a positive
  integer or ``majority``, ``quorum``, ``all`` (default 1), handed to the router, which asks as
  many replicas of each shard as it needs (:mod:`refimpl.replication.reads`). Anything else is
  a 400 saying what is accepted; a read that cannot get enough replicas is a 503 with
  ``Retry-After`` (Qdrant answers 500 there, with the same wording).
* Bodies are JSON of at most :data:`BODY_BYTES_MAX` bytes; anything else is a 4xx envelope
  whose message says what to fix. Bad input is found before any shard is touched. An upsert
  body goes to the router undecoded: it decodes and checks it in one worker thread.
* ``POST …/points/search`` is the legacy search call: it is answered as a query with
  ``{"vector": …}`` renamed to ``query``, returning a bare list of scored points.

Theory of operation: each handler decodes the body, calls the peer's data plane
(:mod:`refimpl.peer.data_plane`) and returns the ``result``; :func:`refimpl.api.app.endpoint`
puts it in the envelope and maps errors to status codes.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from refimpl.api.app import RETRY_AFTER_S, ApiContext, ApiError, endpoint
from refimpl.api.cluster_ops import cluster_ops_routes
from refimpl.api.snapshots import snapshot_routes
from refimpl.peer.data_plane import DataPlane
from refimpl.peer.router import ShardUnavailableError
from refimpl.points import BadRequest, decode_body
from refimpl.replication import (
    InvalidReadConsistencyError,
    ReadConsistency,
    parse_read_consistency,
)

__all__ = ["BODY_BYTES_MAX", "data_routes"]

BODY_BYTES_MAX = 64 * 1024 * 1024
"""Largest request body (Qdrant's ``service.max_request_size_mb`` is 32 by default)."""
BODY_BYTES_INLINE_MAX = 64 * 1024
"""Bodies larger than this are decoded in a worker thread."""
DEFAULT_TIMEOUT_S = 30.0
_ORDERING = ("weak", "medium", "strong")

Call = Callable[[Request, DataPlane], Awaitable[Any]]


def _plane(ctx: ApiContext) -> DataPlane:
    assert ctx.plane is not None, "data routes are only built with a data plane"
    return ctx.plane


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > BODY_BYTES_MAX:
        raise ApiError(413, f"Bad request: body of {declared} bytes is over {BODY_BYTES_MAX}")
    raw = await request.body()
    if len(raw) > BODY_BYTES_MAX:
        raise ApiError(413, f"Bad request: body of {len(raw)} bytes is over {BODY_BYTES_MAX}")
    return raw


async def _body(request: Request) -> Any:
    raw = await _raw_body(request)
    if len(raw) < BODY_BYTES_INLINE_MAX:
        return decode_body(raw)
    # A big body takes tens of milliseconds to decode: keep the event loop (and with it
    # this peer's Raft ticks) free meanwhile.
    return await trio.to_thread.run_sync(decode_body, raw)


def _flag(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, f"Bad request: query parameter `{name}` must be true or false")
    return raw.lower() == "true"


def _timeout(request: Request) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"Bad request: `timeout` must be seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ApiError(400, "Bad request: `timeout` must be in (0, 3600] seconds")
    return value


def _consistency(request: Request) -> ReadConsistency:
    """The ``consistency`` query parameter (1 when absent)."""
    raw = request.query_params.get("consistency")
    if raw is None:
        return 1
    try:
        return parse_read_consistency(raw)
    except InvalidReadConsistencyError as exc:
        raise ApiError(
            400, "Bad request: query parameter `consistency` must be a positive integer, "
            f"majority, quorum or all ({exc})",
        ) from None  # fmt: skip


def _check_read_params(request: Request) -> None:
    _consistency(request)
    ordering = request.query_params.get("ordering")
    if ordering is not None and ordering not in _ORDERING:
        raise ApiError(400, "Bad request: `ordering` must be weak, medium or strong")


def _wrap(call: Call) -> Callable[[Request, ApiContext], Awaitable[Any]]:
    async def handler(request: Request, ctx: ApiContext) -> Any:
        try:
            _check_read_params(request)
            return await call(request, _plane(ctx))
        except BadRequest as exc:
            raise ApiError(exc.status_code, str(exc)) from None
        except ShardUnavailableError as exc:
            retry = RETRY_AFTER_S if exc.status_code == 503 else None
            raise ApiError(exc.status_code, exc.message, retry) from None

    return handler


def _name(request: Request) -> str:
    return str(request.path_params["name"])


# --------------------------------------------------------------- collections


async def list_collections(request: Request, plane: DataPlane) -> Any:
    return {"collections": [{"name": n} for n in plane.collections.names()]}


async def create_collection(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.collections.create(_name(request), body, _timeout(request))


async def update_collection(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.collections.update(_name(request), body, _timeout(request))


async def get_collection(request: Request, plane: DataPlane) -> Any:
    return await plane.collections.info(_name(request))


async def delete_collection(request: Request, plane: DataPlane) -> Any:
    return await plane.collections.delete(_name(request), _timeout(request))


async def collection_exists(request: Request, plane: DataPlane) -> Any:
    return {"exists": _name(request) in plane.collections.names()}


async def collection_cluster(request: Request, plane: DataPlane) -> Any:
    info = plane.collections.cluster_info(_name(request))
    # As Qdrant, the source peer of a transfer says how far it got (facts §7.4).
    comments = plane.transfers.comments()
    for t in info["shard_transfers"]:
        comment = comments.get((_name(request), t["shard_id"]))
        if comment is not None and t["from"] == plane.peer.id:
            t["comment"] = comment
    return info


# -------------------------------------------------------------------- points


async def upsert_points(request: Request, plane: DataPlane) -> Any:
    # The raw bytes: the router decodes them in the worker thread that checks the batch.
    raw = await _raw_body(request)
    return await plane.router.upsert(_name(request), raw, _flag(request, "wait", False))


async def delete_points(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.delete(_name(request), body, _flag(request, "wait", False))


async def retrieve_points(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.retrieve(_name(request), body, _consistency(request))


async def count_points(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.count(_name(request), body, _consistency(request))


async def scroll_points(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.scroll(_name(request), body, _consistency(request))


async def query_points(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.query(_name(request), body, _consistency(request))


async def query_batch(request: Request, plane: DataPlane) -> Any:
    body = await _body(request)
    return await plane.router.query_batch(_name(request), body, _consistency(request))


async def search_points(request: Request, plane: DataPlane) -> Any:
    """The legacy ``/points/search``: ``vector`` instead of ``query``, a bare list back."""
    body = await _body(request)
    if not isinstance(body, dict) or "vector" not in body:
        raise ApiError(400, "Json deserialize error: missing field `vector`")
    rest = {k: v for k, v in body.items() if k != "vector"}
    query = {**rest, "query": body["vector"]}
    answer = await plane.router.query(_name(request), query, _consistency(request))
    return answer["points"]


def data_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The collection and points routes, bound to ``ctx``'s data plane."""
    table: list[tuple[str, Call, str]] = [
        ("/collections", list_collections, "GET"),
        ("/collections/{name}", create_collection, "PUT"),
        ("/collections/{name}", update_collection, "PATCH"),
        ("/collections/{name}", get_collection, "GET"),
        ("/collections/{name}", delete_collection, "DELETE"),
        ("/collections/{name}/exists", collection_exists, "GET"),
        ("/collections/{name}/cluster", collection_cluster, "GET"),
        ("/collections/{name}/points", upsert_points, "PUT"),
        ("/collections/{name}/points", retrieve_points, "POST"),
        ("/collections/{name}/points/delete", delete_points, "POST"),
        ("/collections/{name}/points/count", count_points, "POST"),
        ("/collections/{name}/points/scroll", scroll_points, "POST"),
        ("/collections/{name}/points/query", query_points, "POST"),
        ("/collections/{name}/points/query/batch", query_batch, "POST"),
        ("/collections/{name}/points/search", search_points, "POST"),
    ]
    routes = [Route(path, endpoint(_wrap(call), ctx), methods=[m]) for path, call, m in table]
    # POST …/cluster: refimpl.api.cluster_ops; …/snapshots: refimpl.api.snapshots
    return [*routes, *cluster_ops_routes(ctx), *snapshot_routes(ctx)]

"""The REST API: Qdrant's cluster endpoints and envelopes on Starlette, served under trio.

Rules:

* Every JSON answer uses Qdrant's envelope: success ``{"result": …, "status": "ok",
  "time": seconds}``; error ``{"status": {"error": "…"}, "time": seconds}`` with the HTTP code
  Qdrant uses (400 bad input, 404 unknown route or peer, 405 standalone mode, 503 no leader).
  ``GET /`` is the exception: it answers ``{"title", "version"}`` at the top level, which is
  where the official client reads the server version.
* Nothing a client sends can produce a 500: malformed JSON, unknown routes and wrong methods are
  4xx envelopes. A 503 (no leader, proposal timed out) carries ``Retry-After`` — the spec's
  "collection update operations will be denied" while the cluster is in transition.
* Handlers never touch the Raft node directly; they call :class:`refimpl.peer.node.Peer`
  methods, which run on the same trio loop.

Theory of operation: :func:`create_app` builds a Starlette app around an :class:`ApiContext`;
:mod:`refimpl.peer.runner` serves it with hypercorn's trio worker. Other packages add their own
routes through ``extra_routes``.
"""

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from refimpl.ids import PeerId
from refimpl.peer.data_plane import DataPlane
from refimpl.peer.node import NoLeaderError, Peer, ProposalError, ProposalRejectedError
from refimpl.peer.state import metadata_command
from refimpl.raft import ConfChange, ConfChangeKind

__all__ = ["QDRANT_VERSION", "ApiContext", "ApiError", "create_app", "endpoint", "error", "ok"]

QDRANT_VERSION = "1.19.0"
"""The Qdrant version we answer with: the official client warns unless it is within one minor."""
TITLE = "qdrant - vector search engine (refimpl)"
RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the handlers need: the peer, and whether distributed mode is on."""

    peer: Peer
    cluster_enabled: bool
    plane: DataPlane | None = None
    """Collections and points (absent in tests of the cluster endpoints alone)."""


class ApiError(Exception):
    """An error answer: HTTP ``status_code`` and the envelope's message."""

    def __init__(self, status_code: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.retry_after_s = retry_after_s


def ok(result: Any, started: float) -> JSONResponse:
    """A success envelope."""
    return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started})


def error(
    status_code: int, message: str, started: float, retry_after_s: int | None = None
) -> JSONResponse:
    """An error envelope (no ``result`` key, as Qdrant)."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    body = {"status": {"error": message}, "time": time.perf_counter() - started}
    return JSONResponse(body, status_code=status_code, headers=headers)


Handler = Callable[[Request, ApiContext], Awaitable[Any]]


def endpoint(handler: Handler, ctx: ApiContext) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler returning a result into the envelope, mapping errors to 4xx/503."""

    async def serve(request: Request) -> Response:
        started = time.perf_counter()
        try:
            result = await handler(request, ctx)
            rejected = _rejection(result)
            if rejected is not None:
                return error(*rejected, started)
            return ok(result, started)
        except ApiError as exc:
            return error(exc.status_code, exc.message, started, exc.retry_after_s)
        except NoLeaderError as exc:
            return error(503, f"Service unavailable: {exc}", started, RETRY_AFTER_S)
        except ProposalRejectedError as exc:
            return error(400, f"Bad request: {exc}", started)
        except ProposalError as exc:
            status = 503 if exc.retryable else 400
            retry = RETRY_AFTER_S if exc.retryable else None
            return error(status, f"Service unavailable: {exc}", started, retry)

    return serve


def _rejection(result: Any) -> tuple[int, str] | None:
    """An operation the cluster state refused: ``{"error", "status"}`` → (HTTP code, message)."""
    if not (
        isinstance(result, dict) and "error" in result and isinstance(result.get("status"), int)
    ):
        return None
    status: int = result["status"]
    prefix = "Not found: " if status == 404 else "Bad request: "
    return status, prefix + str(result["error"])


# ---------------------------------------------------------------- handlers


async def root(request: Request) -> Response:
    """``GET /``: title and version at the top level (the client's version check reads it)."""
    return JSONResponse({"title": TITLE, "version": QDRANT_VERSION, "commit": None})


async def get_cluster(request: Request, ctx: ApiContext) -> Any:
    """``GET /cluster``: this peer's view of the cluster (``{"status": "disabled"}`` standalone)."""
    if not ctx.cluster_enabled:
        return {"status": "disabled"}
    return ctx.peer.cluster_info()


def _query_bool(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise ApiError(
            400, f"Bad request: query parameter {name} must be true or false, got {raw!r}"
        )
    return raw == "true"


def _query_timeout(request: Request) -> float:
    raw = request.query_params.get("timeout", "10")
    try:
        timeout = float(raw)
    except ValueError:
        raise ApiError(
            400, f"Bad request: timeout must be a number of seconds, got {raw!r}"
        ) from None
    if not 1 <= timeout <= 3600:
        raise ApiError(400, "Bad request: timeout must be between 1 and 3600 seconds")
    return timeout


async def remove_peer(request: Request, ctx: ApiContext) -> Any:
    """``DELETE /cluster/peer/{peer_id}?force=&timeout=``: remove a peer through consensus."""
    if not ctx.cluster_enabled:
        raise ApiError(405, "Qdrant is running in standalone mode")
    raw_id = request.path_params["peer_id"]
    try:
        peer_id = PeerId(int(raw_id))
    except ValueError:
        raise ApiError(400, f"Bad request: peer id must be an integer, got {raw_id!r}") from None
    force, timeout = _query_bool(request, "force"), _query_timeout(request)
    peer = ctx.peer
    if peer_id not in peer.addresses() and peer_id not in peer.node.membership.members:
        raise ApiError(404, f"Not found: peer {peer_id} is not part of the cluster")
    # The removal guard: a peer holding replicas keeps data nobody else may have.
    if not force and peer.state.peer_has_shards(peer_id):
        raise ApiError(400, f"Bad request: Cannot remove peer {peer_id} as there are shards on it")
    await peer.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_PEER, peer_id), timeout)
    return True


async def list_metadata_keys(request: Request, ctx: ApiContext) -> Any:
    """``GET /cluster/metadata/keys``: the keys of the replicated metadata store."""
    return sorted(ctx.peer.state.metadata())


async def get_metadata_key(request: Request, ctx: ApiContext) -> Any:
    """``GET /cluster/metadata/keys/{key}``: one value (null if absent, as Qdrant)."""
    return ctx.peer.state.metadata().get(request.path_params["key"])


async def put_metadata_key(request: Request, ctx: ApiContext) -> Any:
    """``PUT /cluster/metadata/keys/{key}``: set a value through consensus."""
    value = await _json_body(request)
    return await ctx.peer.propose(metadata_command(request.path_params["key"], value))


async def delete_metadata_key(request: Request, ctx: ApiContext) -> Any:
    """``DELETE /cluster/metadata/keys/{key}``: delete a value through consensus."""
    return await ctx.peer.propose(metadata_command(request.path_params["key"], None))


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"Bad request: body is not valid JSON: {exc}") from None


def _health(text: str) -> Callable[[Request], Awaitable[Response]]:
    async def health(request: Request) -> Response:
        return PlainTextResponse(text)

    return health


def _readyz(ctx: ApiContext) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        peer = ctx.peer
        if ctx.cluster_enabled and (peer.stopped or peer.node.leader_id is None):
            return PlainTextResponse("consensus has no leader", status_code=503)
        return PlainTextResponse("all shards are ready")

    return readyz


# ------------------------------------------------------------- the app


def create_app(ctx: ApiContext, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The Starlette app serving the cluster API (plus ``extra_routes``)."""
    from refimpl.api.data import data_routes
    from refimpl.api.openapi import openapi_document
    from refimpl.api.shard_snapshots import shard_snapshot_routes

    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, endpoint(handler, ctx), methods=[method])

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(QDRANT_VERSION, with_data=ctx.plane is not None))

    routes: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        route("/cluster", get_cluster, "GET"),
        route("/cluster/peer/{peer_id}", remove_peer, "DELETE"),
        route("/cluster/metadata/keys", list_metadata_keys, "GET"),
        route("/cluster/metadata/keys/{key}", get_metadata_key, "GET"),
        route("/cluster/metadata/keys/{key}", put_metadata_key, "PUT"),
        route("/cluster/metadata/keys/{key}", delete_metadata_key, "DELETE"),
        Route("/healthz", _health("healthz check passed"), methods=["GET"]),
        Route("/livez", _health("livez check passed"), methods=["GET"]),
        Route("/readyz", _readyz(ctx), methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *(data_routes(ctx) if ctx.plane is not None else ()),
        *(shard_snapshot_routes(ctx) if ctx.plane is not None else ()),
        *extra_routes,
    ]
    return Starlette(routes=routes, exception_handlers=_exception_handlers())


def _exception_handlers() -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        started = time.perf_counter()
        if exc.status_code == 404:
            message = f"Not found: no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Bad request: method {request.method} not allowed on {request.url.path}"
        else:
            message = f"Bad request: {exc.detail}"
        return error(exc.status_code, message, started)

    async def internal_error(request: Request, exc: Exception) -> Response:
        return error(
            500, f"Service internal error: {type(exc).__name__}: {exc}", time.perf_counter()
        )

    return {HTTPException: http_error, Exception: internal_error}

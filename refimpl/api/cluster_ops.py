"""``POST /collections/{name}/cluster``: move, replicate, drop and abort, in Qdrant's shapes.

Rules (spec "Cluster scaling"; facts §7.5, §6.2):

* The body holds exactly one of ``move_shard``, ``replicate_shard`` (``{"shard_id",
  "from_peer_id", "to_peer_id", "method"?}``), ``abort_transfer`` (the same without method)
  or ``drop_replica`` (``{"shard_id", "peer_id"}``). Other Qdrant operations (sharding keys,
  resharding, ``restart_transfer``) are refused with 400 and say they are not implemented.
* ``method`` is ``stream_records`` (the default here, Qdrant's legacy default), ``snapshot``
  or ``wal_delta`` (:mod:`refimpl.peer.transfers`); anything else is refused with 400 naming
  the three.
* Checks before proposing, with Qdrant's wording: an unknown collection is 404, a shard that
  does not exist or an unknown peer 400, the same peer as source and target 400, aborting a
  transfer that does not exist 404. Everything else is decided when the operation is applied
  (the source must be Active, no conflicting transfer, never drop the last active replica),
  and a refusal comes back as 400 with the reason.
* The answer is ``true`` once the operation is applied on this peer — not when the transfer is
  done; ``GET /collections/{name}/cluster`` shows its progress.

Theory of operation: parse, check against this peer's view of the state, build one
:mod:`refimpl.consensus` operation, propose it and wait for it to apply here.
"""

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from refimpl.api.app import ApiContext, ApiError, _json_body, endpoint
from refimpl.consensus import (
    AbortTransfer,
    ClusterState,
    Operation,
    RemoveReplica,
    ShardTransfer,
    StartTransfer,
    TransferMethod,
    encode_operation,
)
from refimpl.ids import PeerId, ShardId

__all__ = ["cluster_ops_routes", "parse_cluster_operation"]

_TRANSFERS = ("move_shard", "replicate_shard", "abort_transfer")
_NOT_IMPLEMENTED = (
    "restart_transfer",
    "create_sharding_key",
    "drop_sharding_key",
    "start_resharding",
    "abort_resharding",
    "replicate_points",
)
DEFAULT_TIMEOUT_S = 30.0


def _int_field(doc: Mapping[str, Any], key: str, where: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(400, f"Bad request: `{where}.{key}` must be a non-negative integer")
    return value


def _method(doc: Mapping[str, Any], where: str) -> TransferMethod:
    raw = doc.get("method")
    if raw is None:
        return TransferMethod.STREAM_RECORDS
    for method in TransferMethod:
        if raw == method.value:
            return method
    known = ", ".join(m.value for m in TransferMethod)
    raise ApiError(400, f"Bad request: `{where}.method` must be one of {known}, not {raw!r}")


def parse_cluster_operation(name: str, body: object, state: ClusterState) -> Operation:
    """The consensus operation a ``POST /collections/{name}/cluster`` body asks for, checked
    against ``state`` (see the module rules); raises :class:`ApiError`."""
    coll = state.collections.get(name)
    if coll is None:
        raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
    if not isinstance(body, dict) or len(body) != 1:
        raise ApiError(400, "Bad request: the body must hold exactly one of move_shard, "
                       "replicate_shard, drop_replica, abort_transfer")  # fmt: skip
    ((kind, doc),) = body.items()
    if kind in _NOT_IMPLEMENTED:
        raise ApiError(400, f"Bad request: `{kind}` is not implemented by this implementation")
    if kind not in (*_TRANSFERS, "drop_replica") or not isinstance(doc, dict):
        raise ApiError(400, f"Bad request: unknown cluster operation `{kind}`")
    shard_id = ShardId(_int_field(doc, "shard_id", kind))
    if shard_id not in coll.replicas:
        raise ApiError(400, f"Bad request: Shard {shard_id} of {name} does not exist")
    if kind == "drop_replica":
        peer = PeerId(_int_field(doc, "peer_id", kind))
        _known_peer(peer, state)
        if peer not in coll.replicas[shard_id]:
            raise ApiError(400, f"Bad request: Shard {shard_id} of {name} has no replica "
                           f"on peer {peer}")  # fmt: skip
        return RemoveReplica(name, shard_id, peer)
    source = PeerId(_int_field(doc, "from_peer_id", kind))
    target = PeerId(_int_field(doc, "to_peer_id", kind))
    method = _method(doc, kind) if kind != "abort_transfer" else TransferMethod.STREAM_RECORDS
    for peer in (source, target):
        _known_peer(peer, state)
    if source == target:
        raise ApiError(400, "Bad request: from_peer_id and to_peer_id must differ")
    if kind == "abort_transfer":
        if not any(t.key == (shard_id, source, target) for t in coll.transfers):
            raise ApiError(404, f"Not found: there is no transfer of shard {shard_id} from "
                           f"{source} to {target}")  # fmt: skip
        return AbortTransfer(name, shard_id, source, target, "user request")
    if source not in coll.replicas[shard_id]:
        raise ApiError(400, f"Bad request: Shard {shard_id} of {name} has no replica on peer "
                       f"{source}")  # fmt: skip
    transfer = ShardTransfer(shard_id, source, target, kind == "replicate_shard", method)
    return StartTransfer(name, transfer)


def _known_peer(peer: PeerId, state: ClusterState) -> None:
    if peer not in state.peers:
        raise ApiError(400, f"Bad request: Peer {peer} does not exist")


def _timeout(request: Request) -> float:
    raw = request.query_params.get("timeout")
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise ApiError(400, "Bad request: `timeout` must be a number of seconds in (0, 3600]")
    return value


async def update_collection_cluster(request: Request, ctx: ApiContext) -> Any:
    """``POST /collections/{name}/cluster?timeout=``."""
    if not ctx.cluster_enabled:
        raise ApiError(405, "Bad request: distributed mode is disabled")
    assert ctx.plane is not None, "these routes are only built with a data plane"
    body = await _json_body(request)
    state = ctx.plane.collections.view.cluster
    operation = parse_cluster_operation(str(request.path_params["name"]), body, state)
    # A refusal comes back as {"error", "status"}: endpoint() turns it into a 4xx answer.
    return await ctx.peer.propose(encode_operation(operation), _timeout(request))


def cluster_ops_routes(ctx: ApiContext) -> list[BaseRoute]:
    """The route, bound to ``ctx``."""
    return [
        Route(
            "/collections/{name}/cluster",
            endpoint(update_collection_cluster, ctx),
            methods=["POST"],
        )
    ]

"""Collections through consensus: create, update and delete, and the views the REST API shows.

Rules (spec "Sharding" and "Raft"; facts §2, §7.4, §7.6):

* ``PUT /collections/{name}`` is checked completely here (vector size and distance, shard and
  replica counts, ``write_consistency_factor`` — the spec's ``write_concern_factor`` is accepted
  as the same setting —, ``hnsw_config``, ``optimizers_config.indexing_threshold``); then this
  peer computes the placement with :func:`refimpl.consensus.plan_placement` over the peers it
  knows and proposes one ``CreateCollection`` carrying it, so every peer applies the same one.
* ``shard_number`` defaults to the number of peers (Qdrant: one shard per peer);
  ``replication_factor`` to 1, capped at the number of peers by the placement.
* Every replica starts ``Initializing``; the peer holding it proposes ``activated`` once it has
  opened its shard (:mod:`refimpl.peer.shards`). The create call waits (up to its timeout) until
  every replica is ``Active`` here, so points can be written as soon as it returns.
* ``DELETE`` of a missing collection answers ``false``, as Qdrant does (which keeps the
  client's ``recreate_collection`` working); other calls on a missing collection answer 404.

Theory of operation: pure parsers and JSON builders, plus :class:`Collections`, whose async
methods propose operations through :meth:`refimpl.peer.node.Peer.propose`.
"""

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import trio

from refimpl.consensus import (
    ClusterState,
    CollectionConfig,
    CollectionState,
    CreateCollection,
    DeleteCollection,
    Distance,
    HnswConfig,
    UpdateCollectionParams,
    VectorParams,
    collection_name_problem,
    config_problems,
    encode_operation,
    plan_placement,
)
from refimpl.ids import ShardId
from refimpl.peer.node import Peer
from refimpl.peer.router import ClusterView, CollectionNotFoundError, Router, ShardUnavailableError
from refimpl.peer.shards import LocalShards
from refimpl.points import BadRequest
from refimpl.points._json import as_count, as_object, only_keys
from refimpl.points.errors import deserialize_error, wrong_input
from refimpl.replication import ReplicaState

__all__ = [
    "Collections",
    "cluster_info_json",
    "collection_info_json",
    "parse_create_collection",
    "parse_update_collection",
]

_CREATE_KEYS = (
    "vectors", "shard_number", "replication_factor", "write_consistency_factor",
    "write_concern_factor", "hnsw_config", "optimizers_config", "on_disk_payload", "wal_config",
    "quantization_config", "sparse_vectors", "sharding_method", "strict_mode_config",
    "metadata", "init_from", "payload",
)  # fmt: skip
_NULL_ONLY = ("quantization_config", "init_from")
COUNT_MAX = 1 << 20


class AlreadyExistsError(BadRequest):
    """Qdrant answers 409 for a name that is taken."""

    status_code = 409


def _vectors(raw: object) -> VectorParams:
    doc = as_object(raw, "vectors")
    if "size" not in doc and len(doc) == 1 and isinstance(next(iter(doc.values())), dict):
        raise wrong_input(
            "named vectors are not supported by this implementation; "
            'send "vectors": {"size": <int>, "distance": "Cosine"}'
        )
    only_keys(doc, ("size", "distance", "on_disk", "hnsw_config", "datatype"), "vectors")
    size = as_count(doc.get("size"), "vectors.size", 0, low=1, high=COUNT_MAX)
    distance = doc.get("distance")
    try:
        return VectorParams(size, Distance(distance))
    except ValueError:
        raise deserialize_error(
            f"`vectors.distance` must be one of Cosine, Euclid, Dot, Manhattan; got {distance!r}"
        ) from None


def _hnsw(raw: object, base: HnswConfig) -> HnswConfig:
    if raw is None:
        return base
    doc = as_object(raw, "hnsw_config")
    allowed = ("m", "ef_construct", "full_scan_threshold", "max_indexing_threads", "on_disk",
               "payload_m", "inline_storage")  # fmt: skip
    only_keys(doc, allowed, "hnsw_config")
    return HnswConfig(
        m=as_count(doc.get("m"), "hnsw_config.m", base.m, low=0, high=COUNT_MAX),
        ef_construct=as_count(
            doc.get("ef_construct"), "hnsw_config.ef_construct", base.ef_construct,
            low=0, high=COUNT_MAX,
        ),
        full_scan_threshold=as_count(
            doc.get("full_scan_threshold"), "hnsw_config.full_scan_threshold",
            base.full_scan_threshold, low=0, high=1 << 40,
        ),
    )  # fmt: skip


def _indexing_threshold(raw: object, default: int) -> int:
    if raw is None:
        return default
    doc = as_object(raw, "optimizers_config")
    value = doc.get("indexing_threshold")
    where = "optimizers_config.indexing_threshold"
    return as_count(value, where, default, low=0, high=1 << 30)


def _write_factor(doc: Mapping[str, Any]) -> int:
    """``write_consistency_factor``, or the spec's name for it, ``write_concern_factor``."""
    wcf = doc.get("write_consistency_factor")
    alias = doc.get("write_concern_factor")
    if wcf is not None and alias is not None and wcf != alias:
        raise wrong_input(
            "write_concern_factor is another name for write_consistency_factor; "
            f"they disagree ({alias} vs {wcf}): send one of them"
        )
    raw = wcf if wcf is not None else alias
    return as_count(raw, "write_consistency_factor", 1, low=1, high=COUNT_MAX)


def parse_create_collection(body: object, peers: int) -> CollectionConfig:
    """The config asked for by a ``PUT /collections/{name}`` body (BadRequest if unusable)."""
    doc = as_object({} if body is None else body, "body")
    only_keys(doc, _CREATE_KEYS, "")
    for name in _NULL_ONLY:
        if doc.get(name) is not None:
            raise wrong_input(f"`{name}` is not supported by this implementation; leave it out")
    if doc.get("sparse_vectors"):
        raise wrong_input("sparse vectors are not supported by this implementation")
    if doc.get("sharding_method") not in (None, "auto"):
        raise wrong_input('only `"sharding_method": "auto"` is supported')
    if "vectors" not in doc:
        raise deserialize_error('missing field `vectors` ({"size": <int>, "distance": ...})')
    config = CollectionConfig(
        vectors=_vectors(doc["vectors"]),
        shard_number=as_count(doc.get("shard_number"), "shard_number", max(1, peers),
                              low=1, high=COUNT_MAX),
        replication_factor=as_count(doc.get("replication_factor"), "replication_factor", 1,
                                    low=1, high=COUNT_MAX),
        write_consistency_factor=_write_factor(doc),
        hnsw_config=_hnsw(doc.get("hnsw_config"), HnswConfig()),
        indexing_threshold_kb=_indexing_threshold(doc.get("optimizers_config"), 10_000),
    )  # fmt: skip
    problems = config_problems(config)
    if problems:
        raise wrong_input("; ".join(problems))
    return config


def parse_update_collection(name: str, body: object, current: CollectionConfig) -> (
    UpdateCollectionParams
):  # fmt: skip
    """The change asked for by a ``PATCH /collections/{name}`` body."""
    doc = as_object({} if body is None else body, "body")
    only_keys(doc, ("params", "hnsw_config", "optimizers_config", "vectors",
                    "quantization_config", "sparse_vectors", "strict_mode_config",
                    "metadata"), "")  # fmt: skip
    if doc.get("optimizers_config") is not None or doc.get("vectors") is not None:
        raise wrong_input("changing `vectors` or `optimizers_config` is not supported here")
    params = as_object(doc.get("params") or {}, "params")
    only_keys(params, ("replication_factor", "write_consistency_factor",
                       "write_concern_factor", "read_fan_out_factor",
                       "read_fan_out_delay_ms", "on_disk_payload"), "params")  # fmt: skip

    def count(key: str) -> int | None:
        value = params.get(key)
        return None if value is None else as_count(value, f"params.{key}", 1, low=0, high=1 << 20)

    wcf = _write_factor(params) if any(
        params.get(k) is not None for k in ("write_consistency_factor", "write_concern_factor")
    ) else None  # fmt: skip
    hnsw = doc.get("hnsw_config")
    update = UpdateCollectionParams(
        name,
        write_consistency_factor=wcf,
        replication_factor=count("replication_factor"),
        read_fan_out_factor=count("read_fan_out_factor"),
        hnsw_config=None if hnsw is None else _hnsw(hnsw, current.hnsw_config),
        read_fan_out_delay_ms=count("read_fan_out_delay_ms"),
    )
    trial = replace(
        current,
        replication_factor=update.replication_factor or current.replication_factor,
        write_consistency_factor=wcf or current.write_consistency_factor,
        hnsw_config=update.hnsw_config or current.hnsw_config,
    )
    problems = config_problems(trial)
    if problems:
        raise wrong_input("; ".join(problems))
    return update


def _status(coll: CollectionState) -> str:
    states = [s for replicas in coll.replicas.values() for s in replicas.values()]
    return "green" if all(s is ReplicaState.Active for s in states) else "yellow"


def collection_info_json(
    coll: CollectionState, points_count: int | None, indexed: int, local_shards: int
) -> dict[str, Any]:
    """``GET /collections/{name}``'s result (Qdrant's CollectionInfo)."""
    c = coll.config
    return {
        "status": _status(coll),
        "optimizer_status": "ok",
        "indexed_vectors_count": indexed,
        "points_count": points_count,
        "segments_count": local_shards,
        "config": {
            "params": {
                "vectors": {"size": c.vectors.size, "distance": c.vectors.distance.value},
                "shard_number": c.shard_number,
                "replication_factor": c.replication_factor,
                "write_consistency_factor": c.write_consistency_factor,
                "read_fan_out_factor": c.read_fan_out_factor,
                "read_fan_out_delay_ms": c.read_fan_out_delay_ms,
                "on_disk_payload": False,
            },
            "hnsw_config": {
                "m": c.hnsw_config.m, "ef_construct": c.hnsw_config.ef_construct,
                "full_scan_threshold": c.hnsw_config.full_scan_threshold,
                "max_indexing_threads": 0, "on_disk": False,
            },
            "optimizer_config": {
                "deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                "default_segment_number": 0, "max_segment_size": None,
                "indexing_threshold": c.indexing_threshold_kb, "flush_interval_sec": 5,
                "max_optimization_threads": None,
            },
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
        },
        "payload_schema": {},
    }  # fmt: skip


def cluster_info_json(
    peer_id: int, coll: CollectionState, local_counts: Mapping[ShardId, int]
) -> dict[str, Any]:
    """``GET /collections/{name}/cluster``'s result (facts §7.4)."""
    local, remote = [], []
    for shard_id, replicas in sorted(coll.replicas.items()):
        for peer, state in sorted(replicas.items()):
            if peer == peer_id:
                count = local_counts.get(shard_id, 0)
                local.append({"shard_id": shard_id, "points_count": count, "state": state.value})
            else:
                remote.append({"shard_id": shard_id, "peer_id": peer, "state": state.value})
    transfers = [
        {"shard_id": t.shard_id, "from": t.from_peer, "to": t.to_peer, "sync": t.sync,
         "method": t.method.value}
        for t in coll.transfers
    ]  # fmt: skip
    return {
        "peer_id": peer_id,
        "shard_count": coll.config.shard_number,
        "local_shards": local,
        "remote_shards": remote,
        "shard_transfers": transfers,
    }


class Collections:
    """Collection operations of one peer (see the module rules)."""

    def __init__(self, peer: Peer, view: ClusterView, shards: LocalShards, router: Router):
        self.peer = peer
        self.view = view
        self.shards = shards
        self.router = router

    def _state(self, name: str) -> CollectionState:
        coll = self.view.cluster.collections.get(name)
        if coll is None:
            raise CollectionNotFoundError(name)
        return coll

    async def _propose(self, operation: Any, timeout_s: float) -> None:
        result = await self.peer.propose(encode_operation(operation), timeout_s)
        if isinstance(result, dict) and "error" in result:
            status = int(result.get("status", 400))
            error = (
                AlreadyExistsError(f"Wrong input: {result['error']}")
                if result.get("reason") == "collection_exists"
                else BadRequest(("Not found: " if status == 404 else "Bad request: ")
                                + str(result["error"]))
            )  # fmt: skip
            error.status_code = 409 if isinstance(error, AlreadyExistsError) else status
            raise error

    async def create(self, name: str, body: object, timeout_s: float) -> bool:
        """Create ``name``; return once every replica is Active here (or at the timeout)."""
        problem = collection_name_problem(name)
        if problem is not None:
            raise BadRequest(f"Validation error in path: [{problem}]")
        cluster: ClusterState = self.view.cluster
        if name in cluster.collections:
            raise AlreadyExistsError(f"Wrong input: Collection `{name}` already exists!")
        peers = sorted(cluster.peers) or [self.peer.id]
        config = parse_create_collection(body, len(peers))
        load = {p: cluster.replica_count(p) for p in peers}
        placement = plan_placement(peers, config.shard_number, config.replication_factor, load)
        await self._propose(CreateCollection(name, config, placement), timeout_s)
        with trio.move_on_after(timeout_s):  # created; Active follows in a few ticks
            while not self._all_active(name):
                await trio.sleep(0.02)
        return True

    def _all_active(self, name: str) -> bool:
        coll = self.view.cluster.collections.get(name)
        return coll is None or all(
            s is ReplicaState.Active for r in coll.replicas.values() for s in r.values()
        )

    async def update(self, name: str, body: object, timeout_s: float) -> bool:
        """``PATCH /collections/{name}``."""
        update = parse_update_collection(name, body, self._state(name).config)
        await self._propose(update, timeout_s)
        return True

    async def delete(self, name: str, timeout_s: float) -> bool:
        """``DELETE /collections/{name}``: ``false`` when there was no such collection."""
        if name not in self.view.cluster.collections:
            return False
        await self._propose(DeleteCollection(name), timeout_s)
        return True

    async def info(self, name: str) -> dict[str, Any]:
        """``GET /collections/{name}``; ``points_count`` counts every shard."""
        coll = self._state(name)
        try:
            points: int | None = int((await self.router.count(name, {}))["count"])
        except ShardUnavailableError:
            points = None  # a shard that cannot answer leaves the count unknown
        local = self.shards.of_collection(name)
        indexed = sum(s.indexed_vectors_count for s in local)
        return collection_info_json(coll, points, indexed, len(local))

    def cluster_info(self, name: str) -> dict[str, Any]:
        """``GET /collections/{name}/cluster``."""
        coll = self._state(name)
        counts = {s.shard_id: s.points_count for s in self.shards.of_collection(name)}
        return cluster_info_json(self.peer.id, coll, counts)

    def names(self) -> list[str]:
        """Every collection's name, sorted."""
        return sorted(self.view.cluster.collections)

"""The OpenAPI 3.0 document for the endpoints this package serves (``GET /openapi.json``).

Rules: describe only what we serve, with Qdrant's operation ids and schema names where they
exist (``cluster_status``, ``remove_peer``, ``ClusterStatus``…), so a reader can compare with
Qdrant's own ``openapi.json``. A test checks that every route of the app is documented here.
"""

from typing import Any

__all__ = ["DATA_PATHS", "DOCUMENTED_PATHS", "SHARD_SNAPSHOT_PATHS", "openapi_document"]


def _envelope(result_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "result": result_schema,
            "status": {"type": "string", "example": "ok"},
            "time": {"type": "number", "format": "float"},
        },
    }


def _answer(description: str, result_schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": {
            "description": description,
            "content": {"application/json": {"schema": _envelope(result_schema)}},
        },
        "4XX": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Unavailable"},
    }


_PLAIN = {"200": {"description": "check passed", "content": {"text/plain": {}}}}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_ANY: dict[str, Any] = {}

DOCUMENTED_PATHS: dict[str, dict[str, Any]] = {
    "/": {"get": {"operationId": "root", "summary": "Title and version",
                  "responses": {"200": {"description": "version info"}}}},
    "/cluster": {"get": {"operationId": "cluster_status", "summary": "Cluster status",
                         "responses": _answer("this peer's view", {"$ref": "#/components/schemas/ClusterStatus"})}},
    "/cluster/peer/{peer_id}": {"delete": {
        "operationId": "remove_peer", "summary": "Remove a peer through consensus",
        "parameters": [
            {"name": "peer_id", "in": "path", "required": True, "schema": {"type": "integer"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "default": False}},
            {"name": "timeout", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        ],
        "responses": _answer("removed", {"type": "boolean"})}},
    "/cluster/metadata/keys": {"get": {"operationId": "get_cluster_metadata_keys",
                                       "responses": _answer("keys", {"type": "array", "items": {"type": "string"}})}},
    "/cluster/metadata/keys/{key}": {
        "get": {"operationId": "get_cluster_metadata_key", "parameters": [_KEY],
                "responses": _answer("value or null", _ANY)},
        "put": {"operationId": "update_cluster_metadata_key", "parameters": [_KEY],
                "requestBody": {"content": {"application/json": {"schema": _ANY}}},
                "responses": _answer("applied", _ANY)},
        "delete": {"operationId": "delete_cluster_metadata_key", "parameters": [_KEY],
                   "responses": _answer("applied", _ANY)},
    },
    "/healthz": {"get": {"operationId": "healthz", "responses": _PLAIN}},
    "/livez": {"get": {"operationId": "livez", "responses": _PLAIN}},
    "/readyz": {"get": {"operationId": "readyz", "responses": {
        **_PLAIN, "503": {"description": "no leader known"}}}},
    "/openapi.json": {"get": {"operationId": "openapi", "responses": {"200": {"description": "this document"}}}},
}  # fmt: skip

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_WAIT = {"name": "wait", "in": "query", "schema": {"type": "boolean", "default": False}}
_TIMEOUT = {"name": "timeout", "in": "query", "schema": {"type": "integer", "minimum": 1}}
_CONSISTENCY = {"name": "consistency", "in": "query", "schema": {"type": "string"}}
_SNAPSHOT = {"name": "snapshot_name", "in": "path", "required": True, "schema": {"type": "string"}}
_JSON_BODY = {"content": {"application/json": {"schema": _ANY}}}
_SHARD = {"name": "shard_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_PRIORITY = {
    "name": "priority",
    "in": "query",
    "schema": {"type": "string", "enum": ["snapshot", "no_sync", "replica"]},
}
_CHECKSUM = {"name": "checksum", "in": "query", "schema": {"type": "string"}}
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["snapshot"],
                "properties": {"snapshot": {"type": "string", "format": "binary"}},
            }
        }
    },
}
_UPDATE_RESULT = {"type": "object", "properties": {"operation_id": {"type": "integer"},
                                                   "status": {"type": "string"}}}  # fmt: skip


def _op(op_id: str, summary: str, result: dict[str, Any], *params: dict[str, Any],
        body: bool = False) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"operationId": op_id, "summary": summary,
                           "parameters": [_NAME, *params], "responses": _answer(summary, result)}  # fmt: skip
    if body:
        out["requestBody"] = _JSON_BODY
    return out


def _upload(op_id: str, summary: str, *params: dict[str, Any]) -> dict[str, Any]:
    out = _op(op_id, summary, {"type": "boolean"}, *params, _PRIORITY, _CHECKSUM)
    out["requestBody"] = _UPLOAD_BODY
    return out


_SHARD_BASE = "/collections/{name}/shards/{shard_id}/snapshots"
SHARD_SNAPSHOT_PATHS: dict[str, dict[str, Any]] = {
    _SHARD_BASE: {
        "post": _op("create_shard_snapshot", "Snapshot this peer's replica of a shard", _ANY,
                    _SHARD),
        "get": _op("list_shard_snapshots", "List shard snapshots", _ANY, _SHARD)},
    _SHARD_BASE + "/recover": {
        "put": _op("recover_shard_from_snapshot", "Recover a replica from a file or URL",
                   {"type": "boolean"}, _SHARD, body=True)},
    _SHARD_BASE + "/upload": {
        "post": _upload("recover_shard_from_uploaded_snapshot", "Recover a replica from an "
                        "uploaded snapshot", _SHARD)},
    _SHARD_BASE + "/{snapshot_name}": {
        "get": _op("get_shard_snapshot", "Download a shard snapshot", _ANY, _SHARD, _SNAPSHOT),
        "delete": _op("delete_shard_snapshot", "Delete a shard snapshot", {"type": "boolean"},
                      _SHARD, _SNAPSHOT)},
    "/collections/{name}/shards/{shard_id}/snapshot": {
        "get": _op("stream_shard_snapshot", "A fresh shard snapshot, not kept", _ANY, _SHARD)},
}  # fmt: skip


DATA_PATHS: dict[str, dict[str, Any]] = {
    "/collections": {"get": {"operationId": "get_collections", "summary": "List collections",
                             "responses": _answer("names", _ANY)}},
    "/collections/{name}": {
        "put": _op("create_collection", "Create a collection through consensus",
                   {"type": "boolean"}, _TIMEOUT, body=True),
        "patch": _op("update_collection", "Change collection parameters", {"type": "boolean"},
                     _TIMEOUT, body=True),
        "get": _op("get_collection", "Collection info", _ANY),
        "delete": _op("delete_collection", "Delete a collection", {"type": "boolean"}, _TIMEOUT),
    },
    "/collections/{name}/exists": {"get": _op("collection_exists", "Does it exist", _ANY)},
    "/collections/{name}/cluster": {
        "get": _op("collection_cluster_info", "Shards, replicas and transfers", _ANY),
        "post": _op("update_collection_cluster", "Move, replicate or drop a shard replica; "
                    "abort a transfer", {"type": "boolean"}, _TIMEOUT, body=True)},
    "/collections/{name}/snapshots": {
        "post": _op("create_snapshot", "Snapshot this peer's shards", _ANY),
        "get": _op("list_snapshots", "List snapshots", _ANY)},
    "/collections/{name}/snapshots/recover": {
        "put": _op("recover_from_snapshot", "Recover from a file or URL", {"type": "boolean"},
                   body=True)},
    "/collections/{name}/snapshots/upload": {
        "post": _upload("recover_from_uploaded_snapshot", "Recover from an uploaded snapshot")},
    "/collections/{name}/snapshots/{snapshot_name}": {
        "get": _op("get_snapshot", "Download a snapshot", _ANY, _SNAPSHOT),
        "delete": _op("delete_snapshot", "Delete a snapshot", {"type": "boolean"}, _SNAPSHOT)},
    "/collections/{name}/points": {
        "put": _op("upsert_points", "Upsert points", _UPDATE_RESULT, _WAIT, body=True),
        "post": _op("get_points", "Retrieve points by id", _ANY, _CONSISTENCY, body=True),
    },
    "/collections/{name}/points/delete": {
        "post": _op("delete_points", "Delete by ids or filter", _UPDATE_RESULT, _WAIT, body=True)},
    "/collections/{name}/points/count": {
        "post": _op("count_points", "Count points", _ANY, _CONSISTENCY, body=True)},
    "/collections/{name}/points/scroll": {
        "post": _op("scroll_points", "Page through points by id", _ANY, _CONSISTENCY, body=True)},
    "/collections/{name}/points/query": {
        "post": _op("query_points", "Nearest points", _ANY, _CONSISTENCY, body=True)},
    "/collections/{name}/points/query/batch": {
        "post": _op("query_batch_points", "Several queries", _ANY, _CONSISTENCY, body=True)},
    "/collections/{name}/points/search": {
        "post": _op("search_points", "Legacy search", _ANY, _CONSISTENCY, body=True)},
    **SHARD_SNAPSHOT_PATHS,
}  # fmt: skip

_CLUSTER_STATUS = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["enabled", "disabled"]},
        "peer_id": {"type": "integer"},
        "peers": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"uri": {"type": "string"}}}},
        "raft_info": {"type": "object", "properties": {
            "term": {"type": "integer"}, "commit": {"type": "integer"},
            "pending_operations": {"type": "integer"}, "leader": {"type": "integer", "nullable": True},
            "role": {"type": "string", "enum": ["Follower", "Candidate", "Leader", "PreCandidate"]},
            "is_voter": {"type": "boolean"}}},
        "consensus_thread_status": {"type": "object"},
        "message_send_failures": {"type": "object"},
        "p2p_receive_errors": {"type": "object", "additionalProperties": {"type": "integer"}},
        "p2p_request_connections": {"type": "object",
                                    "additionalProperties": {"type": "integer"}},
    },
}  # fmt: skip


def openapi_document(version: str, with_data: bool = False) -> dict[str, Any]:
    """The whole document (with the collection and points paths when ``with_data``)."""
    error_body = {"type": "object", "properties": {
        "status": {"type": "object", "properties": {"error": {"type": "string"}}},
        "time": {"type": "number"}}}  # fmt: skip
    return {
        "openapi": "3.0.1",
        "info": {"title": "refimpl (Qdrant-compatible cluster API)", "version": version},
        "paths": {**DOCUMENTED_PATHS, **(DATA_PATHS if with_data else {})},
        "components": {
            "schemas": {"ClusterStatus": _CLUSTER_STATUS, "ErrorResponse": error_body},
            "responses": {
                "Error": {"description": "bad request / not found / standalone mode",
                          "content": {"application/json": {"schema": error_body}}},
                "Unavailable": {"description": "no leader (retry after Retry-After seconds)",
                                "content": {"application/json": {"schema": error_body}}},
            },
        },
    }  # fmt: skip

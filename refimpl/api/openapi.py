"""The OpenAPI 3.0 document for the endpoints this package serves (``GET /openapi.json``).

Rules: describe only what we serve, with Qdrant's operation ids and schema names where they
exist (``cluster_status``, ``remove_peer``, ``ClusterStatus``…), so a reader can compare with
Qdrant's own ``openapi.json``. A test checks that every route of the app is documented here.
"""

from typing import Any

__all__ = ["DOCUMENTED_PATHS", "openapi_document"]


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
    },
}  # fmt: skip


def openapi_document(version: str) -> dict[str, Any]:
    """The whole document."""
    error_body = {"type": "object", "properties": {
        "status": {"type": "object", "properties": {"error": {"type": "string"}}},
        "time": {"type": "number"}}}  # fmt: skip
    return {
        "openapi": "3.0.1",
        "info": {"title": "refimpl (Qdrant-compatible cluster API)", "version": version},
        "paths": DOCUMENTED_PATHS,
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

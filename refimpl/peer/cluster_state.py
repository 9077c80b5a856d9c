"""The full replicated cluster state of :mod:`refimpl.consensus`, as the peer driver uses it.

Rules:

* NORMAL entries hold either a consensus operation (``refimpl.consensus.encode_operation``:
  collections, replicas, transfers, peers) or a cluster-metadata command
  (:func:`refimpl.peer.state.metadata_command`, Qdrant's ``/cluster/metadata`` store, which
  :mod:`refimpl.consensus` does not model). Both are JSON; the metadata command is told apart by
  its ``"op": "set_metadata"`` key.
* Results cross the network (a follower forwards proposals to the leader), so they are JSON:
  ``true`` when the operation applied, ``{"error", "reason", "status"}`` when it was rejected —
  ``status`` being the HTTP code the REST layer answers with.
* Peers added or removed by committed conf changes go through the same pure ``apply`` as
  ``AddPeer`` / ``RemovePeer(force=True)``: the decision to remove (and the "holds replicas"
  guard) was taken before the conf change was proposed.
* Each applied ``CreateCollection`` gets an *incarnation* number (how many collections were
  created before it), the same on every peer and kept in snapshots; the local shard stores are
  filed under it, so a collection re-created under an old name never sees the old files.
* ``listeners`` are called after every change (applied entry, conf change, loaded snapshot):
  that is how the peer's local shards follow the state (:mod:`refimpl.peer.shards`).

Theory of operation: a thin mutable holder around the immutable :class:`ClusterState`; each
committed entry replaces ``cluster`` by the state ``apply`` returns.
"""

import json
from collections.abc import Callable, Mapping
from typing import Any

from refimpl.consensus import (
    AddPeer,
    Applied,
    ApplyResult,
    ClusterState,
    CodecError,
    CreateCollection,
    DeleteCollection,
    Rejected,
    RemovePeer,
    apply,
    decode_operation,
    decode_state,
    encode_operation,
    encode_state,
)
from refimpl.ids import PeerId

__all__ = ["ClusterStateMachine", "result_json"]


def result_json(result: ApplyResult) -> Any:
    """The JSON form of an apply result (``true`` or an error object)."""
    match result:
        case Applied():
            return True
        case Rejected():
            return {
                "error": result.message,
                "reason": result.reason.value,
                "status": result.reason.http_status,
            }


class ClusterStateMachine:
    """:class:`refimpl.peer.state.StateMachine` over :mod:`refimpl.consensus`."""

    def __init__(self) -> None:
        self.cluster = ClusterState()
        self._metadata: dict[str, Any] = {}
        self._created = 0
        self._incarnations: dict[str, int] = {}
        self.listeners: list[Callable[[], None]] = []
        """Called after every change (the local shards follow the state this way)."""

    def incarnation(self, name: str) -> int:
        """How many collections were created before collection ``name`` (0 if unknown): the
        same on every peer, it tells a collection from an earlier one of the same name."""
        return self._incarnations.get(name, 0)

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()

    def apply_command(self, data: bytes) -> Any:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            return {"error": f"malformed command: {exc}", "reason": "bad_command", "status": 400}
        if isinstance(raw, dict) and raw.get("op") == "set_metadata":
            return self._set_metadata(raw)
        try:
            operation = decode_operation(data)
        except CodecError as exc:
            return {"error": f"malformed operation: {exc}", "reason": "bad_command", "status": 400}
        self.cluster, result = apply(self.cluster, operation)
        if isinstance(result, Applied):
            if isinstance(operation, CreateCollection):
                self._created += 1
                self._incarnations[operation.name] = self._created
            elif isinstance(operation, DeleteCollection):
                self._incarnations.pop(operation.name, None)
            self._changed()
        return result_json(result)

    def _set_metadata(self, raw: dict[str, Any]) -> Any:
        key = raw.get("key")
        if not isinstance(key, str):
            return {
                "error": "metadata key must be a string",
                "reason": "bad_command",
                "status": 400,
            }
        if raw.get("value") is None:
            self._metadata.pop(key, None)
        else:
            self._metadata[key] = raw["value"]
        return True

    def record_peer_command(self, peer: PeerId, uri: str) -> bytes:
        return encode_operation(AddPeer(peer, uri))

    def add_peer(self, peer: PeerId, uri: str) -> None:
        self.cluster, _ = apply(self.cluster, AddPeer(peer, uri))
        self._changed()

    def remove_peer(self, peer: PeerId) -> None:
        self.cluster, _ = apply(self.cluster, RemovePeer(peer, force=True))
        self._changed()

    def peers(self) -> Mapping[PeerId, str]:
        return {peer: info.uri for peer, info in self.cluster.peers.items()}

    def peer_has_shards(self, peer: PeerId) -> bool:
        return bool(self.cluster.holdings(peer))

    def metadata(self) -> Mapping[str, Any]:
        return dict(self._metadata)

    def to_bytes(self) -> bytes:
        body = {
            "cluster": encode_state(self.cluster).decode(),
            "metadata": self._metadata,
            "collections_created": self._created,
            "incarnations": self._incarnations,
        }
        return json.dumps(body, sort_keys=True).encode()

    def load_bytes(self, data: bytes) -> None:
        if not data:
            self.cluster, self._metadata = ClusterState(), {}
            self._created, self._incarnations = 0, {}
        else:
            body = json.loads(data)
            self.cluster = decode_state(body["cluster"].encode())
            self._metadata = dict(body["metadata"])
            self._created = int(body.get("collections_created", 0))
            self._incarnations = {str(k): int(v) for k, v in body.get("incarnations", {}).items()}
        self._changed()

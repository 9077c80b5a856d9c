"""What the peer driver needs from the replicated cluster state, and a minimal implementation.

Rules:

* The driver sees the cluster state only through :class:`StateMachine`: apply a committed
  NORMAL entry's bytes, record a peer added or removed by a committed conf change, list the
  peers and their URIs, answer "does this peer hold shard replicas?" (the removal guard), and
  turn the whole state into bytes and back (Raft snapshots).
* ``apply_command`` never raises on a bad or inapplicable command: every peer applies the same
  log, so a command that cannot apply yields an error *result* (a dict with ``"error"``) on
  every peer alike, and the peer keeps running.

Theory of operation: :class:`PeerTable` is the dumb twin of
:class:`refimpl.peer.cluster_state.ClusterStateMachine` (the full state of
:mod:`refimpl.consensus`, which real peers run): the smallest state that makes a cluster useful — the
address book plus Qdrant's cluster metadata key/value store (``PUT /cluster/metadata/keys``),
which gives tests and the book a consensus operation to propose. The driver is written against
the protocol so the full state of :mod:`refimpl.consensus` can be plugged in unchanged.
"""

import json
from collections.abc import Mapping
from typing import Any, Protocol

from refimpl.ids import PeerId

__all__ = ["PeerTable", "StateMachine", "add_peer_command", "metadata_command"]


class StateMachine(Protocol):
    """The replicated cluster state as the peer driver uses it."""

    def apply_command(self, data: bytes) -> Any:
        """Apply a committed NORMAL entry; return a JSON-able result (errors as values)."""
        ...

    def record_peer_command(self, peer: PeerId, uri: str) -> bytes:
        """The NORMAL command by which the first peer records its own URI in the log."""
        ...

    def add_peer(self, peer: PeerId, uri: str) -> None:
        """Record a peer whose ADD_LEARNER conf change was committed (URI from its context)."""
        ...

    def remove_peer(self, peer: PeerId) -> None:
        """Forget a peer whose REMOVE_PEER conf change was committed."""
        ...

    def peers(self) -> Mapping[PeerId, str]:
        """Every known peer and its p2p URI."""
        ...

    def peer_has_shards(self, peer: PeerId) -> bool:
        """True if ``peer`` holds any shard replica (removal is refused unless forced)."""
        ...

    def metadata(self) -> Mapping[str, Any]:
        """The cluster metadata key/value store."""
        ...

    def to_bytes(self) -> bytes:
        """The whole state, for a Raft snapshot."""
        ...

    def load_bytes(self, data: bytes) -> None:
        """Replace the whole state by a snapshot's (``b""`` = the empty genesis state)."""
        ...


def metadata_command(key: str, value: Any) -> bytes:
    """The command that sets cluster metadata ``key`` to ``value`` (``None`` deletes it)."""
    return json.dumps({"op": "set_metadata", "key": key, "value": value}).encode()


def add_peer_command(peer: PeerId, uri: str) -> bytes:
    """The command that records a peer's URI (the first peer records itself this way)."""
    return json.dumps({"op": "add_peer", "peer_id": peer, "uri": uri}).encode()


class PeerTable:
    """Address book plus cluster metadata: the minimal :class:`StateMachine`."""

    def __init__(self) -> None:
        self._peers: dict[PeerId, str] = {}
        self._metadata: dict[str, Any] = {}

    def apply_command(self, data: bytes) -> Any:
        try:
            command = json.loads(data)
            op = command["op"]
            if op == "set_metadata":
                key = str(command["key"])
                if command["value"] is None:
                    self._metadata.pop(key, None)
                else:
                    self._metadata[key] = command["value"]
                return True
            if op == "add_peer":
                self._peers[PeerId(int(command["peer_id"]))] = str(command["uri"])
                return True
        except (ValueError, KeyError, TypeError) as exc:
            return {"error": f"malformed command: {exc}"}
        return {"error": f"unknown operation {op!r}"}

    def record_peer_command(self, peer: PeerId, uri: str) -> bytes:
        return add_peer_command(peer, uri)

    def add_peer(self, peer: PeerId, uri: str) -> None:
        self._peers[peer] = uri

    def remove_peer(self, peer: PeerId) -> None:
        self._peers.pop(peer, None)

    def peers(self) -> Mapping[PeerId, str]:
        return dict(self._peers)

    def peer_has_shards(self, peer: PeerId) -> bool:
        # No collections in this state, so no replicas anywhere.
        return False

    def metadata(self) -> Mapping[str, Any]:
        return dict(self._metadata)

    def to_bytes(self) -> bytes:
        peers = {str(k): v for k, v in self._peers.items()}
        return json.dumps({"peers": peers, "metadata": self._metadata}).encode()

    def load_bytes(self, data: bytes) -> None:
        if not data:
            self._peers, self._metadata = {}, {}
            return
        obj = json.loads(data)
        self._peers = {PeerId(int(k)): str(v) for k, v in obj["peers"].items()}
        self._metadata = dict(obj["metadata"])

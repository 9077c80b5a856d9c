"""A peer's identity on disk: its id, its URI, whether it joined, and the peers it knows.

Rules:

* The file is ``<storage_path>/peer.json``, replaced atomically (write a temporary file, fsync,
  rename) so a crash leaves the old or the new version, never half of one.
* The id is generated once — random in ``[1, 2**53)`` so it survives JSON doubles, as Qdrant's
  — and persisted *before* the join request, so a joiner that crashes mid-join retries with the
  same id instead of leaving a ghost learner behind.
* A peer whose file says ``joined`` restarts from its own storage: no ``--bootstrap`` needed.
  The address book (``peers``) lets it reach the others before it re-applies its log.

Theory of operation: :func:`load_identity` returns None for a fresh storage directory;
:func:`save_identity` is called after each change (joined, peers changed).
"""

import json
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from refimpl.ids import PeerId

__all__ = [
    "MAX_PEER_ID",
    "Identity",
    "IdentityError",
    "load_identity",
    "new_peer_id",
    "save_identity",
]

MAX_PEER_ID = 2**53 - 1
IDENTITY_FILE = "peer.json"


class IdentityError(Exception):
    """The identity file exists but cannot be used."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this peer is."""

    peer_id: PeerId
    uri: str | None
    joined: bool
    peers: dict[PeerId, str] = field(default_factory=dict)

    def with_peers(self, peers: dict[PeerId, str]) -> "Identity":
        """The same identity with a new address book."""
        return replace(self, peers=dict(peers))


def new_peer_id(rng: random.Random) -> PeerId:
    """A random peer id in ``[1, 2**53)``."""
    return PeerId(rng.randrange(1, MAX_PEER_ID + 1))


def load_identity(storage_path: Path) -> Identity | None:
    """Read the identity file, or None if this storage directory is new."""
    path = storage_path / IDENTITY_FILE
    try:
        raw = json.loads(path.read_text())
        return Identity(
            peer_id=PeerId(int(raw["peer_id"])),
            uri=raw["uri"],
            joined=bool(raw["joined"]),
            peers={PeerId(int(k)): str(v) for k, v in raw.get("peers", {}).items()},
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IdentityError(f"cannot read {path}: {exc}") from exc


def save_identity(storage_path: Path, identity: Identity) -> None:
    """Write the identity file atomically and durably."""
    storage_path.mkdir(parents=True, exist_ok=True)
    body = {
        "peer_id": identity.peer_id,
        "uri": identity.uri,
        "joined": identity.joined,
        "peers": {str(k): v for k, v in sorted(identity.peers.items())},
    }
    tmp = storage_path / (IDENTITY_FILE + ".tmp")
    with tmp.open("w") as f:
        json.dump(body, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(storage_path / IDENTITY_FILE)

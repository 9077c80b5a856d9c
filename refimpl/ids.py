"""Identifiers and quantities shared by every layer.

``NewType`` wrappers cost nothing at run time but let ``mypy --strict`` tell a
term from a log index, or a peer id from a shard id.
"""

import uuid
from typing import NewType

PeerId = NewType("PeerId", int)
"""A peer's id: random in ``[1, 2**53)`` so it survives a JSON round trip."""

ShardId = NewType("ShardId", int)
Term = NewType("Term", int)
LogIndex = NewType("LogIndex", int)
Tick = NewType("Tick", int)

PointId = int | uuid.UUID
"""Qdrant point ids are unsigned 64-bit integers or UUIDs."""

__all__ = ["LogIndex", "PeerId", "PointId", "ShardId", "Term", "Tick"]

"""Static configuration of one Raft node.

Rules: every limit is explicit and validated at construction (a bad config
raises :class:`ConfigError` with a clear message); times are in ticks, never
seconds, because the core has no clock -- the driver decides how long a tick is.
"""

from __future__ import annotations

from dataclasses import dataclass

from refimpl.ids import PeerId


class ConfigError(ValueError):
    """A :class:`RaftConfig` field is out of range."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Knobs of one node; defaults follow etcd/raft and the acceptance scenarios."""

    id: PeerId
    election_timeout_ticks: int = 10
    """Base election timeout ``ET``; each term draws a timeout in ``[ET, 2*ET)``."""
    heartbeat_interval_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_messages: int = 64
    """Unacknowledged AppendEntries per follower in the replicate state."""
    max_entries_per_message: int = 64
    snapshot_threshold_entries: int = 0
    """0 = never suggest compaction; else :attr:`RaftNode.compaction_due` turns true
    once this many entries were applied since the last snapshot."""

    def __post_init__(self) -> None:
        if self.id <= 0:
            raise ConfigError(f"peer id must be positive, got {self.id}")
        if self.heartbeat_interval_ticks < 1:
            raise ConfigError("heartbeat_interval_ticks must be >= 1")
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks:
            raise ConfigError(
                "election_timeout_ticks must exceed heartbeat_interval_ticks "
                f"({self.election_timeout_ticks} <= {self.heartbeat_interval_ticks})"
            )
        if self.max_inflight_messages < 1:
            raise ConfigError("max_inflight_messages must be >= 1")
        if self.max_entries_per_message < 1:
            raise ConfigError("max_entries_per_message must be >= 1")
        if self.snapshot_threshold_entries < 0:
            raise ConfigError("snapshot_threshold_entries must be >= 0")

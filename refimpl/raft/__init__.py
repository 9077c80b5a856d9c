"""Sans-IO Raft: typed messages, a log view over a storage, and the RaftNode state machine.

Rules: nothing in this package reads a clock, opens a socket or imports trio;
files are touched only by :class:`~refimpl.raft.file_storage.FileStorage`, an
explicit storage object the driver creates. See :mod:`refimpl.raft.core` for
the driver loop.
"""

from refimpl.raft.config import ConfigError, RaftConfig
from refimpl.raft.core import (
    ROLE_TRANSITIONS,
    InvalidRequestError,
    NotLeader,
    ProposalDropped,
    RaftError,
    RaftNode,
    ReadState,
    Ready,
    Role,
)
from refimpl.raft.file_storage import FileStorage
from refimpl.raft.messages import (
    EMPTY_MEMBERSHIP,
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
    ConfChangeDecodeError,
    ConfChangeKind,
    Entry,
    EntryKind,
    HardState,
    InstallSnapshot,
    InstallSnapshotResponse,
    Membership,
    Message,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
)
from refimpl.raft.progress import Progress, ProgressState
from refimpl.raft.quorum import VoteResult, has_quorum, majority, vote_result
from refimpl.raft.rules import (
    AppendOutcome,
    append_entries_to_log,
    leader_commit_index,
    quorum_commit_index,
    vote_granted,
)
from refimpl.raft.storage import (
    GENESIS_INDEX,
    GENESIS_TERM,
    LogUnavailableError,
    MemoryStorage,
    Storage,
    StorageError,
    genesis_snapshot,
)

__all__ = [
    "EMPTY_MEMBERSHIP",
    "GENESIS_INDEX",
    "GENESIS_TERM",
    "ROLE_TRANSITIONS",
    "AppendEntries",
    "AppendEntriesResponse",
    "AppendOutcome",
    "ConfChange",
    "ConfChangeDecodeError",
    "ConfChangeKind",
    "ConfigError",
    "Entry",
    "EntryKind",
    "FileStorage",
    "HardState",
    "InstallSnapshot",
    "InstallSnapshotResponse",
    "InvalidRequestError",
    "LogUnavailableError",
    "Membership",
    "MemoryStorage",
    "Message",
    "NotLeader",
    "Progress",
    "ProgressState",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RaftNode",
    "ReadState",
    "Ready",
    "RequestVote",
    "RequestVoteResponse",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "Storage",
    "StorageError",
    "TimeoutNow",
    "VoteResult",
    "append_entries_to_log",
    "genesis_snapshot",
    "has_quorum",
    "leader_commit_index",
    "majority",
    "quorum_commit_index",
    "vote_granted",
    "vote_result",
]

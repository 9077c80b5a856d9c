"""Raft's vocabulary: log entries, configuration records and the wire messages.

Rules:

* every record is a frozen, slotted dataclass, so a value can be shared, hashed
  and logged without fear that somebody mutates it later (the records built once per
  event also get a faster, otherwise identical ``__init__`` from :func:`direct_init`);
* the union :data:`Message` lists every message the core understands; the core
  matches on it exhaustively (``typing.assert_never``), so adding a message
  type is a type error until every handler knows about it;
* every message carries ``term``, ``src`` and ``dst``; the rest is the payload
  of the Raft paper's RPCs (Figure 2), plus the extensions we implement:
  PreVote (``pre_vote``), leader transfer (``TimeoutNow``, ``leader_transfer``)
  and ReadIndex (``read_ctx``).

Theory of operation: a message is a value. The core never sends anything; it
returns messages in a ``Ready`` and the driver carries them. Responses are
separate messages (not return values), because the network may drop,
duplicate or reorder any of them.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import MISSING, dataclass, fields
from typing import TypeVar

from refimpl.ids import LogIndex, PeerId, Term

_Record = TypeVar("_Record")


def direct_init(cls: type[_Record]) -> type[_Record]:
    """Give a frozen, slotted dataclass an ``__init__`` that fills its slots directly.

    A frozen dataclass's generated ``__init__`` stores every field through
    ``object.__setattr__`` (its own ``__setattr__`` refuses writes), a slow generic call per
    field; the simulator builds a message, entry or Ready for every event. The replacement
    takes the same parameters with the same defaults and stores the same values through the
    slots' descriptors. Nothing else changes: instances stay frozen, equal, hashable.
    Only for records without ``__post_init__`` (it would be skipped).
    """
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__} has a __post_init__"
    namespace: dict[str, object] = {}
    params, body = [], []
    for f in fields(cls):  # type: ignore[arg-type]
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    source = f"def __init__(self, {', '.join(params)}):\n{''.join(body)}"
    exec(source, namespace)  # the same technique dataclasses itself uses to build __init__
    init = namespace["__init__"]
    setattr(init, "__qualname__", f"{cls.__qualname__}.__init__")  # noqa: B010
    setattr(cls, "__init__", init)  # noqa: B010 -- mypy forbids assigning __init__ directly
    return cls


class EntryKind(enum.Enum):
    """What an entry's ``data`` means to whoever applies it."""

    NORMAL = 1
    """Application command: opaque bytes for the state machine."""
    CONF_CHANGE = 2
    """``data`` is :meth:`ConfChange.encode`; the core applies it to its membership."""
    NOOP = 3
    """Appended by every new leader so it can commit an entry of its own term."""


@direct_init
@dataclass(frozen=True, slots=True)
class Entry:
    """One slot of the replicated log."""

    term: Term
    index: LogIndex
    kind: EntryKind
    data: bytes


class ConfChangeKind(enum.Enum):
    """Single-step membership changes (one peer at a time, no joint consensus)."""

    ADD_LEARNER = 1
    PROMOTE_VOTER = 2
    REMOVE_PEER = 3


class ConfChangeDecodeError(ValueError):
    """The bytes of a CONF_CHANGE entry do not decode to a :class:`ConfChange`."""


_CONF_CHANGE_HEADER = struct.Struct(">BQ")


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A request to change the membership; ``context`` carries e.g. the new peer's URI."""

    kind: ConfChangeKind
    peer: PeerId
    context: bytes = b""

    def encode(self) -> bytes:
        """Serialise as ``kind (1 byte) | peer (8 bytes, big endian) | context``."""
        return _CONF_CHANGE_HEADER.pack(self.kind.value, self.peer) + self.context

    @staticmethod
    def decode(data: bytes) -> ConfChange:
        """Inverse of :meth:`encode`; raises :class:`ConfChangeDecodeError` on garbage."""
        if len(data) < _CONF_CHANGE_HEADER.size:
            raise ConfChangeDecodeError(f"conf change too short: {len(data)} bytes")
        kind_value, peer = _CONF_CHANGE_HEADER.unpack_from(data)
        try:
            kind = ConfChangeKind(kind_value)
        except ValueError as exc:
            raise ConfChangeDecodeError(f"unknown conf change kind {kind_value}") from exc
        return ConfChange(kind, PeerId(peer), bytes(data[_CONF_CHANGE_HEADER.size :]))


@dataclass(frozen=True, slots=True)
class Membership:
    """Who votes and who only listens. A peer is never in both sets."""

    voters: frozenset[PeerId]
    learners: frozenset[PeerId] = frozenset()

    def __post_init__(self) -> None:
        assert not (self.voters & self.learners), "a peer is either voter or learner"

    @property
    def members(self) -> frozenset[PeerId]:
        """Every peer that receives the log: voters and learners."""
        return self.voters | self.learners

    def apply(self, change: ConfChange) -> Membership:
        """The membership after ``change``; a change that does not fit is a no-op.

        Every peer applies the same committed changes in the same order, so
        treating an ill-fitting change (e.g. promoting a non-learner) as a
        no-op keeps all peers in agreement without a crash.
        """
        peer = change.peer
        match change.kind:
            case ConfChangeKind.ADD_LEARNER:
                if peer in self.members:
                    return self
                return Membership(self.voters, self.learners | {peer})
            case ConfChangeKind.PROMOTE_VOTER:
                if peer not in self.learners:
                    return self
                return Membership(self.voters | {peer}, self.learners - {peer})
            case ConfChangeKind.REMOVE_PEER:
                return Membership(self.voters - {peer}, self.learners - {peer})


EMPTY_MEMBERSHIP = Membership(frozenset(), frozenset())
"""The membership of a joiner that has not yet heard from the cluster."""


@direct_init
@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on disk before a peer answers anybody (Raft Figure 2, "persistent state")."""

    term: Term
    voted_for: PeerId | None
    commit: LogIndex


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """Where a snapshot ends in the log, and the membership as of that index."""

    last_index: LogIndex
    last_term: Term
    membership: Membership


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application's state as of ``meta.last_index`` (``data`` is opaque to Raft)."""

    meta: SnapshotMeta
    data: bytes


@direct_init
@dataclass(frozen=True, slots=True)
class RequestVote:
    """Candidate (or pre-candidate, ``pre_vote=True``) asks for a vote in ``term``.

    A pre-vote asks "would you vote for me in ``term``?" without anybody
    changing their term. ``leader_transfer`` marks a campaign started by
    ``TimeoutNow``; it overrides the leader lease of CheckQuorum.
    """

    term: Term
    src: PeerId
    dst: PeerId
    last_log_index: LogIndex
    last_log_term: Term
    pre_vote: bool
    leader_transfer: bool = False


@direct_init
@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    """A granted pre-vote carries the *requested* term; every other response the voter's term."""

    term: Term
    src: PeerId
    dst: PeerId
    granted: bool
    pre_vote: bool


@direct_init
@dataclass(frozen=True, slots=True)
class AppendEntries:
    """Replicate ``entries`` after ``(prev_log_index, prev_log_term)``; empty = heartbeat.

    ``read_ctx`` is the ReadIndex round this message belongs to (0 = none);
    the follower echoes it in its response.
    """

    term: Term
    src: PeerId
    dst: PeerId
    prev_log_index: LogIndex
    prev_log_term: Term
    entries: tuple[Entry, ...]
    leader_commit: LogIndex
    read_ctx: int = 0


@direct_init
@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """The follower's answer.

    On success ``match_index`` is the last index the request proved to match.
    On rejection ``match_index`` is the rejected ``prev_log_index`` (so the
    leader can discard stale rejections), and ``reject_hint_index`` /
    ``reject_hint_term`` point at the follower's last entry that may still
    match (the fast-backup hint).
    """

    term: Term
    src: PeerId
    dst: PeerId
    success: bool
    match_index: LogIndex
    reject_hint_index: LogIndex
    reject_hint_term: Term
    read_ctx: int = 0


@direct_init
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """The leader replaces a lagging follower's log prefix with a snapshot."""

    term: Term
    src: PeerId
    dst: PeerId
    snapshot: Snapshot


@direct_init
@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """The follower's commit index after handling the snapshot."""

    term: Term
    src: PeerId
    dst: PeerId
    last_index: LogIndex


@direct_init
@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Leader transfer: "campaign now, skipping PreVote"."""

    term: Term
    src: PeerId
    dst: PeerId


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
)
"""Every message a Raft peer sends to another."""

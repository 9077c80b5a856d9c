"""The Raft state machine: a node that consumes ticks and messages and returns work.

Rules:

* sans-IO: no clock, no socket, no file, no trio. Time is :meth:`RaftNode.tick`,
  input is :meth:`RaftNode.step`, output is a :class:`Ready`.
* Every protocol decision named in :mod:`refimpl.raft.rules` is made by calling
  that module (vote, follower append, quorum commit, leader commit rule).
* Randomness (election timeouts) comes only from the ``random.Random`` passed in.
* Between :meth:`RaftNode.ready` and :meth:`RaftNode.advance` the driver may keep
  calling ``tick``/``step``/``propose``; their output waits for the next Ready.

Driver loop (the persist-before-send rule)::

    node.tick() / node.step(msg) / node.propose(data)
    if node.has_ready():
        rd = node.ready()
        if rd.snapshot:   storage.apply_snapshot(rd.snapshot)     # 1. install snapshot
        storage.append(rd.entries)                                 # 2. log (truncates conflicts)
        if rd.hard_state: storage.set_hard_state(rd.hard_state)    # 3. term, vote, commit
        if rd.must_sync:  storage.sync()                           # 4. durable NOW
        send(rd.messages)                                          # 5. only after persisting
        apply(rd.snapshot, rd.committed_entries)                   # 6. state machine, in order
        node.advance(rd)                                           # 7. tell the core

A vote or an append acknowledgement leaves the node only in step 5, after the
vote / entries it promises are durable (step 4); sending earlier would let a
crash break a promise (election safety, G5 in the scenarios).

Compaction: ``snap = node.compact(index, data)`` builds the snapshot (its
metadata carries the membership as of ``index``); the application then calls
``storage.compact(index, snap)`` -- the core never writes storage.

Theory of operation: roles are FOLLOWER, PRE_CANDIDATE, CANDIDATE, LEADER with
the legal transitions listed in :data:`ROLE_TRANSITIONS`. Elections use
randomised timeouts re-drawn on every role change; PreVote asks "would you vote
for me?" before bumping the term; CheckQuorum makes a leader step down when a
quorum has been silent for an election timeout, and makes followers that heard
from a live leader within the election timeout ignore vote requests (the leader
lease that stops a half-connected peer from deposing a healthy leader).
The leader tracks each follower with a :class:`~refimpl.raft.progress.Progress`
(probe / replicate / snapshot, bounded inflight messages). Proposals are only
appended to the log; the AppendEntries carrying them are built when the driver
asks for the next Ready, so proposals made in between travel together.
Heartbeats are empty AppendEntries: to a probing follower they ask about its
``match`` (which surely matches, so the answer -- at least the follower's commit
index -- tells the leader where to resume); to a replicating one about
``next - 1`` (a lost tail message shows up as a rejection).

Contract deviations and additions (see ``/tmp/raft-contract.md``):

* a cluster starts from a *genesis snapshot* (index 1, term 0, empty data,
  the initial membership) written by ``MemoryStorage.bootstrap`` /
  ``FileStorage.bootstrap``; the first leader's NOOP is at index 2. Joiners
  receive the leader's snapshot first, which tells them the membership.
* a rejecting ``AppendEntriesResponse`` carries the rejected ``prev_log_index``
  in ``match_index``.
* extra read-only properties: ``voted_for``, ``last_log_index``,
  ``last_log_term``, ``lead_transferee``, ``compaction_due``, ``log_entries``.
* extra error :class:`InvalidRequestError` (a bad conf change / transfer target);
  all errors derive from :class:`RaftError`.
* a ``read_index`` whose leader loses leadership before confirmation is dropped
  silently (no ReadState ever appears); the caller times out and retries.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import assert_never

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft.config import RaftConfig
from refimpl.raft.log import RaftLog
from refimpl.raft.messages import (
    AppendEntries,
    AppendEntriesResponse,
    ConfChange,
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
    direct_init,
)
from refimpl.raft.progress import Progress, ProgressState
from refimpl.raft.quorum import VoteResult, has_quorum, vote_result
from refimpl.raft.read_only import ReadOnly
from refimpl.raft.rules import append_entries_to_log, leader_commit_index, vote_granted
from refimpl.raft.storage import Storage

MAX_UNCOMMITTED_ENTRIES = 8192
"""A leader refuses proposals (ProposalDropped) beyond this many uncommitted entries."""
MAX_PENDING_READS = 4096
"""A leader refuses ReadIndex requests beyond this many unconfirmed reads."""
MAX_COMMITTED_ENTRIES_PER_READY = 4096
"""Committed entries handed out per Ready; the rest follow in the next one."""


class Role(enum.Enum):
    """A Raft node's role (Raft §5.1, plus PreVote's pre-candidate)."""

    FOLLOWER = 1
    PRE_CANDIDATE = 2
    CANDIDATE = 3
    LEADER = 4


ROLE_TRANSITIONS: frozenset[tuple[Role, Role]] = frozenset(
    {
        (Role.FOLLOWER, Role.FOLLOWER),  # a newer term, or a new leader
        (Role.FOLLOWER, Role.PRE_CANDIDATE),  # election timeout, PreVote on
        (Role.FOLLOWER, Role.CANDIDATE),  # election timeout without PreVote, or TimeoutNow
        (Role.PRE_CANDIDATE, Role.FOLLOWER),
        (Role.PRE_CANDIDATE, Role.PRE_CANDIDATE),  # pre-vote timed out: try again
        (Role.PRE_CANDIDATE, Role.CANDIDATE),  # won the pre-vote
        (Role.CANDIDATE, Role.FOLLOWER),
        (Role.CANDIDATE, Role.PRE_CANDIDATE),  # election timed out, PreVote on
        (Role.CANDIDATE, Role.CANDIDATE),  # election timed out without PreVote
        (Role.CANDIDATE, Role.LEADER),
        (Role.LEADER, Role.FOLLOWER),
    }
)
"""Every legal role change; the core asserts each change against this table."""

# Enum members compared on hot paths, bound once to module names: in Python 3.11 each
# ``Enum.MEMBER`` is looked up through the enum's metaclass, several times slower than a global.
_CONF_CHANGE = EntryKind.CONF_CHANGE
_PROBE = ProgressState.PROBE
_REPLICATE = ProgressState.REPLICATE
_SNAPSHOT = ProgressState.SNAPSHOT
_CANDIDATE = Role.CANDIDATE
_FOLLOWER = Role.FOLLOWER
_LEADER = Role.LEADER
_PRE_CANDIDATE = Role.PRE_CANDIDATE
_LOST = VoteResult.LOST
_WON = VoteResult.WON
_INDEX_0 = LogIndex(0)
_TERM_0 = Term(0)


@dataclass(frozen=True, slots=True)
class ReadState:
    """A confirmed ReadIndex: reading is linearizable once ``applied >= index``."""

    request_ctx: bytes
    index: LogIndex


@direct_init
@dataclass(frozen=True, slots=True)
class Ready:
    """A batch of work for the driver; see the module docstring for the order."""

    hard_state: HardState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    messages: tuple[Message, ...]
    committed_entries: tuple[Entry, ...]
    read_states: tuple[ReadState, ...]
    must_sync: bool


class RaftError(Exception):
    """Base of every error the core raises at its callers."""


class NotLeader(RaftError):  # noqa: N818 -- name fixed by the API contract
    """Definite rejection: this node is not the leader (``leader_id`` may know better)."""

    def __init__(self, leader_id: PeerId | None) -> None:
        super().__init__(f"not the leader (leader is {leader_id})")
        self.leader_id = leader_id


class ProposalDropped(RaftError):  # noqa: N818 -- name fixed by the API contract
    """Definite rejection of a proposal: transfer in progress, conf change pending, full."""


class InvalidRequestError(RaftError, ValueError):
    """The request can never succeed as stated (e.g. promoting a non-learner)."""


class RaftNode:
    """One Raft peer's protocol state. Drive it with tick/step/propose, drain it with ready."""

    def __init__(self, config: RaftConfig, storage: Storage, rng: random.Random) -> None:
        hard_state, membership = storage.initial_state()
        self._config = config
        self._id = config.id  # read on every message: a plain attribute, not a property
        self._rng = rng
        self._log = RaftLog(storage, hard_state.commit)
        self._term = hard_state.term
        self._voted_for = hard_state.voted_for
        self._membership = membership
        # (index, membership as of index) for every applied change since the snapshot.
        self._membership_history: list[tuple[LogIndex, Membership]] = [
            (self._log.snapshot_index(), membership)
        ]
        self._role = Role.FOLLOWER
        self._leader_id: PeerId | None = None
        self._election_elapsed_ticks = 0
        self._heartbeat_elapsed_ticks = 0
        self._randomized_timeout_ticks = self._draw_timeout()
        self._votes: dict[PeerId, bool] = {}
        self._progress: dict[PeerId, Progress] = {}
        # Sorted (peer, progress) of every follower; rebuilt after ``_progress`` changes.
        self._follower_cache: list[tuple[PeerId, Progress]] | None = None
        self._outbox: list[Message] = []
        # The last heartbeat sent to each follower and the last ack sent: messages are values,
        # so an identical one is sent again instead of built again (most of them are).
        self._heartbeats: dict[PeerId, AppendEntries] = {}
        self._last_ack: AppendEntriesResponse | None = None
        self._read_states: list[ReadState] = []
        self._reads = ReadOnly()
        self._lead_transferee: PeerId | None = None
        self._pending_conf_index = LogIndex(0)
        self._broadcast_pending = False
        self._persisted_hard_state = HardState(
            hard_state.term, hard_state.voted_for, self._log.committed
        )
        self._outstanding: Ready | None = None

    # ----------------------------------------------------------------- queries

    @property
    def id(self) -> PeerId:
        """This node's peer id."""
        return self._config.id

    @property
    def config(self) -> RaftConfig:
        """The configuration this node was created with."""
        return self._config

    @property
    def term(self) -> Term:
        """Current term."""
        return self._term

    @property
    def voted_for(self) -> PeerId | None:
        """Whom this node voted for in the current term."""
        return self._voted_for

    @property
    def role(self) -> Role:
        """Current role."""
        return self._role

    @property
    def leader_id(self) -> PeerId | None:
        """The leader of the current term, if known."""
        return self._leader_id

    @property
    def commit_index(self) -> LogIndex:
        """Highest log index known to be committed."""
        return self._log.committed

    @property
    def applied_index(self) -> LogIndex:
        """Highest log index the driver reported applied (via ``advance``)."""
        return self._log.applied

    @property
    def membership(self) -> Membership:
        """The membership as of the applied index."""
        return self._membership

    @property
    def last_log_index(self) -> LogIndex:
        """Index of the last entry in the log (persisted or not)."""
        return self._log.last_index()

    @property
    def last_log_term(self) -> Term:
        """Term of the last entry in the log."""
        return self._log.last_term()

    @property
    def lead_transferee(self) -> PeerId | None:
        """Leader only: the target of a leader transfer in progress."""
        return self._lead_transferee

    @property
    def compaction_due(self) -> bool:
        """True when ``snapshot_threshold_entries`` applied entries are not yet compacted."""
        threshold = self._config.snapshot_threshold_entries
        return threshold > 0 and self._log.applied - self._log.snapshot_index() >= threshold

    def log_entries(self, lo: LogIndex, hi: LogIndex) -> list[Entry]:
        """Entries in ``[lo, hi)`` from the node's log view (for checkers and the book)."""
        lo = LogIndex(max(lo, self._log.first_index()))
        return self._log.entries(lo, hi, max(0, hi - lo))

    def progress(self) -> Mapping[PeerId, tuple[LogIndex, LogIndex]]:
        """Leader only: ``peer -> (match, next)`` for every other member; else empty."""
        return {p: (pr.match, pr.next) for p, pr in self._progress.items() if p != self._id}

    def _promotable(self) -> bool:
        """May this node campaign? Only a voter with no snapshot half-installed."""
        return self._id in self._membership.voters and self._log.pending_snapshot is None

    # ------------------------------------------------------------ role changes

    def _draw_timeout(self) -> int:
        base = self._config.election_timeout_ticks
        return base + self._rng.randrange(base)

    def _set_role(self, role: Role) -> None:
        assert (self._role, role) in ROLE_TRANSITIONS, f"illegal {self._role} -> {role}"
        self._role = role

    def _reset(self, term: Term) -> None:
        """Common part of every role change: new term (if any), fresh timers and tallies."""
        assert term >= self._term, "terms never go back"
        if term != self._term:
            self._term = term
            self._voted_for = None
        self._leader_id = None
        self._election_elapsed_ticks = 0
        self._heartbeat_elapsed_ticks = 0
        self._randomized_timeout_ticks = self._draw_timeout()
        self._votes = {}
        self._progress = {}
        self._follower_cache = None
        self._heartbeats = {}
        self._lead_transferee = None
        self._reads.clear()  # never answered: only a leader may confirm reads
        self._broadcast_pending = False

    def _become_follower(self, term: Term, leader: PeerId | None) -> None:
        self._reset(term)
        self._set_role(Role.FOLLOWER)
        self._leader_id = leader

    def _become_pre_candidate(self) -> None:
        self._reset(self._term)
        self._set_role(Role.PRE_CANDIDATE)
        self._votes = {self._id: True}

    def _become_candidate(self) -> None:
        self._reset(Term(self._term + 1))
        self._set_role(Role.CANDIDATE)
        self._voted_for = self._id
        self._votes = {self._id: True}

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._set_role(Role.LEADER)
        self._leader_id = self._id
        last = self._log.last_index()
        for peer in self._membership.members:
            self._progress[peer] = Progress(match=LogIndex(0), next=LogIndex(last + 1))
        own = self._progress.setdefault(self._id, Progress(LogIndex(0), LogIndex(last + 1)))
        self._follower_cache = None
        own.match = LogIndex(min(self._log.unstable_offset - 1, last))
        own.recent_active = True
        # Conf changes proposed by earlier leaders must be applied before we allow a new one.
        self._pending_conf_index = last
        self._append_own(EntryKind.NOOP, b"")

    def _campaign(self, leader_transfer: bool) -> None:
        """Start an election: a pre-vote first unless disabled or forced by TimeoutNow."""
        if self._config.pre_vote and not leader_transfer:
            self._become_pre_candidate()
            if vote_result(self._votes, self._membership.voters) is _WON:
                self._start_real_election(leader_transfer=False)  # single voter
            else:
                self._request_votes(Term(self._term + 1), pre_vote=True, leader_transfer=False)
        else:
            self._start_real_election(leader_transfer)

    def _start_real_election(self, leader_transfer: bool) -> None:
        """Bump the term, vote for ourselves and ask the other voters."""
        self._become_candidate()
        if vote_result(self._votes, self._membership.voters) is _WON:
            self._become_leader()  # single voter
        else:
            self._request_votes(self._term, pre_vote=False, leader_transfer=leader_transfer)

    def _request_votes(self, term: Term, pre_vote: bool, leader_transfer: bool) -> None:
        for peer in sorted(self._membership.voters - {self._id}):
            self._send(
                RequestVote(
                    term,
                    self._id,
                    peer,
                    self._log.last_index(),
                    self._log.last_term(),
                    pre_vote=pre_vote,
                    leader_transfer=leader_transfer,
                )
            )

    # -------------------------------------------------------------------- time

    def tick(self) -> None:
        """One unit of logical time has passed."""
        if self._role is _LEADER:
            self._tick_leader()
        else:
            self._tick_election()

    def _tick_election(self) -> None:
        """Follower / candidate clock: campaign once the randomized timeout expires."""
        self._election_elapsed_ticks += 1
        if self._election_elapsed_ticks >= self._randomized_timeout_ticks:
            self._election_elapsed_ticks = 0
            if self._promotable():
                self._campaign(leader_transfer=False)

    def _tick_leader(self) -> None:
        """Leader clock: CheckQuorum every election timeout, heartbeats every interval."""
        self._heartbeat_elapsed_ticks += 1
        self._election_elapsed_ticks += 1
        if self._election_elapsed_ticks >= self._config.election_timeout_ticks:
            self._election_elapsed_ticks = 0
            if self._config.check_quorum and not self._quorum_recently_active():
                self._become_follower(self._term, None)  # CheckQuorum: we lost the cluster
                return
            self._lead_transferee = None  # a transfer that took a whole timeout is abandoned
        for pr in self._progress.values():
            if pr.state is _SNAPSHOT:
                pr.snapshot_elapsed_ticks += 1
                if pr.snapshot_elapsed_ticks >= self._config.election_timeout_ticks:
                    pr.become_probe()  # the snapshot (or its answer) was lost: retry
        if self._heartbeat_elapsed_ticks >= self._config.heartbeat_interval_ticks:
            self._heartbeat_elapsed_ticks = 0
            self._broadcast_heartbeat(self._reads.heartbeat_ctx())

    def _quorum_recently_active(self) -> bool:
        """CheckQuorum: did a majority of voters talk to us since the last check? Resets."""
        active = {p for p, pr in self._progress.items() if pr.recent_active or p == self._id}
        for peer, pr in self._progress.items():
            pr.recent_active = peer == self._id
        return has_quorum(active, self._membership.voters)

    # ---------------------------------------------------------------- messages

    def step(self, message: Message) -> None:
        """Handle one message from the network (any order, duplicates, or stale)."""
        if message.dst != self._id:
            return  # misdelivered: not ours to handle
        if isinstance(message, RequestVote) and message.src not in self._membership.voters:
            return  # removed or unknown peers must not disrupt the cluster
        if message.term > self._term:
            if not self._step_higher_term(message):
                return
        elif message.term < self._term:
            self._step_lower_term(message)
            return
        self._dispatch(message)

    def _in_lease(self) -> bool:
        """CheckQuorum's leader lease: we heard from a live leader within a timeout."""
        return (
            self._config.check_quorum
            and self._leader_id is not None
            and self._election_elapsed_ticks < self._config.election_timeout_ticks
        )

    def _step_higher_term(self, message: Message) -> bool:
        """A message from a newer term; returns False if it is to be ignored."""
        match message:
            case RequestVote():
                if self._in_lease() and not message.leader_transfer:
                    return False  # a leader is alive: do not let a stray candidate depose it
                if not message.pre_vote:
                    self._become_follower(message.term, None)
            case RequestVoteResponse() if message.pre_vote and message.granted:
                pass  # carries the term we asked for, not a newer term anybody is in
            case AppendEntries() | InstallSnapshot() | TimeoutNow():
                self._become_follower(message.term, message.src)
            case _:
                self._become_follower(message.term, None)
        return True

    def _step_lower_term(self, message: Message) -> None:
        """A message from an older term: tell the sender our term, or ignore it."""
        match message:
            case AppendEntries() | InstallSnapshot():
                prev = message.prev_log_index if isinstance(message, AppendEntries) else 0
                self._send(
                    AppendEntriesResponse(
                        self._term,
                        self._id,
                        message.src,
                        False,
                        LogIndex(prev),
                        LogIndex(0),
                        Term(0),
                    )
                )
            case RequestVote():
                self._send(
                    RequestVoteResponse(
                        self._term, self._id, message.src, False, pre_vote=message.pre_vote
                    )
                )
            case _:
                pass  # stale answers to requests of an older term: nothing to learn

    def _dispatch(self, message: Message) -> None:
        match message:  # the two common messages first: each case is one isinstance test
            case AppendEntries():
                self._on_append_entries(message)
            case AppendEntriesResponse():
                self._on_append_response(message)
            case RequestVote():
                self._on_request_vote(message)
            case RequestVoteResponse():
                self._on_vote_response(message)
            case InstallSnapshot():
                self._on_install_snapshot(message)
            case InstallSnapshotResponse():
                self._on_snapshot_response(message)
            case TimeoutNow():
                self._on_timeout_now(message)
            case _:
                assert_never(message)

    def _on_request_vote(self, message: RequestVote) -> None:
        granted = vote_granted(
            request_term=message.term,
            current_term=self._term,
            voted_for=self._voted_for,
            candidate=message.src,
            candidate_last_index=message.last_log_index,
            candidate_last_term=message.last_log_term,
            own_last_index=self._log.last_index(),
            own_last_term=self._log.last_term(),
        )
        if granted and not message.pre_vote:
            assert message.term == self._term, "a real vote is cast in our current term"
            self._voted_for = message.src
            self._election_elapsed_ticks = 0  # we just helped somebody: do not compete
        reply_term = message.term if (granted and message.pre_vote) else self._term
        self._send(
            RequestVoteResponse(reply_term, self._id, message.src, granted, message.pre_vote)
        )

    def _on_vote_response(self, message: RequestVoteResponse) -> None:
        if message.pre_vote:
            if self._role is not _PRE_CANDIDATE:
                return
            if message.granted and message.term != self._term + 1:
                return  # answers an earlier pre-vote
        elif self._role is not _CANDIDATE:
            return
        self._votes.setdefault(message.src, message.granted)
        result = vote_result(self._votes, self._membership.voters)
        if result is _WON:
            if message.pre_vote:
                self._start_real_election(leader_transfer=False)
            else:
                self._become_leader()
        elif result is _LOST:
            self._become_follower(self._term, None)

    def _on_timeout_now(self, message: TimeoutNow) -> None:
        """Leader transfer: campaign at once, skipping PreVote and the lease."""
        if self._role is not _LEADER and self._promotable():
            self._campaign(leader_transfer=True)

    # --------------------------------------------------------- follower side

    def _hear_from_leader(self, leader: PeerId) -> None:
        """Same-term message from the leader: follow it and restart the election timer."""
        assert self._role is not _LEADER, f"two leaders in term {self._term}"
        if self._role is not _FOLLOWER:
            self._become_follower(self._term, leader)
        self._leader_id = leader
        self._election_elapsed_ticks = 0

    def _on_append_entries(self, message: AppendEntries) -> None:
        self._hear_from_leader(message.src)
        committed = self._log.committed
        if message.prev_log_index < committed:
            # Everything up to our commit index matches the leader's log (Leader
            # Completeness), so this (stale or overlapping) request proves nothing new.
            self._answer_append(message, True, committed)
            return
        outcome = append_entries_to_log(
            self._log,
            prev_log_index=message.prev_log_index,
            prev_log_term=message.prev_log_term,
            entries=message.entries,
            leader_commit=message.leader_commit,
            commit_index=committed,
        )
        if outcome.success:
            self._log.commit_to(outcome.commit_index)
            self._answer_append(message, True, outcome.match_index)
        else:
            self._answer_append(message, False, message.prev_log_index)

    def _answer_append(self, message: AppendEntries, success: bool, index: LogIndex) -> None:
        last = self._last_ack
        if (
            success
            and last is not None
            and last.match_index == index
            and last.dst == message.src
            and last.term == self._term
            and last.read_ctx == message.read_ctx
        ):
            self._send(last)  # the same answer as last time (a heartbeat's, typically)
            return
        hint_index, hint_term = _INDEX_0, _TERM_0
        if not success:
            hint_index, hint_term = self._reject_hint(index, message.prev_log_term)
        answer = AppendEntriesResponse(
            self._term,
            self._id,
            message.src,
            success,
            index,
            hint_index,
            hint_term,
            read_ctx=message.read_ctx,
        )
        if success:
            self._last_ack = answer
        self._send(answer)

    def _reject_hint(self, prev_index: LogIndex, prev_term: Term) -> tuple[LogIndex, Term]:
        """Fast backup: our last entry that may still match ``(prev_index, prev_term)``.

        Entries whose term exceeds ``prev_term`` cannot match the leader's entry at
        ``prev_index`` or anything before it, so we skip back over them a whole
        term at a time (stopping at the commit index, which surely matches).
        """
        index = LogIndex(min(prev_index, self._log.last_index()))
        while index > self._log.committed:
            term = self._log.term_at(index)
            if term is None or term <= prev_term:
                break
            index = LogIndex(index - 1)
        return index, self._log.term_at(index) or Term(0)

    def _on_install_snapshot(self, message: InstallSnapshot) -> None:
        self._hear_from_leader(message.src)
        meta = message.snapshot.meta
        if meta.last_index <= self._log.committed:
            pass  # stale or duplicate: never roll back
        elif self._log.match_term(meta.last_index, meta.last_term):
            self._log.commit_to(meta.last_index)  # our log already has it: keep the suffix
        else:
            self._log.restore(message.snapshot)
            self._membership = meta.membership
            self._membership_history = [(meta.last_index, meta.membership)]
        self._send(InstallSnapshotResponse(self._term, self._id, message.src, self._log.committed))

    # ----------------------------------------------------------- leader side

    def _send(self, message: Message) -> None:
        assert message.dst != self._id, "a node never messages itself"
        self._outbox.append(message)

    def _followers(self) -> Iterable[tuple[PeerId, Progress]]:
        cached = self._follower_cache
        if cached is None:
            me = self._id
            cached = [(p, pr) for p, pr in sorted(self._progress.items()) if p != me]
            self._follower_cache = cached
        return cached

    def _send_append(self, peer: PeerId, pr: Progress, send_empty: bool) -> bool:
        """Send ``peer`` the entries from ``pr.next`` if flow control allows; True if sent."""
        if pr.is_paused(self._config.max_inflight_messages):
            return False
        log = self._log
        prev = LogIndex(pr.next - 1)
        prev_term = log.term_at(prev)
        if prev_term is None or pr.next < log.first_index():
            return self._send_snapshot(peer, pr)
        last = log.last_index()
        entries: tuple[Entry, ...] = ()
        if pr.next <= last:  # (a heartbeat-only follower needs no log read at all)
            entries = tuple(
                log.entries(pr.next, LogIndex(last + 1), self._config.max_entries_per_message)
            )
        if not entries and not send_empty:
            return False
        self._send(
            AppendEntries(self._term, self._id, peer, prev, prev_term, entries, log.committed)
        )
        pr.sent_entries(entries[-1].index if entries else prev, len(entries))
        return True

    def _send_snapshot(self, peer: PeerId, pr: Progress) -> bool:
        snapshot = self._log.storage.snapshot()
        assert snapshot is not None, "entries are compacted, so a snapshot exists"
        pr.become_snapshot(snapshot.meta.last_index)
        self._send(InstallSnapshot(self._term, self._id, peer, snapshot))
        return True

    def _send_all_allowed(self, peer: PeerId, pr: Progress) -> None:
        """Send as many AppendEntries as flow control allows (bounded by the inflight limit).

        A probing follower that lags gets a probe even when there is nothing new to
        send: the answer is how we learn where its log ends.
        """
        if pr.match >= self._log.last_index():
            return
        probing = pr.state is _PROBE
        while self._send_append(peer, pr, send_empty=probing):
            if pr.state is not _REPLICATE:
                break

    def _broadcast_append(self) -> None:
        """Carry a new commit index to every follower that is not paused."""
        for peer, pr in self._followers():
            self._send_append(peer, pr, send_empty=True)

    def _broadcast_heartbeat(self, read_ctx: int) -> None:
        """Empty AppendEntries to everyone: keeps followers quiet, confirms ReadIndex rounds.

        A REPLICATE follower is asked about ``next - 1`` (so a lost tail message is
        noticed as a rejection); any other follower about ``match``, which matches.
        """
        for peer, pr in self._followers():
            prev = LogIndex(pr.next - 1 if pr.state is _REPLICATE else pr.match)
            prev_term = self._log.term_at(prev)
            if prev_term is None and pr.state is _REPLICATE:
                # ``prev`` is compacted away. Ask about the snapshot boundary instead: a follower
                # that lost entries in a crash rejects it, which moves it to probing and then to a
                # snapshot. (Asking about 0/0 always matched, so such a follower stayed stuck
                # behind a full inflight window forever: soak seed 738.)
                prev = LogIndex(self._log.first_index() - 1)
                prev_term = self._log.term_at(prev)
            if prev_term is None:
                prev, prev_term = LogIndex(0), Term(0)
            beat = self._heartbeats.get(peer)
            if (
                beat is None
                or beat.prev_log_index != prev
                or beat.prev_log_term != prev_term
                or beat.leader_commit != self._log.committed
                or beat.read_ctx != read_ctx
            ):
                beat = AppendEntries(
                    self._term, self._id, peer, prev, prev_term, (), self._log.committed, read_ctx
                )
                self._heartbeats[peer] = beat
            self._send(beat)

    def _on_append_response(self, message: AppendEntriesResponse) -> None:
        pr = self._progress.get(message.src)
        if self._role is not _LEADER or pr is None:
            return
        pr.recent_active = True
        if message.read_ctx:
            self._reads.ack(message.src, message.read_ctx)
        if self._reads.pending:
            self._release_confirmed_reads()
        if not message.success:
            hint = self._find_conflict_by_term(message.reject_hint_index, message.reject_hint_term)
            if pr.maybe_decrease_to(message.match_index, hint):
                self._send_append(message.src, pr, send_empty=False)
            return
        if pr.maybe_update(message.match_index):
            snapshot_done = pr.state is _SNAPSHOT and pr.match >= pr.pending_snapshot
            if pr.state is _PROBE or snapshot_done:
                pr.become_replicate()
            if self._maybe_commit():
                self._broadcast_append()
            self._maybe_finish_transfer(message.src, pr)
        elif pr.state is _PROBE:
            pr.probe_sent = False  # a heartbeat came back: the probe may have been lost
        self._send_all_allowed(message.src, pr)

    def _find_conflict_by_term(self, index: LogIndex, term: Term) -> LogIndex:
        """Our last index ``<= index`` whose term is ``<= term`` (or the compacted boundary)."""
        index = LogIndex(min(index, self._log.last_index()))
        while index > 0:
            own = self._log.term_at(index)
            if own is None or own <= term:
                break
            index = LogIndex(index - 1)
        return index

    def _on_snapshot_response(self, message: InstallSnapshotResponse) -> None:
        pr = self._progress.get(message.src)
        if self._role is not _LEADER or pr is None:
            return
        pr.recent_active = True
        pr.maybe_update(message.last_index)
        if pr.state is _SNAPSHOT:
            pr.become_probe()
        if self._maybe_commit():
            self._broadcast_append()
        self._send_all_allowed(message.src, pr)

    def _maybe_commit(self) -> bool:
        """Advance the commit index by the leader commit rule; True if it moved."""
        matches = {peer: pr.match for peer, pr in self._progress.items()}
        new_commit = leader_commit_index(
            matches, self._membership.voters, self._term, self._log.committed, self._log.term_at
        )
        if new_commit <= self._log.committed:
            return False
        self._log.commit_to(new_commit)
        if self._reads.awaiting_commit and self._committed_in_current_term():
            waiting, self._reads.awaiting_commit = self._reads.awaiting_commit, []
            self._start_reads(waiting)
        return True

    def _committed_in_current_term(self) -> bool:
        return self._log.term_at(self._log.committed) == self._term

    def _maybe_finish_transfer(self, peer: PeerId, pr: Progress) -> None:
        if self._lead_transferee == peer and pr.match == self._log.last_index():
            self._send(TimeoutNow(self._term, self._id, peer))

    # ------------------------------------------------------------- proposals

    def _append_own(self, kind: EntryKind, data: bytes) -> LogIndex:
        """Leader: append one entry to our log; it goes out with the next Ready (batched)."""
        index = LogIndex(self._log.last_index() + 1)
        self._log.truncate_and_append([Entry(self._term, index, kind, data)])
        self._broadcast_pending = True
        return index

    def _check_can_propose(self) -> None:
        if self._role is not _LEADER:
            raise NotLeader(self._leader_id)
        if self._lead_transferee is not None:
            raise ProposalDropped(f"leader transfer to {self._lead_transferee} in progress")
        if self._log.last_index() - self._log.committed >= MAX_UNCOMMITTED_ENTRIES:
            raise ProposalDropped("too many uncommitted entries")

    def propose(self, data: bytes) -> LogIndex:
        """Append an application command; returns its log index (not yet committed)."""
        self._check_can_propose()
        return self._append_own(EntryKind.NORMAL, data)

    def propose_conf_change(self, change: ConfChange) -> LogIndex:
        """Propose a single-step membership change; at most one may be pending."""
        self._check_can_propose()
        if self._pending_conf_index > self._log.applied:
            raise ProposalDropped(
                f"conf change at {self._pending_conf_index} not applied yet "
                f"(applied {self._log.applied})"
            )
        current = self._membership
        after = current.apply(change)
        if after == current:
            raise InvalidRequestError(f"{change.kind.name} of {change.peer} does not fit {current}")
        if not after.voters:
            raise InvalidRequestError("cannot remove the last voter")
        self._pending_conf_index = self._append_own(EntryKind.CONF_CHANGE, change.encode())
        return self._pending_conf_index

    def transfer_leader(self, target: PeerId) -> None:
        """Hand leadership to ``target`` once its log is up to date (TimeoutNow)."""
        if self._role is not _LEADER:
            raise NotLeader(self._leader_id)
        if target == self._id:
            self._lead_transferee = None  # we are already the leader: cancel any transfer
            return
        if target not in self._membership.voters:
            raise InvalidRequestError(f"transfer target {target} is not a voter")
        if self._lead_transferee == target:
            return
        self._lead_transferee = target
        self._election_elapsed_ticks = 0  # the transfer gets one election timeout
        pr = self._progress[target]
        if pr.match == self._log.last_index():
            self._send(TimeoutNow(self._term, self._id, target))
        else:
            self._send_append(target, pr, send_empty=False)

    # --------------------------------------------------------------- reads

    def read_index(self, request_ctx: bytes) -> None:
        """Ask for a linearizable read point; the answer is a ReadState in a later Ready."""
        if self._role is not _LEADER:
            raise NotLeader(self._leader_id)
        if len(self._reads) >= MAX_PENDING_READS:
            raise ProposalDropped("too many pending reads")
        if not self._committed_in_current_term():
            # A new leader's commit index may lag the cluster's (Raft §8): wait for our NOOP.
            self._reads.awaiting_commit.append(request_ctx)
            return
        self._start_reads([request_ctx])

    def _start_reads(self, contexts: list[bytes]) -> None:
        """Record the commit index for ``contexts`` and confirm leadership with a heartbeat."""
        index = self._log.committed
        if self._membership.voters <= {self._id}:
            self._read_states.extend(ReadState(ctx, index) for ctx in contexts)
            return
        self._reads.start(contexts, index, self._id)

    def _release_confirmed_reads(self) -> None:
        for read in self._reads.release(self._membership.voters):
            self._read_states.append(ReadState(read.request_ctx, read.index))

    # ------------------------------------------------------ membership changes

    def _apply_conf_change(self, entry: Entry) -> None:
        """A committed CONF_CHANGE entry was applied: it takes effect now."""
        change = ConfChange.decode(entry.data)
        after = self._membership.apply(change)
        if after == self._membership:
            return
        self._membership = after
        self._membership_history.append((entry.index, after))
        if self._role is not _LEADER:
            return
        if self._id not in after.voters:
            self._become_follower(self._term, None)  # we were removed: stop leading
            return
        last = self._log.last_index()
        for peer in after.members - self._progress.keys():
            self._progress[peer] = Progress(match=LogIndex(0), next=LogIndex(last + 1))
            self._broadcast_pending = True
        for peer in self._progress.keys() - after.members - {self._id}:
            del self._progress[peer]
        self._follower_cache = None
        if self._lead_transferee is not None and self._lead_transferee not in after.voters:
            self._lead_transferee = None
        if change.kind is not ConfChangeKind.ADD_LEARNER and self._maybe_commit():
            self._broadcast_append()  # a smaller quorum may already hold later entries
        self._release_confirmed_reads()

    def _membership_at(self, index: LogIndex) -> Membership:
        """The membership as of log index ``index`` (``index`` >= the snapshot index)."""
        found = self._membership_history[0][1]
        for at, membership in self._membership_history:
            if at <= index:
                found = membership
        return found

    # ------------------------------------------------------------ Ready cycle

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._voted_for, self._log.committed)

    def has_ready(self) -> bool:
        """True if :meth:`ready` would return work (always False while one is outstanding)."""
        if self._outstanding is not None:
            return False
        log, persisted = self._log, self._persisted_hard_state
        return bool(
            self._broadcast_pending
            or self._reads.round_open
            or self._outbox
            or self._read_states
            or log.unstable
            or log.pending_snapshot is not None
            # field by field: the same test as comparing HardStates, without building one
            or self._term != persisted.term
            or self._voted_for != persisted.voted_for
            or log.committed != persisted.commit
            or (log.committed > log.applied and log.committed > log.snapshot_index())
        )

    def ready(self) -> Ready:
        """Collect the work to do; call :meth:`advance` with it once it is done."""
        assert self._outstanding is None, "advance() the previous Ready first"
        if self._reads.round_open:
            self._broadcast_heartbeat(self._reads.take_round())
        if self._broadcast_pending:
            self._broadcast_pending = False
            if self._role is _LEADER:
                for peer, pr in self._followers():
                    self._send_all_allowed(peer, pr)  # all proposals since the last Ready
        persisted = self._persisted_hard_state
        entries = tuple(self._log.unstable)
        snapshot = self._log.pending_snapshot
        vote_changed = self._term != persisted.term or self._voted_for != persisted.voted_for
        must_sync = bool(entries) or snapshot is not None or vote_changed
        # A new HardState only when a field differs (most Readys change none of them).
        changed = vote_changed or self._log.committed != persisted.commit
        log = self._log
        ready = Ready(
            hard_state=self._hard_state() if changed else None,
            entries=entries,
            snapshot=snapshot,
            messages=tuple(self._outbox),
            committed_entries=tuple(self._next_committed_entries())
            if log.committed > log.applied
            else (),
            read_states=tuple(self._read_states),
            must_sync=must_sync,
        )
        self._outbox.clear()
        self._read_states.clear()
        self._outstanding = ready
        return ready

    def _next_committed_entries(self) -> list[Entry]:
        if self._log.committed <= self._log.applied:
            return []  # nothing new (the snapshot bound below only raises lo further)
        lo = LogIndex(max(self._log.applied, self._log.snapshot_index()) + 1)
        hi = LogIndex(self._log.committed + 1)
        if lo >= hi:
            return []
        return self._log.entries(lo, hi, MAX_COMMITTED_ENTRIES_PER_READY)

    def advance(self, ready: Ready) -> None:
        """The driver persisted, sent and applied ``ready``."""
        assert ready is self._outstanding, "advance() takes the Ready returned by ready()"
        self._outstanding = None
        if ready.snapshot is not None:
            index = ready.snapshot.meta.last_index
            self._log.stable_snapshot_to(index)
            self._log.applied_to(index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
        if ready.hard_state is not None:
            self._persisted_hard_state = ready.hard_state
        for entry in ready.committed_entries:
            if entry.kind is _CONF_CHANGE:
                self._apply_conf_change(entry)
        if ready.committed_entries:
            self._log.applied_to(ready.committed_entries[-1].index)
        own = self._progress.get(self._id)
        if self._role is _LEADER and own is not None:
            stable = LogIndex(min(self._log.unstable_offset - 1, self._log.last_index()))
            if own.maybe_update(stable) and self._maybe_commit():
                self._broadcast_append()

    # ------------------------------------------------------------- compaction

    def compact(self, index: LogIndex, data: bytes) -> Snapshot:
        """Build a snapshot of the application state ``data`` taken at applied ``index``.

        The caller then hands it to ``storage.compact(index, snapshot)``.
        """
        if index > self._log.applied:
            raise InvalidRequestError(f"cannot snapshot at {index}: applied is {self._log.applied}")
        if index <= self._log.snapshot_index():
            raise InvalidRequestError(f"{index} is already compacted")
        term = self._log.term_at(index)
        assert term is not None, "an applied, uncompacted index has a term"
        membership = self._membership_at(index)
        self._membership_history = [(index, membership)] + [
            (at, m) for at, m in self._membership_history if at > index
        ]
        return Snapshot(SnapshotMeta(index, term, membership), data)

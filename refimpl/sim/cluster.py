"""SimCluster: every peer's Raft core in one process, driven by a seeded scheduler.

Rules:

* time is a virtual tick counter; nothing reads a clock. All randomness comes from
  ``random.Random`` streams derived from the seed (network, fault scheduler, each node's
  incarnation), so ``(seed, faults, options)`` replays a run exactly;
* :meth:`SimCluster._drive` is *the* driver loop of the Raft contract, implemented once:
  apply the snapshot, append entries, write the hard state, fsync if asked, then send the
  messages, then apply committed entries, then ``advance``. Everything else calls it;
* the invariant checker (:class:`refimpl.testing.invariants.RaftInvariants`) sees every
  append, fsync, send, apply and role change as it happens;
* a crashed node has no ``RaftNode`` at all; restarting builds a new one from the durable
  state of its :class:`SimDisk` (the state machine restarts from the durable snapshot).

Theory of operation, one tick: advance the clock; let the fault scheduler partition, heal,
crash or restart; let clients act; then, for every live node in a seeded random order, step
every message that arrived for it, tick it once, and run the driver loop once for the batch
(as a real peer's event loop does).
A scripted test skips the scheduler and calls the same verbs itself (``partition``,
``crash``, ``restart``, ``propose``, ``deliver``), and can capture messages with
``intercept`` to reorder or duplicate them by hand.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from refimpl.ids import LogIndex, PeerId, Term, Tick
from refimpl.raft import (
    ConfChange,
    Entry,
    EntryKind,
    LogUnavailableError,
    Membership,
    MemoryStorage,
    Message,
    RaftConfig,
    RaftNode,
    Ready,
    Role,
    Snapshot,
)
from refimpl.sim.disk import SimDisk
from refimpl.sim.faults import Faults
from refimpl.sim.kv import Command, KvStateMachine
from refimpl.sim.network import SendOutcome, SimNetwork
from refimpl.sim.transcript import Transcript, peer_name
from refimpl.testing.invariants import DurableView, RaftInvariants

__all__ = ["NodeDownError", "RoleChange", "SimCluster", "SimNode"]
_TERM_0 = Term(0)
_INDEX_0 = LogIndex(0)
_TICK_0 = Tick(0)

# Enum members compared on hot paths, bound once to module names: in Python 3.11 each
# ``Enum.MEMBER`` is looked up through the enum's metaclass, several times slower than a global.
_CONF_CHANGE = EntryKind.CONF_CHANGE
_NOOP = EntryKind.NOOP
_NORMAL = EntryKind.NORMAL
_LEADER = Role.LEADER
_QUEUED = SendOutcome.QUEUED


class NodeDownError(Exception):
    """A request to a crashed node (definite: the node did nothing)."""


@dataclass(frozen=True, slots=True)
class RoleChange:
    """A structured role/term change, for timelines in the book (``role`` None = crashed)."""

    tick: Tick
    node: PeerId
    role: Role | None
    term: Term


@dataclass(frozen=True, slots=True)
class Segment:
    """One stretch of a node's timeline: ``[start, end)`` in one role and term (None = down)."""

    node: PeerId
    start: Tick
    end: Tick
    role: Role | None
    term: Term


ApplyHook = Callable[[PeerId, Entry, object], None]
ReadHook = Callable[[PeerId, bytes, LogIndex], None]


@dataclass
class SimNode:
    """One simulated peer: its disk survives crashes, everything else is rebuilt."""

    id: PeerId
    disk: SimDisk
    config: RaftConfig
    raft: RaftNode | None = None
    sm: KvStateMachine = field(default_factory=KvStateMachine)
    incarnation: int = 0
    role: Role = Role.FOLLOWER
    term: Term = _TERM_0
    commit: LogIndex = _INDEX_0
    down_until: Tick | None = None
    last_snapshot_index: LogIndex = _INDEX_0
    durable_view: tuple[int, int, DurableView] | None = field(
        default=None, repr=False, compare=False
    )
    """(disk syncs, incarnation, view): the durable state only changes at a sync or a crash, so
    the view the G5 checker reads is rebuilt only then, not for every Ready."""

    @property
    def alive(self) -> bool:
        """True while the node runs."""
        return self.raft is not None

    def term_at(self, index: LogIndex) -> Term | None:
        """The node's (visible) log term at ``index``, None if it has no entry there."""
        return _term_or_none(self.disk.visible, index)


def _term_or_none(storage: MemoryStorage, index: LogIndex) -> Term | None:
    try:
        return storage.term(index)
    except LogUnavailableError:
        return None


def _term_reader(storage: MemoryStorage) -> Callable[[LogIndex], Term | None]:
    """``_term_or_none`` bound to ``storage`` (one call less per read)."""
    term = storage.term

    def term_at(index: LogIndex) -> Term | None:
        try:
            return term(index)
        except LogUnavailableError:
            return None

    return term_at


@dataclass
class SimCluster:
    """A cluster of simulated peers; see the module docstring."""

    peers: int = 3
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    raft: RaftConfig = field(default_factory=lambda: RaftConfig(id=PeerId(1)))
    voters: Sequence[int] | None = None
    """Initial voters (default: all peers); the others start empty and wait to be added."""
    snapshot_every_entries: int = 0
    """The application compacts the log every this many applied entries (0 = never)."""
    transcript: Transcript = field(default_factory=Transcript)
    checker: RaftInvariants = field(default_factory=RaftInvariants)
    now: Tick = _TICK_0
    nodes: dict[PeerId, SimNode] = field(default_factory=dict)
    role_changes: list[RoleChange] = field(default_factory=list)
    apply_hooks: list[ApplyHook] = field(default_factory=list)
    read_hooks: list[ReadHook] = field(default_factory=list)
    tick_hooks: list[Callable[[SimCluster], None]] = field(default_factory=list)
    intercept: Callable[[Message], bool] | None = None
    """If set and it returns True for a sent message, the message goes to ``held`` instead."""
    held: list[Message] = field(default_factory=list)
    crash_at_next_sync: set[PeerId] = field(default_factory=set)
    """Disk fault: these nodes lose power at their next fsync, before it completes."""
    events: int = 0

    def __post_init__(self) -> None:
        self.network = SimNetwork(self.faults, random.Random(f"{self.seed}/net"))
        self.fault_rng = random.Random(f"{self.seed}/faults")
        self.sched_rng = random.Random(f"{self.seed}/sched")
        for a, b in self.faults.cut_links:
            self.network.cut(PeerId(a), PeerId(b), both_ways=False)
        ids = [PeerId(i) for i in range(1, self.peers + 1)]
        voters = frozenset(PeerId(v) for v in (self.voters or ids))
        for pid in ids:
            durable = (
                MemoryStorage.bootstrap(Membership(voters)) if pid in voters else MemoryStorage()
            )
            node = SimNode(pid, SimDisk(durable), replace(self.raft, id=pid))
            self.nodes[pid] = node
            self._start(node)

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self, node: SimNode) -> None:
        rng = random.Random(f"{self.seed}/n{node.id}/{node.incarnation}")
        snap = node.disk.visible.snapshot()
        node.sm = KvStateMachine.decode(snap.data) if snap is not None else KvStateMachine()
        snapshot_index = snap.meta.last_index if snap is not None else LogIndex(0)
        node.sm.applied_index = snapshot_index
        node.last_snapshot_index = snapshot_index
        raft = RaftNode(node.config, node.disk, rng)
        node.raft = raft
        node.role, node.term, node.commit = raft.role, raft.term, raft.commit_index
        node.down_until = None
        self.checker.on_restart(node.id, raft.term, node.sm.applied_index, snapshot_index)
        self._drive(node)

    def crash(self, peer: int, torn: bool | None = None) -> None:
        """Power loss: the node stops, unsynced writes are lost (or torn)."""
        node = self.nodes[PeerId(peer)]
        if node.raft is None:
            return
        tear = self.faults.torn_writes if torn is None else torn
        note = node.disk.crash(self.fault_rng, tear)
        node.raft = None
        node.role = Role.FOLLOWER
        self.role_changes.append(RoleChange(self.now, node.id, None, node.term))
        self.transcript.record(self.now, f"{peer_name(node.id)} crash ({note})")

    def restart(self, peer: int) -> None:
        """Start a crashed node again from its durable state."""
        node = self.nodes[PeerId(peer)]
        if node.raft is not None:
            return
        node.incarnation += 1
        self._start(node)
        self.role_changes.append(RoleChange(self.now, node.id, node.role, node.term))
        self.transcript.record(
            self.now,
            f"{peer_name(node.id)} restart term={node.term} "
            f"vote={peer_name(node.raft.voted_for if node.raft else None)} "
            f"commit={node.commit} last={node.disk.last_index()}",
        )

    # -- network verbs -------------------------------------------------------------------
    def partition(self, *groups: Iterable[int]) -> None:
        """Symmetric partition into ``groups``; the peers not named form one more group."""
        listed = [[PeerId(p) for p in g] for g in groups]
        named = {p for g in listed for p in g}
        others = [p for p in self.nodes if p not in named]
        rest = [others] if others else []
        self.network.partition(listed + rest)
        text = " | ".join(",".join(peer_name(p) for p in g) for g in listed + rest)
        self.transcript.record(self.now, f"partition {text}")

    def cut(self, a: int, b: int, both_ways: bool = True) -> None:
        """Cut the link ``a → b`` (and ``b → a`` unless ``both_ways`` is False)."""
        self.network.cut(PeerId(a), PeerId(b), both_ways)
        arrow = "↔" if both_ways else "→"
        self.transcript.record(self.now, f"cut {peer_name(PeerId(a))}{arrow}{peer_name(PeerId(b))}")

    def heal(self) -> None:
        """Restore every link."""
        self.network.heal()
        self.transcript.record(self.now, "heal")

    def deliver(self, message: Message) -> None:
        """Step ``message`` into its destination now (scripted delivery; no link checks)."""
        node = self.nodes[message.dst]
        if node.raft is None:
            self.transcript.message(self.now, message, "lost: node down")
            return
        self.transcript.message(self.now, message)
        self.events += 1
        self.checker.now = self.now
        node.raft.step(message)
        self._drive(node)

    def force_timeout(self, peer: int) -> None:
        """Scripting aid: tick only ``peer`` until its election timer fires, now."""
        node, raft = self._live_raft(peer)
        self.transcript.record(self.now, f"{peer_name(node.id)} election timeout (forced)")
        for _ in range(2 * node.config.election_timeout_ticks + 1):
            raft.tick()
            if raft.has_ready():
                break
        self.events += 1
        self._drive(node)

    def deliver_batch(self, messages: Sequence[Message]) -> None:
        """Step several messages into their destinations, then drive each node once.

        This is what one tick of a real event loop does with every message that arrived
        meanwhile; a script uses it to put two messages in the same Ready.
        """
        touched: list[SimNode] = []
        for message in messages:
            node = self.nodes[message.dst]
            if node.raft is None:
                continue
            self.transcript.message(self.now, message)
            self.events += 1
            node.raft.step(message)
            if node not in touched:
                touched.append(node)
        for node in touched:
            self._drive(node)

    # -- client verbs --------------------------------------------------------------------
    def _live_raft(self, peer: int) -> tuple[SimNode, RaftNode]:
        node = self.nodes[PeerId(peer)]
        if node.raft is None:
            raise NodeDownError(f"{peer_name(node.id)} is down")
        return node, node.raft

    def propose(self, peer: int, data: bytes) -> LogIndex:
        """Propose a command at ``peer``; raises NotLeader, ProposalDropped or NodeDownError."""
        node, raft = self._live_raft(peer)
        index = raft.propose(data)
        if self.transcript.enabled:
            self.transcript.record(
                self.now, f"{peer_name(node.id)} propose {_describe(data)} at {index}"
            )
        self._drive(node)
        return index

    def propose_conf_change(self, peer: int, change: ConfChange) -> LogIndex:
        """Propose a membership change at ``peer``."""
        node, raft = self._live_raft(peer)
        index = raft.propose_conf_change(change)
        self.transcript.record(
            self.now,
            f"{peer_name(node.id)} propose {change.kind.name} {peer_name(change.peer)} at {index}",
        )
        self._drive(node)
        return index

    def read_index(self, peer: int, ctx: bytes) -> None:
        """Start a ReadIndex read at ``peer``; its ReadState reaches ``read_hooks``."""
        node, raft = self._live_raft(peer)
        raft.read_index(ctx)
        self._drive(node)

    def transfer_leader(self, peer: int, target: int) -> None:
        """Ask leader ``peer`` to hand leadership to ``target``."""
        node, raft = self._live_raft(peer)
        raft.transfer_leader(PeerId(target))
        self.transcript.record(self.now, f"{peer_name(node.id)} transfer leadership to n{target}")
        self._drive(node)

    # -- the driver loop -----------------------------------------------------------------
    def _drive(self, node: SimNode) -> None:
        """Carry out every Ready of ``node`` in the contract's order (see the module doc)."""
        raft = node.raft
        assert raft is not None
        while raft.has_ready():
            rd = raft.ready()
            if rd.must_sync and node.id in self.crash_at_next_sync:
                self.crash_at_next_sync.discard(node.id)
                self.transcript.record(self.now, f"{peer_name(node.id)} power loss during fsync")
                self._persist(node, replace(rd, must_sync=False))
                self.crash(node.id)
                return
            if rd.entries or rd.hard_state is not None or rd.snapshot is not None:
                self._persist(node, rd)
            if rd.messages:
                self._send(node, rd.messages)
            if rd.committed_entries or rd.read_states or rd.snapshot is not None:
                self._apply(node, rd)
            raft.advance(rd)
        self._observe(node, raft)
        self._maybe_compact(node, raft)

    def _persist(self, node: SimNode, rd: Ready) -> None:
        disk = node.disk
        if rd.snapshot is not None:
            disk.apply_snapshot(rd.snapshot)
        if rd.entries:
            first = rd.entries[0].index
            prev = _term_or_none(disk.visible, LogIndex(first - 1))
            disk.append(rd.entries)
            self.checker.on_append(node.id, rd.entries, prev)
        if rd.hard_state is not None:
            disk.set_hard_state(rd.hard_state)
        if rd.must_sync:
            disk.sync()
            self.checker.on_sync(node.id, disk.durable.hard_state())

    def _durable_view(self, node: SimNode) -> DurableView:
        disk = node.disk
        cached = node.durable_view
        if cached is not None and cached[0] == disk.syncs and cached[1] == node.incarnation:
            return cached[2]
        durable = disk.durable
        snap = durable.snapshot()
        # ``disk.visible`` is replaced only by a crash, and a restart bumps the incarnation,
        # which rebuilds this view: binding the running copy's reads here is safe.
        view = DurableView(
            hard_state=durable.hard_state(),
            last_index=durable.last_index(),
            snapshot_index=snap.meta.last_index if snap is not None else LogIndex(0),
            term_at=_term_reader(durable),
            visible_term_at=_term_reader(disk.visible),
        )
        node.durable_view = (disk.syncs, node.incarnation, view)
        return view

    def _send(self, node: SimNode, messages: Sequence[Message]) -> None:
        if not messages:
            return
        self.checker.on_send_all(node.id, messages, self._durable_view(node))
        send, transcript, now = self.network.send, self.transcript, self.now
        intercept, queued = self.intercept, _QUEUED
        for m in messages:
            if intercept is not None and intercept(m):
                self.held.append(m)
                transcript.message(now, m, "held")
                continue
            outcome = send(now, m)
            if outcome is not queued and transcript.enabled:
                transcript.message(now, m, outcome.value)

    def _apply(self, node: SimNode, rd: Ready) -> None:
        if rd.snapshot is not None and rd.snapshot.meta.last_index > node.sm.applied_index:
            self._restore(node, rd.snapshot)
        for entry in rd.committed_entries:
            if entry.index <= node.sm.applied_index:
                continue  # already in the restored snapshot
            result: object = None
            if entry.kind is _NORMAL:
                result = node.sm.apply(entry.index, entry.data)
            else:
                node.sm.skip(entry.index)
            self.checker.on_apply(node.id, entry)
            if self.transcript.enabled and entry.kind is not _NOOP:
                self.transcript.record(
                    self.now,
                    f"{peer_name(node.id)} apply {entry.index}/{entry.term} "
                    f"{_describe(entry.data, entry.kind)}"
                    + (f" → {result!r}" if entry.kind is _NORMAL else ""),
                )
            for hook in self.apply_hooks:
                hook(node.id, entry, result)
        for rs in rd.read_states:
            for read_hook in self.read_hooks:
                read_hook(node.id, rs.request_ctx, rs.index)

    def _restore(self, node: SimNode, snap: Snapshot) -> None:
        node.sm = KvStateMachine.decode(snap.data)
        node.sm.applied_index = snap.meta.last_index
        node.last_snapshot_index = snap.meta.last_index
        self.checker.on_snapshot_restored(node.id, snap)
        self.transcript.record(
            self.now,
            f"{peer_name(node.id)} restore snapshot {snap.meta.last_index}/{snap.meta.last_term}",
        )

    def _observe(self, node: SimNode, raft: RaftNode) -> None:
        """Log role, term and commit changes; run the become-leader checks."""
        role, term = raft.role, raft.term
        if role is not node.role or term != node.term:
            change = (
                f"role {node.role.name}→{role.name} term={term}"
                if role is not node.role
                else f"term {node.term}→{term} ({role.name})"
            )
            self.transcript.record(self.now, f"{peer_name(node.id)} {change}")
            self.role_changes.append(RoleChange(self.now, node.id, role, term))
            if role is _LEADER:
                snap = node.disk.visible.snapshot()
                self.checker.on_become_leader(
                    node.id,
                    term,
                    snap.meta.last_index if snap is not None else LogIndex(0),
                    node.term_at,
                )
            node.role, node.term = role, term
        if raft.commit_index != node.commit:
            if role is _LEADER:
                self.transcript.record(self.now, f"{peer_name(node.id)} commit={raft.commit_index}")
            node.commit = raft.commit_index

    def _maybe_compact(self, node: SimNode, raft: RaftNode) -> None:
        every = self.snapshot_every_entries
        if every and node.sm.applied_index - node.last_snapshot_index >= every:
            index = node.sm.applied_index
            snap = raft.compact(index, node.sm.encode())
            node.disk.compact(index, snap)
            node.last_snapshot_index = index
            self.transcript.record(self.now, f"{peer_name(node.id)} compact to {index}")

    # -- the scheduler -------------------------------------------------------------------
    def tick(self) -> None:
        """Advance the virtual clock by one tick (see the module docstring).

        Like a real peer's loop, each live node first steps every message that arrived for it
        during this tick, then ticks, then drives one Ready for the whole batch.
        """
        self.now = Tick(self.now + 1)
        self.checker.now = self.now
        self._scheduled_faults()
        for hook in self.tick_hooks:
            hook(self)
        now, transcript = self.now, self.transcript
        due = self.network.pop_all_due(now)
        order = [n for n in self.nodes.values() if n.raft is not None]
        self.sched_rng.shuffle(order)
        events = 0
        for node in order:
            raft = node.raft
            if raft is None:
                continue  # crashed by a hook during this tick
            arrived = due.get(node.id)
            if arrived:
                events += len(arrived)
                step = raft.step
                for m in arrived:
                    if transcript.enabled:  # (formatting is the costly part: skip the call)
                        transcript.message(now, m)
                    step(m)
            raft.tick()
            events += 1
            self._drive(node)
        self.events += events

    def run(self, ticks: int) -> None:
        """Run ``ticks`` ticks."""
        for _ in range(ticks):
            self.tick()

    def run_until(self, predicate: Callable[[SimCluster], bool], max_ticks: int) -> bool:
        """Tick until ``predicate(self)`` holds (checked before each tick); False on timeout."""
        for _ in range(max_ticks):
            if predicate(self):
                return True
            self.tick()
        return predicate(self)

    def _scheduled_faults(self) -> None:
        f, rng = self.faults, self.fault_rng
        for node in self.nodes.values():
            if node.raft is None and node.down_until is not None and node.down_until <= self.now:
                self.restart(node.id)
        if f.partition_every_ticks and rng.random() < 1 / f.partition_every_ticks:
            if self.network.blocked:
                self.heal()
            else:
                self._random_partition(rng)
        if f.crash_every_ticks and rng.random() < 1 / f.crash_every_ticks:
            alive = [n for n in self.nodes.values() if n.raft is not None]
            if alive:
                victim = rng.choice(alive)
                self.crash(victim.id)
                victim.down_until = Tick(self.now + rng.randint(1, 2 * f.restart_after_ticks))

    def _random_partition(self, rng: random.Random) -> None:
        ids = sorted(self.nodes)
        shape = rng.randrange(4)
        if shape == 0:  # split in two
            rng.shuffle(ids)
            k = rng.randint(1, len(ids) - 1)
            self.partition(ids[:k], ids[k:])
        elif shape == 1:  # isolate one node
            victim = rng.choice(ids)
            self.partition([p for p in ids if p != victim], [victim])
        elif shape == 2:  # one-way cut
            a, b = rng.sample(ids, 2)
            self.cut(a, b, both_ways=False)
        else:  # bridge: a and b cannot talk, everybody else talks to both
            a, b = rng.sample(ids, 2)
            self.cut(a, b)

    # -- queries -------------------------------------------------------------------------
    def node(self, peer: int) -> SimNode:
        """The simulated node with id ``peer``."""
        return self.nodes[PeerId(peer)]

    def leader(self) -> PeerId | None:
        """The live leader with the highest term (None if there is none)."""
        best: SimNode | None = None
        for node in self.nodes.values():
            raft = node.raft
            if (
                raft is not None
                and raft.role is _LEADER
                and (best is None or raft.term > best.term)
            ):
                best = node
        return None if best is None else best.id

    def timeline(self) -> list[Segment]:
        """Every node's roles over time, as segments up to now (for plots)."""
        segments: list[Segment] = []
        for peer in sorted(self.nodes):
            start, role, term = _TICK_0, Role.FOLLOWER, _TERM_0
            current: Role | None = role
            for change in (ch for ch in self.role_changes if ch.node == peer):
                if change.tick > start:
                    segments.append(Segment(peer, start, change.tick, current, term))
                start, current, term = change.tick, change.role, change.term
            segments.append(Segment(peer, start, Tick(self.now + 1), current, term))
        return segments

    def leaders_by_term(self) -> dict[Term, PeerId]:
        """Every term that had a leader, and who it was (from the G1 checker)."""
        return dict(sorted(self.checker.leaders.items()))

    def live(self) -> list[SimNode]:
        """The running nodes."""
        return [n for n in self.nodes.values() if n.raft is not None]

    def all_applied(self, index: int) -> bool:
        """True iff every live member applied at least ``index``.

        Members are those of the current leader's configuration (a removed node that never
        learnt of its removal does not count); without a leader, every node that lists itself.
        """
        leader = self.leader()
        raft = self.nodes[leader].raft if leader is not None else None
        members = raft.membership.members if raft is not None else None
        return all(
            n.sm.applied_index >= index
            for n in self.live()
            if n.raft is not None and n.id in (members or n.raft.membership.members)
        )

    def heal_all(self) -> None:
        """Heal the network and restart every crashed node (the "heal" of scenario L)."""
        self.heal()
        for node in self.nodes.values():
            if node.raft is None:
                self.restart(node.id)


def _describe(data: bytes, kind: EntryKind = EntryKind.NORMAL) -> str:
    if kind is _CONF_CHANGE:
        change = ConfChange.decode(data)
        return f"{change.kind.name} {peer_name(change.peer)}"
    if kind is _NOOP:
        return "no-op"
    try:
        return str(Command.decode(data))
    except (ValueError, IndexError, TypeError):
        return repr(data)

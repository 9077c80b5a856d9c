"""Simulated clients: propose key-value operations and record a Jepsen-style history.

Rules:

* every operation is recorded as ``invoke`` and then exactly one of ``ok`` (applied, with the
  state machine's result), ``fail`` (definite: rejected before it entered any log, or another
  entry was applied at the index it got) or ``info`` (indefinite: no answer within the
  client's timeout — it may still take effect later);
* a client has at most one operation outstanding (Jepsen's "process"); it sends to the peer it
  believes leads, follows a ``NotLeader`` hint once, and otherwise picks a random live peer;
* reads go through the log by default; ``read_index=True`` makes reads use ReadIndex and serve
  from the local state machine once it has applied the returned index.

Theory of operation: the cluster calls :meth:`Workload.on_tick` every tick, and the apply and
read-state hooks as entries are applied; the workload completes operations from those hooks.
The first apply of an index decides (apply agreement, G3, makes every other apply the same).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId, Tick
from refimpl.raft import Entry, NotLeader, ProposalDropped
from refimpl.sim.cluster import NodeDownError, SimCluster
from refimpl.sim.kv import Command
from refimpl.testing.linearizability import History, KvOp, OpKind

__all__ = ["Workload"]


@dataclass
class _Pending:
    op_id: int
    command: Command
    data: bytes
    deadline: Tick
    index: LogIndex | None = None
    read_node: PeerId | None = None
    read_index: LogIndex | None = None


@dataclass
class Workload:
    """``clients`` concurrent clients issuing random put/get/cas on ``keys``."""

    cluster: SimCluster
    clients: int = 3
    keys: tuple[str, ...] = ("x", "y")
    ops_every_ticks: int = 5
    """Mean ticks between a client's operations."""
    timeout_ticks: int = 40
    read_index: bool = False
    seed: int = 0
    history: History = field(default_factory=History)
    proposals: int = 0
    committed: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _by_index: dict[LogIndex, list[int]] = field(default_factory=dict)
    _seq: int = 0
    _leader_hint: PeerId | None = None
    stopped: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}/workload")
        self.cluster.tick_hooks.append(self.on_tick)
        self.cluster.apply_hooks.append(self.on_apply)
        self.cluster.read_hooks.append(self.on_read_state)

    def _random_op(self) -> KvOp:
        key = self.rng.choice(self.keys)
        roll = self.rng.random()
        value = str(self.rng.randrange(5))
        if roll < 0.4:
            return KvOp(OpKind.PUT, key, value)
        if roll < 0.8:
            return KvOp(OpKind.GET, key)
        return KvOp(OpKind.CAS, key, value, str(self.rng.randrange(5)))

    def on_tick(self, cluster: SimCluster) -> None:
        """Time out stale operations and start new ones."""
        for client, p in list(self._pending.items()):
            if cluster.now >= p.deadline:
                self.history.info(p.op_id)
                del self._pending[client]
            elif p.read_index is not None and p.read_node is not None:
                self._try_serve_read(client, p)
        if self.stopped:
            return
        for client in range(self.clients):
            if client not in self._pending and self.rng.random() < 1 / self.ops_every_ticks:
                self._start(client, self._random_op())

    def _target(self) -> PeerId | None:
        if self._leader_hint is not None and self.cluster.nodes[self._leader_hint].alive:
            return self._leader_hint
        live = self.cluster.live()
        return self.rng.choice(live).id if live else None

    def _start(self, client: int, op: KvOp) -> None:
        self._seq += 1
        command = Command(client, self._seq, op)
        op_id = self.history.invoke(client, op)
        p = _Pending(op_id, command, command.encode(), Tick(self.cluster.now + self.timeout_ticks))
        self._pending[client] = p
        self.proposals += 1
        target = self._target()
        for _ in range(2):  # one redirect on a NotLeader hint
            if target is None:
                break
            try:
                if self.read_index and op.kind is OpKind.GET:
                    p.read_node = target
                    self.cluster.read_index(target, p.data)
                else:
                    p.index = self.cluster.propose(target, p.data)
                    self._by_index.setdefault(p.index, []).append(client)
                self._leader_hint = target
                return
            except NotLeader as exc:
                target = exc.leader_id
                self._leader_hint = target
            except (ProposalDropped, NodeDownError):
                break
        self._leader_hint = None
        self.history.fail(op_id)
        del self._pending[client]

    def on_apply(self, node: PeerId, entry: Entry, result: object) -> None:
        """Complete the operation that was proposed at ``entry.index``, if any."""
        for client in self._by_index.pop(entry.index, []):
            p = self._pending.get(client)
            if p is None or p.index != entry.index:
                continue  # timed out already: it stays indefinite
            del self._pending[client]
            if entry.data == p.data:
                self.committed += 1
                self.history.ok(p.op_id, _value(result))
            else:
                self.history.fail(p.op_id)

    def on_read_state(self, node: PeerId, ctx: bytes, index: LogIndex) -> None:
        """A ReadIndex answer: serve the read once ``node`` applied ``index``."""
        for client, p in list(self._pending.items()):
            if p.read_node == node and p.data == ctx and p.read_index is None:
                p.read_index = index
                self._try_serve_read(client, p)

    def _try_serve_read(self, client: int, p: _Pending) -> None:
        assert p.read_node is not None and p.read_index is not None
        node = self.cluster.nodes[p.read_node]
        if not node.alive:
            return
        if node.sm.applied_index >= p.read_index:
            del self._pending[client]
            self.committed += 1
            self.history.ok(p.op_id, node.sm.data.get(p.command.op.key))

    def finish(self) -> None:
        """Stop issuing; every operation still open becomes indefinite."""
        self.stopped = True
        for p in self._pending.values():
            self.history.info(p.op_id)
        self._pending.clear()


def _value(result: object) -> str | bool | None:
    assert result is None or isinstance(result, str | bool), result
    return result

"""One whole randomized simulation: faults, a client workload, every checker, one report.

Rules:

* :func:`run_simulation` is a pure function of ``(seed, SimOptions, Faults)``: running it twice
  gives the same report (and the same transcript);
* a run has three phases: ``ticks`` ticks under faults with clients writing; *heal* (every
  link restored, every crashed node restarted, clients stopped); then the liveness check **L**:
  a leader within ``10·ET`` and a fresh proposal applied on every live member within ``20·ET``;
* the safety checkers (G1–G5) run after every event; the client history is checked for
  linearizability (G6) at the end; every failure is reported with the command that replays it;
* ``checks=False`` (for benchmarks only) turns G1–G6 off: the run is the same event for event,
  but nothing is checked except liveness (L); the checker still records the applied entries and
  the leader of each term, which the liveness check and the report read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import Entry, HardState, Message, NotLeader, ProposalDropped, RaftConfig
from refimpl.sim.client import Workload
from refimpl.sim.cluster import SimCluster
from refimpl.sim.faults import Faults
from refimpl.sim.kv import Command
from refimpl.sim.transcript import Transcript
from refimpl.testing.invariants import DurableView, InvariantViolationError, RaftInvariants
from refimpl.testing.linearizability import CheckResult, KvOp, OpKind, check_history

__all__ = ["SimOptions", "SimReport", "check_liveness", "run_simulation"]


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Cluster and workload options of one run (faults are separate)."""

    peers: int = 3
    ticks: int = 1000
    pre_vote: bool = True
    check_quorum: bool = True
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 1
    snapshot_every_entries: int = 0
    clients: int = 3

    def to_args(self) -> list[str]:
        """Flags for ``refimpl sim`` that rebuild these options."""
        args = ["--peers", str(self.peers), "--ticks", str(self.ticks)]
        if not self.pre_vote:
            args.append("--no-prevote")
        if not self.check_quorum:
            args.append("--no-checkquorum")
        if self.snapshot_every_entries:
            args += ["--snapshot-every", str(self.snapshot_every_entries)]
        return args

    def raft_config(self) -> RaftConfig:
        """The template config every node gets (with its own id)."""
        return RaftConfig(
            id=PeerId(1),
            election_timeout_ticks=self.election_timeout_ticks,
            heartbeat_interval_ticks=self.heartbeat_interval_ticks,
            pre_vote=self.pre_vote,
            check_quorum=self.check_quorum,
        )


@dataclass
class SimReport:
    """What a run found."""

    seed: int
    options: SimOptions
    faults: Faults
    leaders_by_term: dict[Term, PeerId] = field(default_factory=dict)
    max_applied: int = 0
    proposals: int = 0
    committed: int = 0
    events: int = 0
    ticks: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True iff no checker complained."""
        return not self.violations

    def replay_command(self) -> str:
        """The exact command line that reproduces this run."""
        args = ["refimpl", "sim", "--seed", str(self.seed), *self.options.to_args()]
        return " ".join(args + self.faults.to_args())


class _RecordsOnly(RaftInvariants):
    """A checker that checks nothing: it only keeps what liveness and the report read."""

    def on_send(self, node: PeerId, m: Message, durable: DurableView) -> None:
        """Not checked."""

    def on_send_all(self, node: PeerId, messages: Iterable[Message], durable: DurableView) -> None:
        """Not checked."""

    def on_append(self, node: PeerId, entries: Iterable[Entry], prev_term: Term | None) -> None:
        """Not checked."""

    def on_sync(self, node: PeerId, hs: HardState) -> None:
        """Not checked."""

    def on_apply(self, node: PeerId, entry: Entry) -> None:
        """Recorded (liveness reads ``applied``), not checked."""
        self.applied.setdefault(entry.index, (entry.term, entry.data))
        self.max_applied = max(self.max_applied, entry.index)

    def on_become_leader(
        self,
        node: PeerId,
        term: Term,
        snapshot_index: LogIndex,
        term_at: Callable[[LogIndex], Term | None],
    ) -> None:
        """Recorded (the report lists leaders by term), not checked."""
        self.leaders.setdefault(term, node)


def check_liveness(cluster: SimCluster) -> str | None:
    """Rule L, after heal: a leader within 10·ET, a fresh proposal applied within 20·ET.

    A proposal can be lost when its leader steps down before replicating it; the check then
    proposes again at the new leader (each attempt is a distinct command) until one attempt is
    applied on every live member or the 20·ET budget is spent.
    """
    et = cluster.raft.election_timeout_ticks
    if not cluster.run_until(lambda c: c.leader() is not None, 10 * et):
        return f"L: no leader within {10 * et} ticks after heal"
    deadline = cluster.now + 20 * et
    attempts: list[tuple[int, bytes]] = []
    proposer: tuple[int, int] | None = None  # (leader, term) of the last attempt
    while cluster.now < deadline:
        for index, sent in attempts:
            applied = cluster.checker.applied.get(LogIndex(index))
            if applied is not None and applied[1] == sent and cluster.all_applied(index):
                return None
        leader = cluster.leader()
        if leader is not None and proposer != (leader, cluster.node(leader).term):
            op = KvOp(OpKind.PUT, "__liveness", str(cluster.now))
            payload = Command(-1, len(attempts), op).encode()
            with contextlib.suppress(NotLeader, ProposalDropped):
                attempts.append((cluster.propose(leader, payload), payload))
                proposer = (leader, cluster.node(leader).term)
        cluster.tick()
    return f"L: no proposal applied on every live member within {20 * et} ticks after heal"


def run_simulation(
    seed: int,
    options: SimOptions | None = None,
    faults: Faults | None = None,
    transcript: Transcript | None = None,
    *,
    checks: bool = True,
) -> SimReport:
    """Run one randomized simulation and check everything (see the module docstring).

    ``checks=False`` skips the safety checkers G1–G6 (to measure the simulator alone).
    """
    options = options or SimOptions()
    faults = faults or Faults()
    cluster = SimCluster(
        peers=options.peers,
        seed=seed,
        faults=faults,
        raft=options.raft_config(),
        snapshot_every_entries=options.snapshot_every_entries,
        transcript=transcript or Transcript(enabled=False),
        checker=RaftInvariants(strict=True) if checks else _RecordsOnly(strict=True),
    )
    workload = Workload(cluster, clients=options.clients, seed=seed)
    report = SimReport(seed, options, faults)
    try:
        cluster.run(options.ticks)
        workload.finish()
        cluster.faults = Faults()  # the heal phase: no new faults
        cluster.network.faults = cluster.faults
        cluster.heal_all()
        problem = check_liveness(cluster)
        if problem is not None:
            report.violations.append(problem)
    except InvariantViolationError as exc:
        report.violations.append(str(exc.violation))
    if checks:
        lin = check_history(workload.history)
        if lin.result is not CheckResult.LINEARIZABLE:
            report.violations.append(f"G6: client history {lin.result.value} (key {lin.bad_key})")
    report.leaders_by_term = cluster.leaders_by_term()
    report.max_applied = cluster.checker.max_applied
    report.proposals, report.committed = workload.proposals, workload.committed
    report.events, report.ticks = cluster.events, cluster.now
    return report

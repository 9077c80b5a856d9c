"""Scripted scenarios shared by the golden tests and the book.

Rules: a script only uses the public verbs of :class:`~refimpl.sim.cluster.SimCluster`
(``force_timeout``, ``partition``, ``crash``, ``restart``, ``propose``, ``intercept``); it
records a picture of every node's log after each stage, so the book can draw the stages and a
test can assert on them. Every script is deterministic for its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from refimpl.ids import LogIndex, PeerId, Term
from refimpl.raft import AppendEntries, Message, RaftConfig, Role
from refimpl.sim.cluster import SimCluster
from refimpl.sim.kv import Command
from refimpl.sim.transcript import Transcript
from refimpl.testing.linearizability import KvOp, OpKind

__all__ = ["Figure8", "LogPicture", "figure8", "log_picture", "win_election"]

_INDEX_0 = LogIndex(0)

LogPicture = dict[PeerId, list[tuple[LogIndex, Term]]]
"""Every node's log as (index, term) pairs, from its first entry after the genesis snapshot."""


def log_picture(cluster: SimCluster) -> LogPicture:
    """The (index, term) of every entry in every node's (visible) log."""
    picture: LogPicture = {}
    for peer, node in sorted(cluster.nodes.items()):
        disk = node.disk
        start = max(disk.first_index(), LogIndex(2))
        entries = disk.entries(start, LogIndex(disk.last_index() + 1))
        picture[peer] = [(e.index, e.term) for e in entries]
    return picture


def win_election(cluster: SimCluster, peer: int, cut_after: list[list[int]] | None = None) -> None:
    """Make ``peer`` campaign (forcing its timeout) until it leads; optionally partition at once.

    Partitioning in the very tick ``peer`` wins loses the messages it just sent on the cut links,
    which is how a script keeps a new leader's first entry to itself.
    """
    node = cluster.node(peer)
    for _ in range(5):
        cluster.force_timeout(peer)
        for _ in range(3):
            cluster.tick()
            if node.role is Role.LEADER:
                if cut_after:
                    cluster.partition(*cut_after)
                return
    raise AssertionError(f"n{peer} did not win an election")


@dataclass
class Figure8:
    """The run of :func:`figure8`: the cluster, the contested index and a picture per stage."""

    cluster: SimCluster
    index: LogIndex
    old_term: Term
    stages: list[tuple[str, LogPicture]] = field(default_factory=list)
    commit_after_c: LogIndex = _INDEX_0
    """S1's commit index at the end of stage (c), with its old entry on a majority."""


def figure8(seed: int = 5) -> Figure8:
    """Replay the Raft paper's Figure 8 with five peers (S1..S5 are n1..n5).

    (a) S1 leads and replicates a new entry only to S2; (b) S1 crashes, S5 wins with S3 and S4
    and writes a different entry (its no-op) at the same index; (c) S5 crashes, S1 returns, wins
    a later term and copies its old entry to a majority -- one entry per message, while messages
    carrying its own-term entries are held back; (d) S1 crashes and S5 wins again. Whether the
    old entry survives depends only on the commit rule of §5.4.2.
    """
    config = RaftConfig(id=PeerId(1), pre_vote=False, check_quorum=False, max_entries_per_message=1)
    c = SimCluster(peers=5, seed=seed, raft=config, transcript=Transcript())
    win_election(c, 1)
    noop = c.node(1).disk.last_index()
    assert c.run_until(lambda c: c.all_applied(noop), 20)
    c.partition([1, 2], [3, 4, 5])
    data = Command(0, 1, KvOp(OpKind.PUT, "fig8", "a")).encode()
    run = Figure8(c, c.propose(1, data), c.node(1).term)
    c.run(3)
    run.stages.append(("(a) S1 replicates to S2", log_picture(c)))
    c.crash(1)
    c.partition([5, 3, 4], [2])
    win_election(c, 5, cut_after=[[5], [3, 4], [2]])
    run.stages.append(("(b) S5 wins, writes its own entry", log_picture(c)))
    c.crash(5)
    c.restart(1)
    c.partition([1, 2, 3, 4], [5])
    c.intercept = lambda m: m.src == 1 and _carries_term_above(m, run.old_term)
    win_election(c, 1)
    c.run(6)
    run.commit_after_c = c.node(1).commit
    c.transcript.record(c.now, f"n1 commit={run.commit_after_c}; {len(c.held)} messages held")
    run.stages.append(("(c) S1 returns, copies old entry", log_picture(c)))
    c.intercept = None
    c.crash(1)
    c.restart(5)
    c.partition([5, 2, 3, 4], [1])
    win_election(c, 5)
    c.run(10)
    run.stages.append(("(d) S1 crashes, S5 wins again", log_picture(c)))
    return run


def _carries_term_above(m: Message, term: Term) -> bool:
    return isinstance(m, AppendEntries) and any(e.term > term for e in m.entries)

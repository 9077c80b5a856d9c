"""Shared helpers for the scenario tests of ``raft-scenarios.md`` (groups A–F)."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path

from refimpl.ids import LogIndex, PeerId
from refimpl.raft import RaftConfig, Role
from refimpl.sim import Command, Faults, SimCluster, Transcript
from refimpl.testing import KvOp, OpKind, assert_golden

GOLDEN = Path(__file__).parent / "golden"
ET = 10
"""Election timeout of every scenario, in ticks (HB = 1 tick)."""


def seeds(default: int) -> range:
    """Seeds for a randomized scenario: ``default`` many, or ``$SEEDS`` (e.g. in a soak)."""
    return range(int(os.environ.get("SEEDS", default)))


def make_cluster(
    peers: int = 3,
    seed: int = 0,
    *,
    pre_vote: bool = True,
    check_quorum: bool = True,
    faults: Faults | None = None,
    voters: list[int] | None = None,
    heartbeats: bool = False,
    messages: bool = True,
    snapshot_every_entries: int = 0,
    max_inflight_messages: int = 64,
    max_entries_per_message: int = 64,
) -> SimCluster:
    """A cluster with the scenarios' timing (ET = 10 ticks, HB = 1 tick)."""
    config = RaftConfig(
        id=PeerId(1),
        election_timeout_ticks=ET,
        heartbeat_interval_ticks=1,
        pre_vote=pre_vote,
        check_quorum=check_quorum,
        max_inflight_messages=max_inflight_messages,
        max_entries_per_message=max_entries_per_message,
    )
    return SimCluster(
        peers=peers,
        seed=seed,
        faults=faults or Faults(),
        raft=config,
        voters=voters,
        snapshot_every_entries=snapshot_every_entries,
        transcript=Transcript(messages=messages, heartbeats=heartbeats),
    )


def command(key: str, value: str, seq: int, client: int = 0) -> bytes:
    """The bytes of ``put(key, value)`` from ``client``."""
    return Command(client, seq, KvOp(OpKind.PUT, key, value)).encode()


def put(cluster: SimCluster, peer: int, key: str, value: str, seq: int) -> LogIndex:
    """Propose ``put(key, value)`` at ``peer`` (which must lead)."""
    return cluster.propose(peer, command(key, value, seq))


def elect(cluster: SimCluster, max_ticks: int = 10 * ET) -> PeerId:
    """Run until there is a leader whose no-op is applied everywhere alive; return it."""
    assert cluster.run_until(lambda c: c.leader() is not None, max_ticks), "no leader"
    leader = cluster.leader()
    assert leader is not None
    commit = cluster.nodes[leader].raft
    assert commit is not None
    assert cluster.run_until(lambda c: c.all_applied(commit.last_log_index), max_ticks)
    return leader


def roles(cluster: SimCluster) -> dict[int, Role]:
    """Current role of every live node."""
    return {n.id: n.role for n in cluster.live()}


def check_golden(cluster: SimCluster, name: str, footer: list[str] | None = None) -> None:
    """Compare the transcript (plus footer lines) with ``golden/<name>.txt``."""
    text = cluster.transcript.text() + "".join(f"# {line}\n" for line in footer or [])
    assert_golden(GOLDEN / f"{name}.txt", text)


def applied_everywhere(index: int) -> Callable[[SimCluster], bool]:
    """Predicate: every live node applied ``index``."""
    return lambda c: c.all_applied(index)


def led_by_one_of(peers: Collection[int]) -> Callable[[SimCluster], bool]:
    """Predicate: the current leader is one of ``peers``."""
    return lambda c: c.leader() in peers


def caught_up(peer: int) -> Callable[[SimCluster], bool]:
    """Predicate: ``peer`` has committed its whole log."""
    return lambda c: c.node(peer).commit >= c.node(peer).disk.last_index()

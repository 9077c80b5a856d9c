"""Peer-level simulation: full peers over the in-memory network, in virtual time (MockClock)."""

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from refimpl.peer.harness import SimCluster
from refimpl.peer.node import ConsensusStoppedError, NoLeaderError, Peer
from refimpl.peer.state import metadata_command
from refimpl.raft import ConfChange, ConfChangeKind, Role
from tests.peer._sim import seeds


@pytest.fixture(params=seeds([7]))
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[SimCluster]:
    """A simulated cluster with no peers yet, on seed 7 (or each soak seed: every test here
    runs once per seed)."""
    async with trio.open_nursery() as nursery:
        yield SimCluster(nursery, seed=request.param)
        nursery.cancel_scope.cancel()


async def three_peers(c: SimCluster) -> None:
    first = await c.start_first()
    await c.wait_until(lambda: c.leader() is not None)
    await c.join(first)
    await c.join(first)
    await c.wait_until(lambda: all_voters(c, 3))


def all_voters(c: SimCluster, count: int) -> bool:
    peers = c.running()
    return len(peers) >= count and all(
        len(p.node.membership.voters) == count and not p.node.membership.learners for p in peers
    )


def peer_sets(c: SimCluster) -> list[dict[str, object]]:
    return [p.cluster_info()["peers"] for p in c.running()]


async def test_bootstrap_reaches_one_leader_and_identical_peer_sets(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec "Distributed deployment": peers joining with --bootstrap form one cluster, one leader."""
    await three_peers(cluster)
    await cluster.wait_until(lambda: cluster.leader() is not None)
    sets = peer_sets(cluster)
    assert len(sets[0]) == 3
    assert all(s == sets[0] for s in sets)
    roles = sorted(p.node.role.name for p in cluster.running())
    assert roles == ["FOLLOWER", "FOLLOWER", "LEADER"]


async def test_joiner_without_uri_gets_one_derived_from_its_address(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec: "The URL of the new peers themselves will be calculated automatically from the IP"."""
    first = await cluster.start_first()
    await cluster.wait_until(lambda: cluster.leader() is not None)
    joiner = await cluster.join(first, with_uri=False)
    assert joiner.uri == "http://10.0.0.2:6335/"
    await cluster.wait_until(lambda: all_voters(cluster, 2))
    assert first.peer is not None
    assert first.peer.cluster_info()["peers"][str(joiner.peer_id)] == {"uri": joiner.uri}


async def test_a_follower_forwards_proposals_and_sees_the_result(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec "Raft": any peer accepts a consensus operation; it applies on every peer."""
    await three_peers(cluster)
    follower = next(p for p in cluster.running() if p.node.role == Role.FOLLOWER)
    assert await follower.propose(metadata_command("colour", "blue")) is True
    assert follower.state.metadata() == {"colour": "blue"}
    await cluster.wait_until(
        lambda: all(p.state.metadata() == {"colour": "blue"} for p in cluster.running())
    )


async def test_leader_crash_elects_a_new_leader_that_accepts_operations(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Raft §5.2: when the leader fails, a follower times out and a new leader is elected."""
    await three_peers(cluster)
    old = cluster.leader()
    assert old is not None
    cluster.kill(next(s for s in cluster.peers if s.peer is old))
    took_s = await cluster.wait_until(lambda: cluster.leader() is not None)
    new = cluster.leader()
    assert new is not None and new is not old and new.node.term > old.node.term
    assert took_s < 5.0
    assert await new.propose(metadata_command("after", 1)) is True


async def test_a_killed_peer_restarts_and_catches_up(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Raft §5.3: a restarted follower is brought up to date from the leader's log."""
    await three_peers(cluster)
    victim = next(s for s in cluster.peers if s.peer is not cluster.leader())
    cluster.kill(victim)
    leader = cluster.leader()
    assert leader is not None
    for i in range(5):
        await leader.propose(metadata_command(f"k{i}", i))
    await cluster.restart(victim)
    await cluster.wait_until(
        lambda: victim.peer is not None and len(victim.peer.state.metadata()) == 5
    )
    assert victim.peer is not None
    assert victim.peer.node.commit_index == leader.node.commit_index


async def test_removing_a_peer_shrinks_the_cluster_and_stops_it(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec: remove a peer with the remove-peer API; it stops taking part in consensus."""
    await three_peers(cluster)
    leader = cluster.leader()
    assert leader is not None
    victim = next(s for s in cluster.peers if s.peer is not leader)
    assert victim.peer is not None
    victim_peer: Peer = victim.peer
    await leader.propose_conf_change(ConfChange(ConfChangeKind.REMOVE_PEER, victim.peer_id))
    await cluster.wait_until(lambda: victim_peer.stopped)
    survivors = cluster.running()
    assert len(survivors) == 2
    await cluster.wait_until(lambda: all_voters(cluster, 2))
    assert all(str(victim.peer_id) not in p.cluster_info()["peers"] for p in survivors)
    assert victim_peer.cluster_info()["consensus_thread_status"] == {
        "consensus_thread_status": "stopped"
    }
    with pytest.raises(ConsensusStoppedError):
        await victim_peer.propose(metadata_command("x", 1))
    assert await leader.propose(metadata_command("still", "works")) is True


async def test_a_cut_off_peer_refuses_proposals_at_once(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Spec "Raft": while no leader is known, operations are denied (a retryable NoLeaderError)."""
    await three_peers(cluster)
    leader = cluster.leader()
    assert leader is not None
    lone = next(s for s in cluster.peers if s.peer is not leader)
    others = [s.address for s in cluster.peers if s is not lone]
    cluster.network.partition([lone.address], others)
    assert lone.peer is not None
    lone_peer = lone.peer
    # With CheckQuorum the others keep their leader; the lone peer loses track of it.
    await cluster.wait_until(lambda: lone_peer.node.leader_id is None)
    with pytest.raises(NoLeaderError):
        await lone_peer.propose(metadata_command("denied", True))
    cluster.network.heal()
    await cluster.wait_until(lambda: lone_peer.node.leader_id is not None)
    assert await lone_peer.propose(metadata_command("accepted", True)) is True


async def test_minority_leader_is_replaced_and_rejoins_after_healing(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Raft §5.2 with CheckQuorum: a partitioned leader steps down; the majority elects anew."""
    await three_peers(cluster)
    old = cluster.leader()
    assert old is not None
    old_sim = next(s for s in cluster.peers if s.peer is old)
    cluster.network.partition(
        [old_sim.address], [s.address for s in cluster.peers if s is not old_sim]
    )
    majority = [s.peer for s in cluster.peers if s is not old_sim and s.peer is not None]
    await cluster.wait_until(lambda: any(p.node.role == Role.LEADER for p in majority))
    await cluster.wait_until(lambda: old.node.role != Role.LEADER)
    cluster.network.heal()
    await cluster.wait_until(lambda: cluster.leader() is not None and cluster.leader() is not old)
    sets = peer_sets(cluster)
    assert all(s == sets[0] for s in sets)


async def test_cluster_forms_and_commits_on_a_lossy_network(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Raft tolerates message loss and reordering: 20% drops, 1-30 ms jitter."""
    cluster.network.drop_rate = 0.2
    cluster.network.delay_s = (0.001, 0.03)
    await three_peers(cluster)
    for i in range(10):
        peer = cluster.running()[i % 3]
        while True:
            try:
                await peer.propose(metadata_command("n", i), timeout_s=3.0)
                break
            except NoLeaderError:
                await trio.sleep(0.5)
    await cluster.wait_until(lambda: all(p.state.metadata() == {"n": 9} for p in cluster.running()))
    assert cluster.network.dropped > 0


@pytest.mark.parametrize(
    "quiet_s", [pytest.param(60.0), pytest.param(600.0, marks=pytest.mark.slow)]
)
async def test_a_quiet_cluster_holds_no_elections(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock, quiet_s: float
) -> None:
    """With heartbeats every tick and CheckQuorum, a healthy cluster holds no election (10 min)."""
    await three_peers(cluster)
    terms = {p.node.term for p in cluster.running()}
    await trio.sleep(quiet_s)
    assert {p.node.term for p in cluster.running()} == terms
    assert len(terms) == 1


async def test_log_compaction_and_a_late_joiner_gets_the_snapshot(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Raft §7: applied entries are compacted into a snapshot, which a new peer installs."""
    cluster.compact_log_entries = 20
    await three_peers(cluster)
    leader = cluster.leader()
    assert leader is not None
    for i in range(50):
        await leader.propose(metadata_command(f"k{i % 7}", i))
    assert leader.storage.first_index() > 20  # the prefix is gone from the log
    late = await cluster.join(cluster.peers[0])
    await cluster.wait_until(lambda: all_voters(cluster, 4))
    assert late.peer is not None
    assert late.peer.state.metadata() == leader.state.metadata()
    assert late.peer.state.peers() == leader.state.peers()
    assert late.storage.snapshot() is not None and late.storage.snapshot().data != b""  # type: ignore[union-attr]
    cluster.kill(late)
    await leader.propose(metadata_command("after-restart", True))
    await cluster.restart(late)
    await cluster.wait_until(
        lambda: late.peer is not None and late.peer.state.metadata() == leader.state.metadata()
    )


async def test_a_wiped_peer_rejoining_at_its_old_address_replaces_its_old_id(
    cluster: SimCluster, autojump_clock: trio.testing.MockClock
) -> None:
    """Qdrant: a join whose URI belongs to another (replica-free) peer removes that peer first."""
    await three_peers(cluster)
    old = next(s for s in cluster.peers if s.peer is not cluster.leader())
    cluster.kill(old)
    fresh = await cluster.join(
        cluster.peers[0] if old.index else cluster.peers[1], address=old.address
    )
    assert fresh.peer_id != old.peer_id and fresh.uri == old.address
    await cluster.wait_until(lambda: all_voters(cluster, 3))
    for peer in cluster.running():
        assert old.peer_id not in peer.state.peers()
        assert peer.state.peers()[fresh.peer_id] == old.address

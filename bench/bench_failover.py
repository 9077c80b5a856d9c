"""Leader failover time of a real 3-peer cluster with Qdrant's default tick (100 ms).

What it measures: SIGKILL the leader, then time until a surviving peer accepts a consensus
operation (``PUT /cluster/metadata/keys/…`` answered 200) — detection (an election timeout of
10-20 ticks), PreVote, the election, the new leader's no-op commit and the forwarded proposal.
The killed peer is restarted and the cluster settles before the next round. Target: median
≤ 2 s (Qdrant's defaults give 2-4 s).

It also runs a quiet 3-peer simulated cluster (in-memory network, virtual time) for 10 minutes
and counts elections after the first: the target is none.

Run: ``.venv/bin/python bench/bench_failover.py [--rounds N] [--skip-quiet]``.
"""

import argparse
import signal
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import trio
import trio.testing

from refimpl.launcher import LocalCluster
from refimpl.peer.harness import SimCluster


def accepted(cluster: LocalCluster, index: int, round_no: int) -> bool:
    """True once peer ``index`` applies a metadata write through consensus."""
    url = f"{cluster.peers[index].rest_url}/cluster/metadata/keys/round"
    try:
        return httpx.put(url, json=round_no, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def one_round(cluster: LocalCluster, round_no: int) -> float:
    """Kill the leader, return seconds until a survivor accepts an operation."""
    cluster.wait_for_voters(3, timeout_s=60)
    leader = cluster.wait_for_leader()
    survivors = [i for i in range(3) if i != leader]
    started = time.monotonic()
    cluster.kill(leader, signal.SIGKILL)
    while not any(accepted(cluster, i, round_no) for i in survivors):
        time.sleep(0.02)
    took_s = time.monotonic() - started
    cluster.restart(leader)
    return took_s


def measure_failover(rounds: int) -> list[float]:
    """Failover times over ``rounds`` rounds on one cluster."""
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(Path(tmp), 3, tick_period_ms=100) as c:
        c.start_first()
        c.start_joiner(1)
        c.start_joiner(2)
        times = []
        for r in range(rounds):
            times.append(one_round(c, r))
            print(f"  round {r + 1}: {times[-1]:.2f} s", flush=True)
        return times


async def quiet_elections(minutes: float, seed: int) -> int:
    """Elections (term changes) in a quiet simulated 3-peer cluster after it formed."""
    async with trio.open_nursery() as nursery:
        sim = SimCluster(nursery, seed=seed, tick_period_s=0.1)
        first = await sim.start_first()
        await sim.wait_until(lambda: sim.leader() is not None)
        await sim.join(first)
        await sim.join(first)
        await sim.wait_until(lambda: all(len(p.node.membership.voters) == 3 for p in sim.running()))
        before = max(p.node.term for p in sim.running())
        await trio.sleep(minutes * 60)
        after = max(p.node.term for p in sim.running())
        nursery.cancel_scope.cancel()
    return after - before


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skip-quiet", action="store_true")
    args = parser.parse_args()
    print(f"leader failover, 3 real peers, tick_period_ms=100, {args.rounds} rounds:")
    times = measure_failover(args.rounds)
    print(
        f"failover: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s (target: median <= 2 s)"
    )
    if not args.skip_quiet:
        clock = trio.testing.MockClock(autojump_threshold=0)
        elections = trio.run(quiet_elections, 10.0, 1, clock=clock)
        print(f"quiet cluster, 10 simulated minutes: {elections} elections (target: 0)")


if __name__ == "__main__":
    main()

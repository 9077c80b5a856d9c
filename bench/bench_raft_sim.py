"""Benchmark of the Raft simulator: virtual time simulated per second, seeds per minute.

Setting: ``tick_period_ms = 100`` (Qdrant's default), every fault on (drops, duplicates,
delays, partitions, crashes with torn writes), three clients writing. The figure of merit is the
speed-up over real time: virtual seconds simulated per second of the benchmark's own time (the
issue's target is 1000x for 5 peers with faults on). Each setting is measured twice:

* **checked** -- every safety invariant (G1-G5) checked after every event and the client
  history checked for linearizability (G6) at the end: what a soak run does, and the figure
  the issue's target is about (a simulation whose results are checked);
* **unchecked** -- the same runs, event for event, with G1-G6 off (``checks=False``): the cost
  of the Raft cores and the simulator alone.

Both include the heal phase and the liveness check. Times are CPU seconds of this process
(``time.process_time``): on a shared machine wall time also counts the time spent waiting for a
core, which says more about the neighbours than about the simulator; wall time is printed too.
Two timings are measured: the scenarios' (heartbeat every tick, election timeout 10 ticks) and
Qdrant's (heartbeat every 2 ticks, election timeout 20 ticks).

``--floor`` measures what the cheapest possible simulator would cost: a skeleton that does only
the unavoidable Python work of each message round (build a frozen message, draw its delay,
queue it, deliver it, dispatch it with ``match``, build the answer) and none of Raft's (no log,
no progress, no Ready, no storage, no checker, no faults, no client), driven at the message rate
the real checked run has. It prints the share of the 1000x budget the skeleton alone spends.

``--profile`` instead runs the checked 5-peer, all-faults setting under ``cProfile`` and prints
where the time goes: the share of self time per part of the code (Raft core, simulator, client
workload, checkers, the rest) and the busiest functions. There is no single hot spot: the cost
is spread over the few dozen Python calls each message takes (build it, check it against the
durable state, queue it, step it, answer it), which is why the figures above move by tens of
percent, not by factors, when one of those calls gets cheaper.
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import pstats
import random
import time
from collections import defaultdict
from dataclasses import dataclass

from refimpl.raft.messages import direct_init
from refimpl.sim import Faults, SimCluster, SimOptions, Workload, run_simulation

TICK_PERIOD_MS = 100
TICKS = 1000
SEEDS = 5
TARGET_SPEEDUP = 1000


@dataclass(frozen=True, slots=True)
class Figures:
    """One measured setting."""

    speedup_cpu: float
    """Virtual seconds per CPU second."""
    speedup_wall: float
    """Virtual seconds per wall-clock second."""
    seeds_per_minute_cpu: float
    events_per_second_cpu: int


def measure(options: SimOptions, faults: Faults, checks: bool) -> Figures:
    """Run ``SEEDS`` seeds and return the speed figures (see the module docstring)."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    virtual_ticks = 0
    events = 0
    for seed in range(SEEDS):
        report = run_simulation(seed, options, faults, checks=checks)
        assert report.ok, report.violations
        virtual_ticks += report.ticks
        events += report.events
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    virtual_s = virtual_ticks * TICK_PERIOD_MS / 1000
    return Figures(virtual_s / cpu, virtual_s / wall, SEEDS / cpu * 60, int(events / cpu))


PARTS = (
    ("Raft core (refimpl/raft)", "/refimpl/raft/"),
    ("simulator: cluster, network, disk", "/refimpl/sim/"),
    ("checkers G1-G6 (refimpl/testing)", "/refimpl/testing/"),
)
"""Parts of the code, by path; ``refimpl/sim/client.py`` and ``kv.py`` are the workload."""


def _part(filename: str) -> str:
    if filename.endswith(("/refimpl/sim/client.py", "/refimpl/sim/kv.py")):
        return "client workload and KV state machine"
    for name, marker in PARTS:
        if marker in filename:
            return name
    return "Python library and built-ins (random, heapq, json, ...)"


def profile(top: int = 15) -> None:
    """Profile the checked 5-peer, all-faults setting; print self time per part and function."""
    options = SimOptions(peers=5, ticks=TICKS)
    profiler = cProfile.Profile()
    profiler.enable()
    for seed in range(2):
        run_simulation(seed, options, Faults.everything(), checks=True)
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in raw.values())
    by_part: dict[str, float] = defaultdict(float)
    for (filename, _, _), row in raw.items():
        by_part[_part(filename)] += row[2]
    print("self time by part (cProfile; its overhead inflates every call alike):")
    for name, seconds in sorted(by_part.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / total:6.1%}  {name}")
    print(f"busiest {top} functions (self time, calls):")
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    for (filename, line, function), row in rows:
        where = filename.split("/refimpl/")[-1] if "/refimpl/" in filename else filename
        print(f"  {row[2] / total:6.1%}  {row[1]:>8}  {function} ({where}:{line})")


@direct_init
@dataclass(frozen=True, slots=True)
class _Append:
    """The skeleton's request: as many fields as :class:`refimpl.raft.AppendEntries`."""

    term: int
    src: int
    dst: int
    prev_index: int
    prev_term: int
    entries: tuple[bytes, ...]
    commit: int
    ctx: bytes


@direct_init
@dataclass(frozen=True, slots=True)
class _Answer:
    term: int
    src: int
    dst: int
    index: int
    reject: bool


class _SkeletonNode:
    """Steps a message with one comparison and answers it: no log, no state, no Ready."""

    __slots__ = ("id", "log_terms", "match", "out", "term")

    def __init__(self, node_id: int) -> None:
        self.id, self.term = node_id, 1
        self.log_terms, self.out = [0, 1, 1, 1], list[_Append | _Answer]()
        self.match: dict[int, int] = {}

    def step(self, m: _Append | _Answer) -> None:
        if m.term < self.term:
            return
        match m:
            case _Append():
                ok = m.prev_index < len(self.log_terms) and (
                    self.log_terms[m.prev_index] == m.prev_term
                )
                index = m.prev_index + len(m.entries)
                self.out.append(_Answer(self.term, self.id, m.src, index, not ok))
            case _Answer():
                if not m.reject and self.match.get(m.src, 0) < m.index:
                    self.match[m.src] = m.index


def skeleton_us_per_message(ticks: int = 20_000) -> float:
    """CPU microseconds per message round of the skeleton (5 nodes, one leader)."""
    nodes = [_SkeletonNode(i) for i in range(5)]
    rng = random.Random(1)
    buckets: dict[int, list[_Append | _Answer]] = {}
    heap: list[int] = []
    sent = 0
    started = time.process_time()
    for now in range(ticks):
        for follower in range(1, 5):
            nodes[0].out.append(_Append(1, 0, follower, 3, 1, (), 3, b""))
        for node in nodes:
            out, node.out = node.out, []
            for m in out:
                sent += 1
                at = now + 1 + int(rng.random() * 3)
                bucket = buckets.get(at)
                if bucket is None:
                    buckets[at] = [m]
                    heapq.heappush(heap, at)
                else:
                    bucket.append(m)
        while heap and heap[0] <= now:
            for m in buckets.pop(heapq.heappop(heap)):
                nodes[m.dst].step(m)
    return (time.process_time() - started) / sent * 1e6


def floor() -> None:
    """Print the skeleton's cost against the budget of the target (see the module docstring)."""
    options, faults = SimOptions(peers=5, ticks=TICKS), Faults.everything()
    messages = ticks = 0
    for seed in range(SEEDS):
        cluster = SimCluster(peers=options.peers, seed=seed, faults=faults,
                             raft=options.raft_config())  # fmt: skip
        Workload(cluster, clients=options.clients, seed=seed)
        cluster.run(options.ticks)
        messages += cluster.network.sent_count
        ticks += cluster.now
    per_tick = messages / ticks
    real = measure(options, faults, checks=True)
    us = skeleton_us_per_message()
    budget_us = TICK_PERIOD_MS * 1000 / TARGET_SPEEDUP
    skeleton_us = per_tick * us
    print(f"messages per tick (5 peers, all faults, HB=1 ET=10, clients on): {per_tick:.1f}")
    print(f"skeleton: {us:.2f} us per message round -> {skeleton_us:.0f} us per tick")
    print(f"budget at {TARGET_SPEEDUP}x: {budget_us:.0f} us per tick; the skeleton alone spends "
          f"{skeleton_us / budget_us:.0%} of it, leaving {budget_us - skeleton_us:.0f} us for every "
          f"tick's Raft work, storage, faults, clients and checks")  # fmt: skip
    print(f"the real checked run: {TICK_PERIOD_MS * 1000 / real.speedup_cpu:.0f} us per tick "
          f"({real.speedup_cpu:.0f}x), of which {TICK_PERIOD_MS * 1000 / real.speedup_cpu - skeleton_us:.0f} "
          f"us beyond the skeleton's share")  # fmt: skip


def main() -> None:
    """Print the table (or, with ``--profile``, where the time goes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    parser.add_argument("--floor", action="store_true", help="the cheapest simulator's cost")
    args = parser.parse_args()
    if args.profile:
        profile()
        return
    if args.floor:
        floor()
        return

    def opts(peers: int, hb: int, et: int) -> SimOptions:
        return SimOptions(
            peers=peers, ticks=TICKS, heartbeat_interval_ticks=hb, election_timeout_ticks=et
        )

    rows = [
        ("5 peers, no faults, HB=1 ET=10", opts(5, 1, 10), Faults()),
        ("5 peers, all faults, HB=1 ET=10", opts(5, 1, 10), Faults.everything()),
        ("5 peers, all faults, HB=2 ET=20", opts(5, 2, 20), Faults.everything()),
        ("3 peers, all faults, HB=1 ET=10", opts(3, 1, 10), Faults.everything()),
    ]
    print(
        f"{'setting':<32} {'checks':<9} {'x real (CPU)':>12} {'x real (wall)':>13} "
        f"{'seeds/min':>9} {'events/s':>9}"
    )
    for name, options, faults in rows:
        for checks in (True, False):
            f = measure(options, faults, checks)
            print(
                f"{name:<32} {'G1-G6' if checks else 'off':<9} {f.speedup_cpu:>11.0f}x "
                f"{f.speedup_wall:>12.0f}x {f.seeds_per_minute_cpu:>9.0f} "
                f"{f.events_per_second_cpu:>9}"
            )
    print(
        f"({SEEDS} seeds x {TICKS} ticks each, plus heal and the liveness check; "
        f"tick = {TICK_PERIOD_MS} ms; seeds/min and events/s per CPU second.)\n"
        f"The issue's target ({TARGET_SPEEDUP}x real time, 5 peers, faults on) is about the "
        "checked rows: a run whose results are not checked proves nothing."
    )


if __name__ == "__main__":
    main()
